"""`segsvc login` and `segsvc logout`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from segsvc.cli_commands import exit_codes, output, stored_login
from segsvc_client import SegsvcClient


def login(args: argparse.Namespace) -> int:
    """Check the credential against the server, then store it."""
    target = args.target or stored_login.DEFAULT_TARGET
    roots = Path(args.ca_file).read_bytes() if args.ca_file else None
    tls = bool(args.tls or args.ca_file)
    if args.api_key is not None:
        with SegsvcClient(target, api_key=args.api_key, tls=tls, root_certificates=roots) as client:
            next(iter(client.list_segments(page_size=1)), None)  # UNAUTHENTICATED if bad
        login = stored_login.StoredLogin(
            target=target, api_key=args.api_key, tls=tls, ca_file=args.ca_file
        )
    else:
        password = (
            sys.stdin.readline().rstrip("\n")
            if args.password_stdin
            else getpass.getpass(f"Password for {args.username}: ")
        )
        with SegsvcClient(target, tls=tls, root_certificates=roots) as client:
            token = client.sign_in(args.username, password)
        login = stored_login.StoredLogin(
            target=target,
            access_token=token.token,
            username=args.username,
            expires_at=token.expires_at.isoformat(),
            tls=tls,
            ca_file=args.ca_file,
        )
    path = stored_login.save(login)
    if args.json:
        output.print_json({"target": target, "credentials_file": str(path)})
    else:
        who = f"as {args.username}" if args.username else "with an API key"
        output.stderr.print(f"Logged in to {target} {who}; credential stored in {path}")
    return exit_codes.OK


def logout(args: argparse.Namespace) -> int:
    """Forget the stored credential."""
    removed = stored_login.forget()
    output.stderr.print("Logged out." if removed else "Not logged in.")
    return exit_codes.OK

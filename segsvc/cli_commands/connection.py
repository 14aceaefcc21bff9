"""The SegsvcClient a command calls with: `--target`, else the stored login's, else
localhost:50051; the stored credential when the target is the one it was made for."""

from __future__ import annotations

import argparse
from pathlib import Path

from segsvc.cli_commands import stored_login
from segsvc_client import SegsvcClient


def client_for(args: argparse.Namespace) -> SegsvcClient:
    """A client for the command's target with the stored credential, if any."""
    login = stored_login.load()
    target = args.target or (login.target if login else stored_login.DEFAULT_TARGET)
    same_server = login is not None and target == login.target
    tls = bool(args.tls or args.ca_file or (same_server and login is not None and login.tls))
    ca_file = args.ca_file or (login.ca_file if same_server and login else None)
    roots = Path(ca_file).read_bytes() if ca_file else None
    # A token from SignIn and an API key are both sent as `authorization: Bearer ...`.
    bearer = login.bearer if same_server and login else None
    return SegsvcClient(
        target, api_key=bearer, tls=tls, root_certificates=roots, timeout=args.timeout
    )

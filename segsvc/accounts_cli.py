"""`segsvc accounts create`: make an account straight in the database.

For bootstrapping (the first admin of an existing system, or after sign-up was closed)
and for recovery: whoever runs it already holds the database credentials, so it needs
no token. The password is read from a prompt on a terminal, or from the first line of
stdin otherwise (`printf '%s\\n' "$PW" | segsvc accounts create ...`), never from the
command line, where other users could read it in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from segsvc.config import Settings
from segsvc.domain.errors import AlreadyExists, InvalidArgument
from segsvc.domain.roles import Role
from segsvc.store import migrations
from segsvc.store.database import Database


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `accounts create` on the top-level parser."""
    accounts = commands.add_parser("accounts", help="manage accounts in the database")
    actions = accounts.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create an account (password from a prompt/stdin)")
    create.add_argument("--username", required=True)
    create.add_argument("--name", default=None, help="display name (default: the username)")
    create.add_argument(
        "--role", choices=[r.label for r in Role], default=Role.READER.label, help="default reader"
    )


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != first:
            raise SystemExit("segsvc: passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, settings: Settings, database_url: str) -> int:
    """Create the account described by `args`; print its id."""
    # Here, not at the top: `segsvc serve`'s supervisor imports this module for its
    # parser and must not hold the token and password code in memory for nothing.
    from segsvc.service_layer.accounts import create_account

    password = _password()
    migrations.migrate(database_url, settings.migrations_dir)
    db = Database.from_settings(database_url, settings)
    db.open()
    try:
        account_id = create_account(
            db,
            args.name or args.username,
            args.username,
            password,
            Role.from_label(args.role),
            settings.bcrypt_rounds,
        )
    except (AlreadyExists, InvalidArgument) as exc:
        print(f"segsvc: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"created account {account_id} ({args.username}, role {args.role})")
    return 0

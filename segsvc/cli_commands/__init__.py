"""The client side of the `segsvc` command: login, segment, user, report and key.

They call a running server through segsvc_client (clients/python), like any other
caller; nothing here touches the database. The parsers are declared here without
importing the client, so `segsvc serve` never loads it; a command's module is imported
when the command runs. Failures end with one line on stderr and an exit status from
exit_codes (documented in the README), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from segsvc.cli_commands.argument_types import duration, month

COMMANDS = frozenset({"login", "logout", "segment", "user", "report", "key"})


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        metavar="HOST:PORT",
        help="server address (default: the stored login's, then localhost:50051)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    common.add_argument("--tls", action="store_true", help="use TLS with the system roots")
    common.add_argument("--ca-file", metavar="PEM", help="use TLS trusting this CA")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    return common


def _handler(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    parser.set_defaults(handler=(module, function))


def add_parsers(commands: Any) -> None:
    """Add the client commands to `segsvc`'s subparsers."""
    common = _common()
    login = commands.add_parser(
        "login", parents=[common], help="check and store a credential for the commands below"
    )
    how = login.add_mutually_exclusive_group(required=True)
    how.add_argument("--api-key", metavar="KEY", help="an API key (for services and scripts)")
    how.add_argument("--username", metavar="U", help="sign in; the password is prompted")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _handler(login, "login_command", "login")
    logout = commands.add_parser("logout", help="forget the stored credential")
    _handler(logout, "login_command", "logout")

    segment = commands.add_parser("segment", help="create, inspect and delete segments")
    segment_commands = segment.add_subparsers(dest="segment_command", required=True)
    create = segment_commands.add_parser("create", parents=[common], help="create a segment")
    create.add_argument("slug")
    create.add_argument("--description", default="")
    create.add_argument("--auto-percent", type=float, help="enrol this share of all users")
    create.add_argument("--salt", default="", help="rollout salt (default: the slug)")
    create.add_argument("--dry-run", action="store_true", help="validate and count only")
    _handler(create, "segment_commands", "create")
    for name, function, text in (
        ("delete", "delete", "delete a segment, ending its memberships"),
        ("get", "get", "show a segment and its member count"),
        ("members", "members", "print the member ids, ascending"),
    ):
        sub = segment_commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("slug")
        _handler(sub, "segment_commands", function)
    listing = segment_commands.add_parser("list", parents=[common], help="list all segments")
    _handler(listing, "segment_commands", "list_all")

    user = commands.add_parser("user", help="read and change a user's segments")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    get = user_commands.add_parser("get", parents=[common], help="show a user's segments")
    get.add_argument("user_id", type=int)
    get.add_argument("--as-of", metavar="ISO-TIME", help="the segments at this past instant")
    _handler(get, "user_commands", "get")
    update = user_commands.add_parser(
        "update", parents=[common], help="add and remove segments atomically"
    )
    update.add_argument("user_id", type=int)
    update.add_argument("--add", action="append", default=[], metavar="SLUG")
    update.add_argument("--remove", action="append", default=[], metavar="SLUG")
    update.add_argument("--ttl", type=duration, help="expiry of the added segments (90m, 7d)")
    _handler(update, "user_commands", "update")
    load = user_commands.add_parser(
        "import", parents=[common], help="register ids from FILE or - (one per line)"
    )
    load.add_argument("file", metavar="FILE|-")
    load.add_argument("--chunk-size", type=int, default=10_000)
    _handler(load, "user_commands", "import_users")

    key = commands.add_parser("key", help="create, list and revoke API keys (admin)")
    key_commands = key.add_subparsers(dest="key_command", required=True)
    key_create = key_commands.add_parser(
        "create", parents=[common], help="create an API key and print it once"
    )
    key_create.add_argument("name", help="what the key is for, e.g. the calling service")
    key_create.add_argument("--role", choices=("reader", "writer", "admin"), required=True)
    _handler(key_create, "key_commands", "create")
    key_list = key_commands.add_parser("list", parents=[common], help="list API keys")
    _handler(key_list, "key_commands", "list_all")
    key_revoke = key_commands.add_parser("revoke", parents=[common], help="revoke an API key")
    key_revoke.add_argument("key_id", type=int)
    _handler(key_revoke, "key_commands", "revoke")

    report = commands.add_parser(
        "report", parents=[common], help="download a month's membership history as CSV"
    )
    report.add_argument("month", type=month, metavar="YEAR-MONTH")
    report.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    report.add_argument("--user", type=int, action="append", default=[], metavar="ID")
    _handler(report, "report_command", "report")


def main(argv: list[str]) -> int:
    """Parse and run one client command (`segsvc segment list ...`)."""
    parser = argparse.ArgumentParser(prog="segsvc")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a client command; failures become a message and an exit status."""
    from segsvc.cli_commands import exit_codes, output
    from segsvc_client import SegsvcError

    module_name, function = args.handler
    module = importlib.import_module(f"segsvc.cli_commands.{module_name}")
    try:
        status: int = getattr(module, function)(args)
    except SegsvcError as exc:
        output.error(exc.message)
        for violation in exc.field_violations:
            output.error(f"  {violation.field}: {violation.description}")
        if exc.code.name == "UNAUTHENTICATED":
            output.error("log in with `segsvc login --api-key KEY` or `--username U`")
        return exit_codes.for_status(exc.code)
    except OSError as exc:
        output.error(str(exc))
        return exit_codes.INVALID_INPUT
    except KeyboardInterrupt:
        return 130
    return status

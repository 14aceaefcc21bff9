"""The `segsvc` console script: client commands without the server's start-up cost.

`segsvc segment list` and friends only call a server, but segsvc.cli imports everything
`serve` needs (psycopg, the gRPC server, pydantic settings), about 0.35 s of CPU before
the first line runs: more than the call itself. So the client commands are dispatched
before that import; every other command (and `--help`) goes to segsvc.cli.main.
"""

from __future__ import annotations

import sys

from segsvc import cli_commands


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in cli_commands.COMMANDS:
        return cli_commands.main(args)
    from segsvc import cli  # deferred on purpose: see the module docstring

    return cli.main(argv)

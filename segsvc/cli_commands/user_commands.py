"""`segsvc user get|update|import`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TextIO

from segsvc.cli_commands import exit_codes, output
from segsvc.cli_commands.connection import client_for
from segsvc_client import SegsvcError, UserSegments


class BadInput(Exception):
    """The input file has a line that is not a user id (exit status INVALID_INPUT)."""


def _show(args: argparse.Namespace, user: UserSegments) -> int:
    if args.json:
        output.print_json(user)
    else:
        output.print_table(
            ("segment", "since", "expires", "reason"),
            [(s.slug, s.added_at, s.expires_at, s.reason) for s in user.segments],
        )
    return exit_codes.OK


def get(args: argparse.Namespace) -> int:
    """The user's segments (or, with --as-of, those it had then)."""
    as_of = datetime.fromisoformat(args.as_of) if args.as_of else None
    with client_for(args) as client:
        return _show(args, client.get_user_segments(args.user_id, as_of=as_of))


def update(args: argparse.Namespace) -> int:
    """Add and remove segments in one atomic change; --ttl applies to every --add."""
    with client_for(args) as client:
        user = client.update_user_segments(
            args.user_id, add=args.add, remove=args.remove, ttl=args.ttl
        )
    return _show(args, user)


def _ids(lines: TextIO) -> Iterator[int]:
    """User ids from lines (blank lines and `#` comments skipped); BadInput otherwise."""
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            yield int(text)
        except ValueError:
            raise BadInput(f"line {number}: not a user id: {text!r}") from None


def _checked(lines: TextIO, problems: list[BadInput]) -> Iterator[int]:
    """_ids for a request stream: gRPC reads it on its own thread and turns an exception
    into a cancelled call, so the reason is kept in `problems` for the command."""
    try:
        yield from _ids(lines)
    except BadInput as exc:
        problems.append(exc)
        raise


def import_users(args: argparse.Namespace) -> int:
    """Stream ids from FILE or stdin to ImportUsers in chunks, with a progress bar.

    A file is read twice: first to check every line and count the ids (so nothing is
    sent from a malformed file, and the bar has an ETA), then to send them. Standard
    input is read once; a bad line there cancels the stream.
    """
    from_stdin = args.file == "-"
    problems: list[BadInput] = []
    try:
        total = None
        if not from_stdin:
            with Path(args.file).open() as lines:
                total = sum(1 for _ in _ids(lines))
        source = sys.stdin if from_stdin else Path(args.file).open()  # noqa: SIM115
        try:
            with output.count_progress() as progress, client_for(args) as client:
                task = progress.add_task("importing", total=total)
                result = client.import_users(
                    _checked(source, problems),
                    chunk_size=args.chunk_size,
                    on_chunk=lambda n: progress.advance(task, n),
                )
        finally:
            if not from_stdin:
                source.close()
    except (BadInput, SegsvcError) as exc:
        if isinstance(exc, SegsvcError) and not problems:
            raise
        output.error(str(problems[0] if problems else exc))
        return exit_codes.INVALID_INPUT
    if args.json:
        output.print_json(result)
    else:
        output.print_table(
            ("received", "created", "rollout memberships"),
            [(result.received_count, result.created_count, result.rollout_membership_count)],
        )
    return exit_codes.OK

"""`segsvc segment create|delete|get|list|members`."""

from __future__ import annotations

import argparse
import sys

from segsvc.cli_commands import exit_codes, output
from segsvc.cli_commands.connection import client_for
from segsvc_client import Segment

COLUMNS = ("slug", "members", "rollout %", "created", "description")


def _row(segment: Segment) -> tuple[object, ...]:
    return (
        segment.slug,
        segment.member_count,
        segment.auto_percent,
        segment.create_time,
        segment.description,
    )


def _show(args: argparse.Namespace, segment: Segment) -> int:
    if args.json:
        output.print_json(segment)
    else:
        output.print_table(COLUMNS, [_row(segment)])
    return exit_codes.OK


def create(args: argparse.Namespace) -> int:
    """Create a segment (with --dry-run: only check it and count the rollout)."""
    with client_for(args) as client:
        segment = client.create_segment(
            args.slug,
            description=args.description,
            auto_percent=args.auto_percent,
            rollout_salt=args.salt,
            validate_only=args.dry_run,
        )
    return _show(args, segment)


def delete(args: argparse.Namespace) -> int:
    """Delete a segment; the member count shown is the memberships it ended."""
    with client_for(args) as client:
        return _show(args, client.delete_segment(args.slug))


def get(args: argparse.Namespace) -> int:
    """One segment with its member count."""
    with client_for(args) as client:
        return _show(args, client.get_segment(args.slug))


def list_all(args: argparse.Namespace) -> int:
    """Every live segment, by slug."""
    with client_for(args) as client:
        segments = list(client.list_segments())
    if args.json:
        output.print_json(segments)
    else:
        output.print_table(COLUMNS, map(_row, segments))
    return exit_codes.OK


def members(args: argparse.Namespace) -> int:
    """The segment's member ids, ascending: one per line, or a JSON array."""
    with client_for(args) as client:
        if args.json:
            output.print_json(list(client.list_segment_users(args.slug)))
        else:
            for user_id in client.list_segment_users(args.slug):
                sys.stdout.write(f"{user_id}\n")
    return exit_codes.OK

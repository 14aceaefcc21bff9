"""`segsvc report YEAR-MONTH [-o FILE]`: the month's membership history as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import BinaryIO

from segsvc.cli_commands import exit_codes, output
from segsvc.cli_commands.connection import client_for


def report(args: argparse.Namespace) -> int:
    """Stream the CSV to the file (atomically: a failed download leaves none) or stdout."""
    year, number = args.month
    target = Path(args.output) if args.output else None
    partial = target.with_name(target.name + ".part") if target else None
    sink: BinaryIO = partial.open("wb") if partial else sys.stdout.buffer
    try:
        with output.download_progress() as progress, client_for(args) as client:
            task = progress.add_task(f"report {year}-{number:02d}", total=None)
            for chunk in client.stream_history_report(year, number, user_ids=args.user):
                sink.write(chunk)
                progress.advance(task, len(chunk))
    except BaseException:
        if partial:
            sink.close()
            partial.unlink(missing_ok=True)
        raise
    if partial and target:
        sink.close()
        partial.replace(target)
        output.stderr.print(f"Wrote {target}")
    else:
        sink.flush()
    return exit_codes.OK

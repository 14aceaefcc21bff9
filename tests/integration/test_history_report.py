"""The report stream: every row, in order, in chunks of about 64 KiB rather than one
per row (COPY hands rows over one at a time; a million tiny writes or gRPC messages made
a 1M-row report take a minute over gRPC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from segsvc.domain.report_period import ReportPeriod
from segsvc.store.history import CHUNK_BYTES, CSV_HEADER, stream_report

ROWS = 5000


def test_report_is_streamed_in_large_chunks(db: psycopg.Connection[Any]) -> None:
    start = datetime(2005, 1, 1, tzinfo=UTC)
    with db.transaction(force_rollback=True):
        db.execute(
            "INSERT INTO membership_history (user_id, segment_id, slug, operation, reason, at)"
            " SELECT g, 1, 'CHUNKED', 'add', 'manual', %s + g * interval '1 second'"
            " FROM generate_series(1, %s) g",
            (start, ROWS),
        )
        chunks = list(stream_report(db, ReportPeriod(2005, 1), [], datetime.now(UTC)))
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0] == CSV_HEADER
    assert len(lines) == ROWS + 1
    assert [int(line.split(";")[0]) for line in lines[1:]] == list(range(1, ROWS + 1))
    assert len(chunks) <= len(b"".join(chunks)) // CHUNK_BYTES + 1
    assert all(len(c) < CHUNK_BYTES + 200 for c in chunks)

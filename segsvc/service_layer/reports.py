"""The monthly history report: a signed link to the CSV, or the CSV streamed over gRPC."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from segsvc.domain.clock import Clock
from segsvc.domain.report_links import ReportLinkSigner, ReportRequest, report_request
from segsvc.store import history
from segsvc.store.database import Database

REPORT_PATH = "/reports/history.csv"


@dataclass(frozen=True)
class ReportService:
    """Validates report requests, signs links, and streams the CSV."""

    db: Database
    clock: Clock
    signer: ReportLinkSigner
    public_url: str

    def request(self, year: int, month: int, user_ids: Sequence[int]) -> ReportRequest:
        """A validated report request (INVALID_ARGUMENT for a bad month or filter)."""
        return report_request(year, month, user_ids, self.clock())

    def link(self, year: int, month: int, user_ids: Sequence[int]) -> tuple[str, datetime]:
        """A link to the report and the instant it expires."""
        token, expires_at = self.signer.sign(self.request(year, month, user_ids))
        return f"{self.public_url.rstrip('/')}{REPORT_PATH}?token={quote(token)}", expires_at

    def stream(self, request: ReportRequest) -> Generator[bytes, None, None]:
        """The CSV document in chunks, straight from PostgreSQL, on a bulk connection taken
        at the first chunk (`ResourceExhausted` then if none is free); closing the
        generator ends the COPY and frees it."""
        with self.db.bulk_transaction() as conn:
            yield from history.stream_report(conn, request.period, request.user_ids, self.clock())

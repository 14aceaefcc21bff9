"""HTTP endpoints beside gRPC: /metrics, /healthz, /readyz and the report download.

Served by the standard library's ThreadingHTTPServer: the traffic here is scrapes,
probes and the occasional report download, and the report is streamed with chunked
transfer encoding straight from PostgreSQL's COPY, so no framework is needed.
"""

from __future__ import annotations

import hmac
import itertools
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from segsvc.domain.report_links import LinkExpired, LinkInvalid, ReportLinkSigner
from segsvc.observability.metrics import Metrics
from segsvc.service_layer.reports import REPORT_PATH, ReportService

log = structlog.get_logger("segsvc.http")


class HttpEndpoints:
    """Owns the HTTP server: bound first (so its port is known for report links), then
    given its routes, then started."""

    def __init__(self, host: str, port: int) -> None:
        self.server = ThreadingHTTPServer((host, port), BaseHTTPRequestHandler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def route(
        self,
        metrics: Metrics,
        reports: ReportService,
        signer: ReportLinkSigner,
        readiness: Callable[[], str | None],
        metrics_token: str | None = None,
    ) -> None:
        """Install the request handler; with `metrics_token`, /metrics needs it as a
        bearer token (metrics name methods and volumes: not for everyone on the network)."""
        self.server.RequestHandlerClass = _handler_class(
            metrics, reports, signer, readiness, metrics_token
        )

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self.server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests and close the socket."""
        self.server.shutdown()
        self.server.server_close()


def _handler_class(
    metrics: Metrics,
    reports: ReportService,
    signer: ReportLinkSigner,
    readiness: Callable[[], str | None],
    metrics_token: str | None,
) -> type[BaseHTTPRequestHandler]:
    expected_authorization = f"Bearer {metrics_token}".encode() if metrics_token else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "segsvc"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._text(HTTPStatus.OK, "ok\n")
            elif url.path == "/readyz":
                problem = readiness()
                if problem:
                    self._text(HTTPStatus.SERVICE_UNAVAILABLE, problem + "\n")
                else:
                    self._text(HTTPStatus.OK, "ready\n")
            elif url.path == "/metrics":
                if self._metrics_allowed():
                    body = generate_latest(metrics.exposed)
                    self._send(HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
                else:
                    self._text(HTTPStatus.UNAUTHORIZED, "metrics need a bearer token\n")
            elif url.path == REPORT_PATH:
                self._report(parse_qs(url.query).get("token", [""])[0])
            else:
                self._text(HTTPStatus.NOT_FOUND, "not found\n")

        def _metrics_allowed(self) -> bool:
            if expected_authorization is None:
                return True
            sent = self.headers.get("Authorization", "").encode()
            return hmac.compare_digest(sent, expected_authorization)

        def _report(self, token: str) -> None:
            try:
                request = signer.verify(token)
            except LinkExpired as exc:
                self._text(HTTPStatus.GONE, f"{exc}\n")
                return
            except LinkInvalid as exc:
                self._text(HTTPStatus.FORBIDDEN, f"{exc}\n")
                return
            chunks = reports.stream(request)
            try:
                first = next(chunks)
            except psycopg.Error:
                self._text(HTTPStatus.SERVICE_UNAVAILABLE, "database unavailable\n")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header(
                "Content-Disposition",
                f'attachment; filename="segment-history-{request.period.label}.csv"',
            )
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for part in itertools.chain([first], chunks):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            except (psycopg.Error, OSError) as exc:
                # Headers are gone; closing without the final chunk tells the client
                # the download is incomplete.
                log.warning("report_stream_failed", error=type(exc).__name__)
                self.close_connection = True

        def _text(self, status: HTTPStatus, body: str) -> None:
            self._send(status, body.encode(), "text/plain; charset=utf-8")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Query strings carry report tokens: log the path only.
            log.debug(
                "http", path=urlsplit(self.path).path, status=args[1] if len(args) > 1 else ""
            )

    return Handler

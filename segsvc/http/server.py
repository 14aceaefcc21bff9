"""HTTP endpoints beside gRPC: /metrics, /healthz, /readyz and the report download.

Served by waitress, a pure-Python WSGI server chosen for how it treats slow clients:
its event loop reads each request in full before a worker thread sees it, so thousands
of half-sent requests (a slowloris) cost sockets, not threads, and `/healthz` keeps
answering; the worker threads are a fixed few (`SEGSVC_HTTP_THREADS`). A connection on
which no byte has moved in either direction for `SEGSVC_HTTP_TIMEOUT_SECONDS` is closed,
whether the client stopped sending its request or stopped reading a report; a worker
blocked writing to it is then released. (Stock waitress only closes idle connections
without a request in progress; `_TimeoutServer` extends that to stalled writes.)

Report downloads are bulk work: each needs a bulk slot (`SEGSVC_BULK_POOL_SIZE`, shared
with gRPC streams) and gets 503 with Retry-After at once when none is free. Link policy
(README, "Questions and decisions"): a link is a bearer capability valid until it
expires, downloadable any number of times but by one download at a time per replica
(a second concurrent download of the same link gets 429 with Retry-After).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import psycopg
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from waitress import wasyncore
from waitress.server import TcpWSGIServer

from segsvc.domain.errors import ResourceExhausted
from segsvc.domain.report_links import LinkExpired, LinkInvalid, ReportLinkSigner
from segsvc.observability.metrics import Metrics
from segsvc.service_layer.reports import REPORT_PATH, ReportService

log = structlog.get_logger("segsvc.http")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _TimeoutServer(TcpWSGIServer):
    """waitress, closing every connection idle in both directions for `channel_timeout`,
    including those whose request is still being answered (a reader that stopped)."""

    def maintenance(self, now: float) -> None:
        cutoff = now - self.adj.channel_timeout
        for channel in _channels(self):
            if channel.last_activity < cutoff:
                if channel.requests:
                    channel.handle_close()  # wakes a worker blocked on its full buffer
                else:
                    channel.will_close = True


class HttpEndpoints:
    """Owns the HTTP server: bound first (so its port is known for report links), then
    given its routes, then started."""

    def __init__(
        self, host: str, port: int, threads: int, timeout: float, max_connections: int
    ) -> None:
        self._app: WsgiApp = _not_ready
        # Typed loosely: types-waitress lags the attributes used here.
        self.server: Any = _TimeoutServer(
            self._dispatch,
            host=host,
            port=port,
            threads=threads,
            channel_timeout=timeout,
            cleanup_interval=max(0.1, timeout / 4),
            connection_limit=max_connections,
            # Whole seconds: waitress reads this setting as an integer, and 0 (what 0.2
            # became) makes its select() return at once, a busy loop. Shutdown does not
            # wait for it: stop() wakes the loop through its trigger.
            asyncore_loop_timeout=1,
            ident="segsvc",
            clear_untrusted_proxy_headers=True,
        )
        self._thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def _dispatch(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._app(environ, start_response)

    def route(
        self,
        metrics: Metrics,
        reports: ReportService,
        signer: ReportLinkSigner,
        readiness: Callable[[], str | None],
        metrics_token: str | None = None,
    ) -> None:
        """Install the application; with `metrics_token`, /metrics needs it as a bearer
        token (metrics name methods and volumes: not for everyone on the network)."""
        self._app = _Routes(metrics, reports, signer, readiness, metrics_token)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        return int(self.server.effective_port)

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests, close every connection, end the workers."""
        if self._thread.is_alive():
            # Sockets belong to the event loop: close them from inside it, which also
            # empties its map and so ends the loop.
            self.server.trigger.pull_trigger(self._close_all)
            self._thread.join(timeout=5)
        else:
            self._close_all()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)

    def _close_all(self) -> None:
        for channel in _channels(self.server):
            channel.handle_close()  # wakes a worker blocked writing to it
        wasyncore.close_all(self.server._map)


def _channels(server: TcpWSGIServer) -> list[Any]:
    # types-waitress declares active_channels wrongly (one channel, not a dict of them).
    active: dict[int, Any] = server.active_channels  # type: ignore[assignment]
    return list(active.values())


def _not_ready(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    return _text(start_response, HTTPStatus.SERVICE_UNAVAILABLE, "starting\n")


def _text(
    start_response: StartResponse,
    status: HTTPStatus,
    body: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    return _send(start_response, status, body.encode(), "text/plain; charset=utf-8", headers)


def _send(
    start_response: StartResponse,
    status: HTTPStatus,
    body: bytes,
    content_type: str,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    start_response(
        f"{status.value} {status.phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


class _Routes:
    """The WSGI application."""

    def __init__(
        self,
        metrics: Metrics,
        reports: ReportService,
        signer: ReportLinkSigner,
        readiness: Callable[[], str | None],
        metrics_token: str | None,
    ) -> None:
        self.metrics = metrics
        self.expected_authorization = f"Bearer {metrics_token}".encode() if metrics_token else None
        self.reports = reports
        self.signer = signer
        self.readiness = readiness
        self._downloading: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        started = time.perf_counter()
        try:
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                return _text(start_response, HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
            if path == "/healthz":
                return _text(start_response, HTTPStatus.OK, "ok\n")
            if path == "/readyz":
                problem = self.readiness()
                if problem:
                    return _text(start_response, HTTPStatus.SERVICE_UNAVAILABLE, problem + "\n")
                return _text(start_response, HTTPStatus.OK, "ready\n")
            if path == "/metrics":
                if not self._metrics_allowed(environ):
                    return _text(
                        start_response, HTTPStatus.UNAUTHORIZED, "metrics need a bearer token\n"
                    )
                body = generate_latest(self.metrics.exposed)
                return _send(start_response, HTTPStatus.OK, body, CONTENT_TYPE_LATEST)
            if path == REPORT_PATH:
                token = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
                return self._report(token, start_response)
            return _text(start_response, HTTPStatus.NOT_FOUND, "not found\n")
        finally:
            # Query strings carry report tokens: log the path only.
            log.debug("http", path=path, duration_ms=round((time.perf_counter() - started) * 1e3))

    def _metrics_allowed(self, environ: dict[str, Any]) -> bool:
        if self.expected_authorization is None:
            return True
        sent = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
        return hmac.compare_digest(sent, self.expected_authorization)

    def _report(self, token: str, start_response: StartResponse) -> Iterable[bytes]:
        try:
            request = self.signer.verify(token)
        except LinkExpired as exc:
            return _text(start_response, HTTPStatus.GONE, f"{exc}\n")
        except LinkInvalid as exc:
            return _text(start_response, HTTPStatus.FORBIDDEN, f"{exc}\n")
        link = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            busy = link in self._downloading
            if not busy:
                self._downloading.add(link)
        if busy:
            return _text(
                start_response,
                HTTPStatus.TOO_MANY_REQUESTS,
                "this link is being downloaded already\n",
                [("Retry-After", "1")],
            )
        chunks = self.reports.stream(request)
        try:
            first = next(chunks)
        except ResourceExhausted as exc:
            self._done(link)
            return _text(
                start_response,
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"{exc}\n",
                [("Retry-After", str(exc.retry_after_seconds))],
            )
        except psycopg.Error:
            self._done(link)
            return _text(
                start_response,
                HTTPStatus.SERVICE_UNAVAILABLE,
                "database unavailable\n",
                [("Retry-After", "1")],
            )
        except BaseException:
            self._done(link)
            raise
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/csv; charset=utf-8"),
                (
                    "Content-Disposition",
                    f'attachment; filename="segment-history-{request.period.label}.csv"',
                ),
            ],
        )
        return self._body(link, first, chunks)

    def _body(
        self, link: str, first: bytes, chunks: Generator[bytes, None, None]
    ) -> Iterator[bytes]:
        # A generator, so that waitress's close() ends the COPY and frees the bulk slot
        # as soon as the client goes away. Without Content-Length the body is chunked,
        # and a failure mid-way closes the connection without the final chunk, which
        # tells the client the download is incomplete.
        try:
            yield first
            yield from chunks
        except psycopg.Error as exc:
            log.warning("report_stream_failed", error=type(exc).__name__)
            raise
        finally:
            chunks.close()
            self._done(link)

    def _done(self, link: str) -> None:
        with self._lock:
            self._downloading.discard(link)

"""Blocking RPC handlers served from the event loop, each on a worker thread.

segsvc serves gRPC with grpc.aio (segsvc.server): the hot reads are coroutines answered
on the event loop, and everything else - writes, streams, sign-in, health - is plain
blocking code over psycopg's pools that runs here, on one of a fixed number of worker
threads, so that it never stalls the loop.

grpc.aio can run blocking handlers itself (its `migration_thread_pool`), but not as
segsvc needs: it runs each step of a streaming handler without the call's contextvars
(the interceptor's CURRENT_CALL, a transaction's announcements), and its sync context
can neither cancel a call nor say whether it is still active, which the stream watchdog
and the all-or-nothing import depend on. So the interceptor hands every blocking handler
to `BlockingCalls`, which:

- runs all of one call's steps in one copy of the call's contextvars;
- gives the handler a `ThreadContext`: the part of grpc's sync ServicerContext that
  servicers, the watchdog and grpc's health servicer use (`is_active`, `cancel`,
  `add_callback`, metadata);
- reads a request stream for the thread through the loop, message by message, and
  stops at once when the call is cancelled (by the client, the watchdog or a shutdown):
  the thread then sees `StreamCancelled`, never a normal end, so nothing half-received
  is committed;
- writes a response stream from the loop, one message a step, and when the call ends
  early closes the handler's generator on a worker (after its running step), so its
  `finally` blocks release their database connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import grpc

from segsvc.api.stream_watchdog import StreamCancelled

P = ParamSpec("P")
T = TypeVar("T")
_END = object()
# How long is_active lets the loop handle events already arrived for a call; once per
# stream end, so its cost is negligible.
SETTLE_SECONDS = 0.005

if TYPE_CHECKING:
    AioContext = grpc.aio.ServicerContext[Any, Any]
else:  # grpc's runtime classes are not generic
    AioContext = grpc.aio.ServicerContext

# A blocking handler as the sync API calls it: (request or request iterator, context).
Blocking = Callable[[Any, grpc.ServicerContext], Any]


class _RequestPump:
    """A request stream read from a worker thread: each message is read by the loop.

    The loop reads one message ahead: while the thread works on a message (an import
    writes its ids to COPY), the next one is already being received and parsed, so the
    two overlap instead of taking turns (one message of 10 000 ids held in advance).
    """

    def __init__(self, messages: AsyncIterator[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._messages = messages
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: Future[Any] | None = None
        self._cancelled = False
        self._ended = False

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self._ended:
            raise StopIteration
        pending = self._pending or self._read_next()
        try:
            message = pending.result()
        except (FutureCancelled, Exception):
            raise StreamCancelled("the request stream was cancelled") from None
        if message is _END:
            self._ended = True
            self._pending = None
            raise StopIteration
        self._read_next()
        return message

    def _read_next(self) -> Future[Any]:
        with self._lock:
            if self._cancelled:
                raise StreamCancelled("the request stream was cancelled")
            self._pending = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
            return self._pending

    async def _read(self) -> Any:
        return await anext(self._messages, _END)

    def cancel(self) -> None:
        """Called on the loop when the call ends: a waiting or later read fails."""
        with self._lock:
            self._cancelled = True
            if self._pending is not None:
                self._pending.cancel()


class ThreadContext:
    """What a blocking handler sees of its call (grpc's sync ServicerContext, in part)."""

    def __init__(
        self, context: AioContext, loop: asyncio.AbstractEventLoop, pump: _RequestPump | None
    ) -> None:
        self._context = context
        self._loop = loop
        self._task = asyncio.current_task()
        self._pump = pump
        self._callbacks: list[Callable[[], None]] = []
        self._ended = False
        self._aborting: asyncio.Future[None] | None = None

    def invocation_metadata(self) -> Any:
        """The client's metadata."""
        return self._context.invocation_metadata()

    def set_trailing_metadata(self, metadata: Any) -> None:
        """Trailing metadata of the answer."""
        self._context.set_trailing_metadata(metadata)

    def time_remaining(self) -> float | None:
        """Seconds before the client's deadline (None without one)."""
        return self._context.time_remaining()

    def peer(self) -> str:
        """The client's address."""
        return self._context.peer()

    def is_active(self) -> bool:
        """False once the call has been cancelled or has ended.

        grpc.aio shows a client's cancellation to the reader of a request stream as the
        stream's normal end and tells the call's task only when the loop gets to it, an
        instant later. Asked from a worker thread (the import deciding whether to
        commit, the watchdog at a stream's end), this first lets the loop handle what
        has arrived, so that a cancelled stream is not taken for a completed one.
        """
        if not self._ended:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread
                # RuntimeError, TimeoutError: the loop has closed, or stopped meanwhile.
                with contextlib.suppress(RuntimeError, TimeoutError):
                    pending = asyncio.run_coroutine_threadsafe(_let_loop_settle(), self._loop)
                    pending.result(timeout=1)
        return not self._ended and not self._context.done()

    def cancel(self) -> None:
        """Cancel the call (from any thread): the client gets CANCELLED."""
        self._loop.call_soon_threadsafe(self._cancel_on_loop)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Run `callback` when the call ends, however it ends."""
        self._callbacks.append(callback)
        return True

    def _cancel_on_loop(self) -> None:
        if self._ended:
            return
        self.end()
        # grpc.aio has no call cancellation: end the call with CANCELLED, then stop the
        # handler's task from waiting for its thread.
        self._aborting = asyncio.ensure_future(self._abort_cancelled())
        if self._task is not None:
            self._task.cancel()

    async def _abort_cancelled(self) -> None:
        # AbortError: aborted now, as asked; UsageError: the call had already ended.
        with contextlib.suppress(grpc.aio.AbortError, grpc.aio.UsageError):
            await self._context.abort(grpc.StatusCode.CANCELLED, "cancelled by the server")

    def end(self) -> None:
        """The call is over: stop its request stream, run its callbacks (on the loop)."""
        if self._ended:
            return
        self._ended = True
        if self._pump is not None:
            self._pump.cancel()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


async def _let_loop_settle() -> None:
    await asyncio.sleep(SETTLE_SECONDS)


def _for_thread(request: Any, context: AioContext) -> tuple[Any, ThreadContext]:
    """The request as a worker thread reads it (a request stream through a pump), and
    the context the handler gets."""
    loop = asyncio.get_running_loop()
    pump = _RequestPump(request, loop) if hasattr(request, "__aiter__") else None
    return request if pump is None else pump, ThreadContext(context, loop, pump)


def _close_after(step: Future[Any], steps: contextvars.Context, iterator: Iterator[Any]) -> None:
    """Close a response generator, in its call's contextvars, once its running step has
    returned (a generator cannot be closed while it runs)."""
    wait([step])
    close = getattr(iterator, "close", None)
    if close is not None:
        steps.run(close)


class BlockingCalls:
    """Worker threads for the blocking handlers; see the module docstring."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="grpc")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` on a worker thread, in the caller's contextvars."""
        context = contextvars.copy_context()
        step = self._executor.submit(lambda: context.run(fn, *args, **kwargs))
        return await asyncio.wrap_future(step)

    async def unary(self, behavior: Blocking, request: Any, context: AioContext) -> Any:
        """A handler with one response; `request` is a message or an async iterator."""
        request, call = _for_thread(request, context)
        try:
            return await self.run(behavior, request, cast(grpc.ServicerContext, call))
        finally:
            call.end()

    async def stream(self, behavior: Blocking, request: Any, context: AioContext) -> None:
        """A handler with a stream of responses, each written as soon as it is made."""
        request, call = _for_thread(request, context)
        steps = contextvars.copy_context()
        step: Future[Any] | None = None
        responses: Iterator[Any] | None = None
        try:
            thread_context = cast(grpc.ServicerContext, call)
            step = self._executor.submit(lambda: steps.run(behavior, request, thread_context))
            responses = iter(await asyncio.wrap_future(step))
            while True:
                step = self._executor.submit(lambda: steps.run(next, responses, _END))
                message = await asyncio.wrap_future(step)
                if message is _END:
                    step = None
                    return
                await context.write(message)
        finally:
            call.end()
            if step is not None and responses is not None:
                self._executor.submit(_close_after, step, steps, responses)

    def shutdown(self) -> None:
        """Stop taking work; running handlers finish on their own."""
        self._executor.shutdown(wait=False, cancel_futures=True)

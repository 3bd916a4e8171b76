"""Delivery of callback events, off the request path: one dispatcher per process.

`submit` is all a request pays: an append to a bounded deque (when it is full the event is
dropped and counted in `ogem_callback_events_dropped_total{reason="queue_full"}`), and, once a
batch's worth waits, a wake-up of the delivery thread. The delivery runs in a daemon thread with
its own asyncio loop and HTTP client, so it works the same in a web worker, a Celery worker
(internal calls: batch lines, assistants' runs) or a management command, and a slow platform
never takes time from the event loop serving /v1.

In that thread each configured sink (a team's own Langfuse project is a sink of its own) has its
buffer, bounded too, and a task that sends batches of up to its `max_batch` events, at once when
a batch is full, else after `flush_interval` seconds. `SinkRetryable` (a timeout, 429, 5xx) is
retried `max_retries` times with exponential backoff and jitter, then the batch is dropped and
counted (`retries_exhausted`); `SinkRejected` (a bad key, a shape refused) drops it at once
(`rejected`), logged without its settings. Accepted events count in
`ogem_callback_events_sent_total{sink}`.

A process that stops flushes what it holds for up to OGEM_CALLBACKS_FLUSH_SECONDS: at exit
(`atexit`: uvicorn's and granian's workers return from their server on SIGTERM once requests
drained) and in Celery's pool processes at `worker_process_shutdown` (ogem_site/celery.py). What
is still queued then is counted as dropped (`shutdown`). After a fork the child starts its own
thread at its first event.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings as django_settings

from gateway.callbacks.base import CallbackEvent, Sink, SinkRejected, SinkRetryable
from gateway.callbacks.registry import sink_class
from gateway.callbacks.settings import CallbackSettings, SinkSpec
from ogem_site.metrics import CALLBACK_EVENTS_DROPPED, CALLBACK_EVENTS_SENT

logger = logging.getLogger(__name__)

BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time
BACKOFF_MAX = 30.0
WAKE_AT = 64  # queued events that wake the delivery thread before its interval
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_Item = tuple[CallbackEvent, tuple[SinkSpec, ...]]


def _dropped(sink: str, reason: str, count: int = 1) -> None:
    CALLBACK_EVENTS_DROPPED.labels(sink=sink, reason=reason).inc(count)


class _SinkWorker:
    """One sink's buffer and the task that sends it."""

    def __init__(self, spec: SinkSpec, sink: Sink | None, dispatcher: Dispatcher) -> None:
        self.spec = spec
        self.sink = sink
        self.dispatcher = dispatcher
        self.buffer: deque[CallbackEvent] = deque()
        self.ready = asyncio.Event()
        self.checked = not spec.untrusted
        self.refused = False

    def put(self, event: CallbackEvent) -> None:
        if len(self.buffer) >= self.dispatcher.queue_size:
            _dropped(self.spec.name, "queue_full")
            self.dispatcher.done(1)
            return
        self.buffer.append(event)
        self.ready.set()

    async def run(self, client: httpx.AsyncClient) -> None:
        dispatcher = self.dispatcher
        while True:
            await self.ready.wait()
            if self.sink is not None and not dispatcher.stopping:
                batch_size = self.sink.max_batch
                deadline = time.monotonic() + dispatcher.flush_interval
                # A partial batch waits for more, up to the flush interval.
                while (
                    len(self.buffer) < batch_size
                    and not dispatcher.stopping
                    and not dispatcher.flushing
                    and (left := deadline - time.monotonic()) > 0
                ):
                    self.ready.clear()
                    try:
                        await asyncio.wait_for(self.ready.wait(), timeout=left)
                    except TimeoutError:
                        break
            while self.buffer:
                size = self.sink.max_batch if self.sink is not None else len(self.buffer)
                batch = [self.buffer.popleft() for _ in range(min(size, len(self.buffer)))]
                await self._deliver(batch, client)
            self.ready.clear()

    async def _deliver(self, batch: list[CallbackEvent], client: httpx.AsyncClient) -> None:
        name = self.spec.name
        try:
            if self.sink is None:
                _dropped(name, "invalid", len(batch))
                return
            if not self.checked:
                self.refused = not await _urls_allowed(self.spec)
                self.checked = True
                if self.refused:
                    logger.warning("callback %s: a team's URL reaches a private address", name)
            if self.refused:
                _dropped(name, "refused_url", len(batch))
                return
            attempt = 0
            while True:
                try:
                    await self.sink.send(batch, client=client)
                except SinkRejected as exc:
                    logger.warning("callback %s refused %d events: %s", name, len(batch), exc)
                    _dropped(name, "rejected", len(batch))
                    return
                except (SinkRetryable, httpx.TransportError) as exc:
                    attempt += 1
                    if attempt > self.dispatcher.max_retries or self.dispatcher.stopping:
                        logger.warning(
                            "callback %s: %d events dropped after %d attempts (%s)",
                            name,
                            len(batch),
                            attempt,
                            type(exc).__name__,
                        )
                        _dropped(name, "retries_exhausted", len(batch))
                        return
                    delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))
                    continue
                except Exception:
                    logger.exception("callback %s failed on %d events", name, len(batch))
                    _dropped(name, "rejected", len(batch))
                    return
                CALLBACK_EVENTS_SENT.labels(sink=name).inc(len(batch))
                return
        finally:
            self.dispatcher.done(len(batch))


async def _urls_allowed(spec: SinkSpec) -> bool:
    """A team's settings: every http(s) URL among them must reach public addresses only (unless
    OGEM_CALLBACKS_ALLOW_PRIVATE_URLS)."""
    from providers.addresses import address_forbidden

    allow_private = bool(getattr(django_settings, "OGEM_CALLBACKS_ALLOW_PRIVATE_URLS", False))
    loop = asyncio.get_running_loop()
    for value in spec.settings.values():
        if not value.startswith(("http://", "https://")):
            continue
        parts = urlsplit(value)
        if not parts.hostname:
            return False
        try:
            infos = await loop.getaddrinfo(parts.hostname, parts.port or 443)
        except OSError:
            return False
        if any(address_forbidden(str(info[4][0]), allow_private=allow_private) for info in infos):
            return False
    return True


class Dispatcher:
    def __init__(self) -> None:
        self.queue: deque[_Item] = deque()
        self.queue_size = CallbackSettings().queue_size
        self.flush_interval = CallbackSettings().flush_interval
        self.max_retries = CallbackSettings().max_retries
        self.settings: CallbackSettings | None = None
        self.stopping = False
        self.flushing = False
        self._pid = 0
        self._lock = threading.Lock()
        self._outstanding = 0  # submitted events (per sink) not yet sent nor dropped
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._workers: dict[tuple[Any, ...], _SinkWorker] = {}
        self._by_spec: dict[int, tuple[SinkSpec, _SinkWorker]] = {}

    def configure(self, settings: CallbackSettings | None) -> None:
        self.settings = settings
        if settings is not None:
            self.queue_size = settings.queue_size
            self.flush_interval = settings.flush_interval
            self.max_retries = settings.max_retries

    # ---- the request's side ----------------------------------------------------------------

    def submit(self, event: CallbackEvent, sinks: Sequence[SinkSpec]) -> None:
        if self._pid != os.getpid():
            self._start()
        if len(self.queue) >= self.queue_size or self.stopping:
            for spec in sinks:
                _dropped(spec.name, "queue_full")
            return
        with self._lock:
            self._outstanding += len(sinks)
        self.queue.append((event, tuple(sinks)))
        if len(self.queue) >= WAKE_AT:
            self._wake_up()

    def _wake_up(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed (the process is stopping)
                pass

    def done(self, count: int) -> None:
        with self._lock:
            self._outstanding -= count

    # ---- the delivery thread ---------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child inherits the parent's deque but not its thread: start afresh.
            self.queue = deque()
            self._workers = {}
            self._by_spec = {}
            self._outstanding = 0
            self.stopping = False
            started = threading.Event()
            self._thread = threading.Thread(
                target=self._thread_main, args=(started,), name="ogem-callbacks", daemon=True
            )
            self._thread.start()
            started.wait(timeout=5)
            self._pid = os.getpid()
        atexit.register(self.close)

    def _thread_main(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(started))
        finally:
            loop.close()
            self._loop = None

    async def _main(self, started: threading.Event) -> None:
        self._wake = asyncio.Event()
        started.set()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            tasks: set[asyncio.Task[None]] = set()
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
                except TimeoutError:
                    pass
                self._wake.clear()
                self._distribute(client, tasks)
                if self.stopping:
                    break
            # Stopping: every buffer sends what it holds (no waiting, no new retries).
            for worker in self._workers.values():
                worker.ready.set()
            # The count moves in both threads (submit, done): polled, not an asyncio.Event.
            while self._outstanding > 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()

    def _distribute(self, client: httpx.AsyncClient, tasks: set[asyncio.Task[None]]) -> None:
        queue = self.queue
        by_spec = self._by_spec
        while queue:
            event, sinks = queue.popleft()
            for spec in sinks:
                # By the spec object first (the configuration's and cached team plans' live on):
                # the settings' key is built once per spec, not once per event.
                known = by_spec.get(id(spec))
                if known is not None and known[0] is spec:
                    worker = known[1]
                else:  # kept with its spec: an id is never taken for another object meanwhile
                    worker = self._worker_for(spec, client, tasks)
                    if len(by_spec) >= 4096:  # team plans come and go: a bounded memo
                        by_spec.clear()
                    by_spec[id(spec)] = (spec, worker)
                worker.put(event)
        if self.flushing:
            for worker in self._workers.values():
                worker.ready.set()

    def _worker_for(
        self, spec: SinkSpec, client: httpx.AsyncClient, tasks: set[asyncio.Task[None]]
    ) -> _SinkWorker:
        """The worker of these settings: one per platform destination, shared by equal specs
        (a team's plan rebuilt after a cache eviction still sends through the same buffer)."""
        key = (spec.name, spec.kind, spec.untrusted, tuple(sorted(spec.settings.items())))
        worker = self._workers.get(key)
        if worker is None:
            worker = self._workers[key] = _SinkWorker(spec, _sink_make(spec), self)
            task = asyncio.get_running_loop().create_task(worker.run(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return worker

    # ---- flushing ----------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now, without waiting for the interval; True once every event
        was sent or dropped (tests, Celery tasks that want their events out)."""
        if self._pid != os.getpid() or self._loop is None:
            return True
        self.flushing = True
        try:
            deadline = time.monotonic() + timeout
            while True:
                self._wake_up()
                if self._outstanding <= 0 and not self.queue:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
        finally:
            self.flushing = False

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is held, for up to `timeout` seconds (OGEM_CALLBACKS_FLUSH_SECONDS),
        then stop the thread; what is left is counted as dropped (`shutdown`)."""
        if self._pid != os.getpid() or self._thread is None:
            return
        if timeout is None:
            timeout = float(getattr(django_settings, "OGEM_CALLBACKS_FLUSH_SECONDS", 5))
        self.stopping = True
        self._wake_up()
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            left = sum(len(w.buffer) for w in self._workers.values())
            for event_sinks in self.queue:
                left += len(event_sinks[1])
            if left:
                logger.warning("callbacks: %d events not delivered before exit", left)
                _dropped("*", "shutdown", left)
        self._pid = 0


def _sink_make(spec: SinkSpec) -> Sink | None:
    cls = sink_class(spec.kind)
    if cls is None:
        return None
    try:
        return cls(spec.settings)
    except (ValueError, KeyError) as exc:
        logger.warning("callback %s cannot start: %s", spec.name, exc)
        return None


_dispatcher = Dispatcher()


def dispatcher_get(settings: CallbackSettings | None = None) -> Dispatcher:
    """This process's dispatcher, with the configuration's queue bound and intervals."""
    if settings is not None and settings is not _dispatcher.settings:
        _dispatcher.configure(settings)
    return _dispatcher


def callbacks_flush(timeout: float = 5.0) -> bool:
    return _dispatcher.flush(timeout)


def callbacks_close() -> None:
    _dispatcher.close()

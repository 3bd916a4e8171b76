"""The worker's end of callback delivery: one dispatcher per process, feeding a delivery process of
its own (deliver.py) through a pipe (gateway/child_pipe.py), as tracing feeds its exporter.

`submit` is all a request pays: an append to a bounded deque (when it is full the event is dropped
and counted in `ogem_callback_events_dropped_total{reason="queue_full"}`), and, once a batch's
worth waits, a wake-up of the worker's hand-over thread (gateway/child_pipe.py, shared with
tracing's pipe). That thread marshals the queued events down the pipe, each with the numbers of its
sinks (a sink's spec, with its keys, crosses the pipe once per delivery process). The delivery
process formats each vendor's payload, batches, retries and sends, on its own CPU time and GIL: a
slow or unreachable platform never takes time from the event loop serving /v1. It reports what it
sent and dropped; the thread adds that to ogem_callback_events_sent_total{sink} and
ogem_callback_events_dropped_total{sink,reason}, so the worker's /metrics shows them. A delivery
process that dies is started again (its events are counted as dropped, `exited`); while none runs,
new events are dropped the same way. This works the same in a web worker, a Celery worker (internal
calls: batch lines, assistants' runs) or a management command.

A process that stops flushes what it holds for up to OGEM_CALLBACKS_FLUSH_SECONDS: at exit
(`atexit`: uvicorn's and granian's workers return from their server on SIGTERM once requests
drained) and in Celery's pool processes at `worker_process_shutdown` (ogem_site/celery.py). What
is still undelivered then is counted as dropped (`shutdown`). After a fork the child starts its
own delivery process at its first event.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import marshal
import os
import struct
from collections.abc import Sequence
from typing import Any

import orjson
from django.conf import settings as django_settings

from gateway.callbacks.base import CallbackEvent, EventValues
from gateway.callbacks.settings import CallbackSettings, SinkSpec
from gateway.child_pipe import ChildPipe, frame
from ogem_site.metrics import CALLBACK_EVENTS_DROPPED, CALLBACK_EVENTS_SENT

logger = logging.getLogger(__name__)

BATCH_EVENTS = 32  # queued events that wake the pipe's thread before its interval
SPECS_MAX = 4096  # sink specs numbered per delivery process (team plans come and go)


def _dropped(sink: str, reason: str, count: int = 1) -> None:
    CALLBACK_EVENTS_DROPPED.labels(sink=sink, reason=reason).inc(count)


class CallbackPipe(ChildPipe):
    """The queue of (event, sinks), the thread that empties it and the delivery process."""

    module = "gateway.callbacks.deliver"

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._numbers: dict[int, tuple[SinkSpec, int]] = {}  # id(spec) -> (spec, its number)
        self._counter = itertools.count(1)
        self._config: tuple[Any, ...] | None = None  # as the delivery process has it
        self._pending: dict[str, int] = {}  # events (per sink) handed over, not yet reported
        super().__init__()

    def put(self, event: EventValues | CallbackEvent, sinks: Sequence[SinkSpec]) -> None:
        queue = self.queue
        if len(queue) >= self.dispatcher.queue_size or self._closing:
            for spec in sinks:
                _dropped(spec.name, "queue_full")
            return
        queue.append((event, sinks))
        if len(queue) >= BATCH_EVENTS and not self._wake.is_set():
            self._wake.set()

    def _send_queued(self) -> None:
        queue = self.queue
        if not queue:
            return
        items = [queue.popleft() for _ in range(len(queue))]
        process = self._child()
        if process is None:
            for _, sinks in items:
                for spec in sinks:
                    _dropped(spec.name, "exited")
            return
        frames: list[bytes] = []
        config = self.dispatcher.config()
        if config != self._config:
            frames.append(frame(("config", *config)))
            self._config = config
        # Requests share their plan's sinks tuple: numbered once a batch, counted once a batch.
        plans: dict[int, list[Any]] = {}  # id(sinks) -> [sinks, numbers, events]
        batch = []
        for values, sinks in items:
            plan = plans.get(id(sinks))
            if plan is None:
                plan = plans[id(sinks)] = [sinks, self._numbered(sinks, frames), 0]
            plan[2] += 1
            batch.append((values, plan[1]))
        pending = self._pending
        for sinks, _, count in plans.values():
            for spec in sinks:
                pending[spec.name] = pending.get(spec.name, 0) + count
        frames.append(_events_frame(batch))
        if not self._send(process, b"".join(frames)):
            self._exited("exited")

    def _numbered(self, sinks: Sequence[SinkSpec], frames: list[bytes]) -> tuple[int, ...]:
        """The sinks' numbers; a spec the delivery process does not know yet is sent first."""
        numbers = self._numbers
        numbered = []
        for spec in sinks:
            known = numbers.get(id(spec))
            if known is not None and known[0] is spec:
                numbered.append(known[1])
                continue
            # Kept with its spec: an id is never taken for another object meanwhile.
            if len(numbers) >= SPECS_MAX:
                numbers.clear()
                frames.append(frame(("forget",)))
            number = next(self._counter)
            numbers[id(spec)] = (spec, number)
            told = ("sink", number, spec.name, spec.kind, spec.settings, spec.untrusted)
            frames.append(frame(told))
            numbered.append(number)
        return tuple(numbered)

    def _answer(self, words: list[bytes]) -> None:
        if words[0] == b"counts":
            pending = self._pending
            for sink, outcome, number in orjson.loads(b" ".join(words[1:])):
                pending[sink] = pending.get(sink, 0) - number
                if outcome == "sent":
                    CALLBACK_EVENTS_SENT.labels(sink=sink).inc(number)
                else:
                    _dropped(sink, outcome, number)
        elif words[0] == b"flushed":
            self._flushed = int(words[1])

    def _idle(self) -> None:
        self._answers_read(0)

    def _exited(self, reason: str) -> None:
        """What the delivery process held is lost: counted, and its specs sent again to the
        next one."""
        for sink, number in self._pending.items():
            if number > 0:
                _dropped(sink, reason, number)
        if any(number > 0 for number in self._pending.values()):
            logger.warning("callbacks: %d events not delivered (%s)", self.undelivered, reason)
        self._pending = {}
        self._numbers = {}
        self._config = None

    @property
    def undelivered(self) -> int:
        return sum(number for number in self._pending.values() if number > 0)


def _events_frame(batch: list[tuple[Any, tuple[int, ...]]]) -> bytes:
    message = ("events", batch)
    try:
        data = marshal.dumps(message)
    except ValueError:  # a value of a type marshal does not know (request metadata): as JSON
        plain = [(orjson.loads(orjson.dumps(event, default=str)), sinks) for event, sinks in batch]
        data = marshal.dumps(("events", plain))
    return struct.pack("<I", len(data)) + data


class Dispatcher:
    def __init__(self) -> None:
        defaults = CallbackSettings()
        self.queue_size = defaults.queue_size
        self.flush_interval = defaults.flush_interval
        self.max_retries = defaults.max_retries
        self.settings: CallbackSettings | None = None
        self._registered = False
        self._pipe: CallbackPipe | None = None

    def configure(self, settings: CallbackSettings | None) -> None:
        self.settings = settings
        if settings is not None:
            self.queue_size = settings.queue_size
            self.flush_interval = settings.flush_interval
            self.max_retries = settings.max_retries

    def config(self) -> tuple[Any, ...]:
        """What the delivery process is told (read by the pipe's thread, not per request)."""
        allow_private = bool(getattr(django_settings, "OGEM_CALLBACKS_ALLOW_PRIVATE_URLS", False))
        return (self.queue_size, self.flush_interval, self.max_retries, allow_private)

    def submit(self, event: EventValues | CallbackEvent, sinks: Sequence[SinkSpec]) -> None:
        pipe = self._pipe
        if pipe is None:
            pipe = self._start()
        pipe.put(event, sinks)

    def _start(self) -> CallbackPipe:
        self._pipe = CallbackPipe(self)
        if not self._registered:
            atexit.register(self.close)
            # A forked child inherits the pipe object, not its thread: it starts its own (the
            # parent's delivery process stays the parent's).
            os.register_at_fork(after_in_child=self._forget)
            self._registered = True
        return self._pipe

    def _forget(self) -> None:
        self._pipe = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything queued now, without waiting for the interval; True once every event
        was sent or dropped (tests, Celery tasks that want their events out)."""
        pipe = self._pipe
        return pipe.flush(timeout) if pipe is not None else True

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is held, for up to `timeout` seconds (OGEM_CALLBACKS_FLUSH_SECONDS),
        then stop the delivery process; what is left is counted as dropped (`shutdown`)."""
        pipe = self._pipe
        if pipe is None:
            return
        if timeout is None:
            timeout = float(getattr(django_settings, "OGEM_CALLBACKS_FLUSH_SECONDS", 5))
        self._pipe = None
        pipe.close(wait=max(timeout, 0.01))


_dispatcher = Dispatcher()


def dispatcher_get(settings: CallbackSettings | None = None) -> Dispatcher:
    """This process's dispatcher, with the configuration's queue bound and intervals."""
    if settings is not None and settings is not _dispatcher.settings:
        _dispatcher.configure(settings)
    return _dispatcher


def dispatcher_submit(
    event: EventValues, sinks: Sequence[SinkSpec], settings: CallbackSettings | None
) -> None:
    """`dispatcher_get(settings).submit(event, sinks)` in one call (the request path's)."""
    dispatcher = _dispatcher
    if settings is not None and settings is not dispatcher.settings:
        dispatcher.configure(settings)
    pipe = dispatcher._pipe
    if pipe is None:
        pipe = dispatcher._start()
    pipe.put(event, sinks)


def callbacks_flush(timeout: float = 5.0) -> bool:
    return _dispatcher.flush(timeout)


def callbacks_close() -> None:
    _dispatcher.close()

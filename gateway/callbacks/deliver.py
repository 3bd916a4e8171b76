"""The callbacks' delivery process: `python -m gateway.callbacks.deliver`, one per process that
emits events (a web worker, a Celery worker, a management command), started by its dispatcher
(dispatcher.py) at its first event.

The worker writes down the pipe (gateway/child_pipe.py's frames):
- ("config", queue_size, flush_interval, max_retries, allow_private): before the first events,
  and again when the configuration changes;
- ("sink", number, name, kind, settings, untrusted): a sink spec, once per process; events name
  it by its number (a team's keys so cross the pipe, never a command line nor a log);
- ("forget",): the worker has renumbered its specs (its memo is bounded);
- ("events", [(event, (number, ...)), ...]): events (base.EVENT_FIELDS' tuples) and the sinks
  of each;
- ("flush", n).

Each sink destination has its buffer, bounded too, and a task that sends batches of up to its
`max_batch` events (and `max_bytes` of JSON, for a sink that declares it), at once when a batch
is full, else after `flush_interval` seconds.
`SinkRetryable` (a timeout, 429, 5xx) is retried `max_retries` times with exponential backoff
and jitter, then the batch is dropped (`retries_exhausted`); `SinkRejected` (a bad key, a shape
refused) drops it at once (`rejected`), logged without its settings. A team's sink
connects only to addresses the policy allows, checked at each connection, and its URLs are
checked before its first send (`refused_url`).

It answers on its standard output, a line each: `counts [[sink, outcome, n], ...]` (JSON;
outcome `sent` or a drop's reason) every REPORT_EVERY seconds while there is something to say,
and `flushed n` once every event received before the flush was sent or dropped. When the pipe
closes it sends what its buffers hold (no new retries), reports and exits. The worker adds the
counts to its ogem_callback_events_sent_total and ogem_callback_events_dropped_total.
"""

from __future__ import annotations

import asyncio
import logging
import marshal
import random
import sys
import time
from bisect import bisect_right
from collections import deque
from itertools import accumulate, islice
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx
import orjson

from gateway.callbacks.base import (
    CallbackEvent,
    Sink,
    SinkRejected,
    SinkRetryable,
    event_from_values,
)
from gateway.callbacks.poster import Poster
from gateway.callbacks.registry import sink_class
from gateway.callbacks.settings import CallbackSettings, SinkSpec
from gateway.child_pipe import child_collector, child_scheduled
from providers.addresses import (
    AddressPolicy,
    AddressRefusedError,
    addresses_resolve,
    guarded_transport,
)

logger = logging.getLogger(__name__)

BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time
BACKOFF_MAX = 30.0
REPORT_EVERY = 1.0  # seconds between counts lines (a flush is answered with its own)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)

Held = CallbackEvent | bytes  # what a sink's buffer holds: an event, or its JSON (EncodedSink)


class _SinkWorker:
    """One sink's buffer and the task that sends it. An `EncodedSink`'s buffer holds its events'
    JSON (bytes), encoded once for every such sink of the event; another's, the events."""

    def __init__(self, spec: SinkSpec, sink: Sink | None, delivery: Delivery) -> None:
        self.spec = spec
        self.sink = sink
        self.delivery = delivery
        self.encoded = sink is not None and hasattr(sink, "send_encoded")
        # A bound in bytes on an encoded batch (the webhook's): its buffer's bytes are counted.
        self.limit: int = getattr(sink, "max_bytes", 0) if self.encoded else 0
        self.held = 0
        self.buffer: deque[Held] = deque()
        self.ready = asyncio.Event()
        self.since = 0.0  # when the buffer last started (its first event since it was empty)
        # A team's sink connects only to addresses the policy allows, checked at each connection
        # (providers/addresses.py): its URLs are the team's, not the operator's.
        self.policy = (
            AddressPolicy(allow_private=delivery.allow_private) if spec.untrusted else None
        )
        poster = getattr(sink, "poster", None)  # a sink's own connection (the webhook's)
        if self.policy is not None and isinstance(poster, Poster):
            poster.policy = self.policy
        self.checked = self.refused = self.warned = False

    def put(self, events: list[Held]) -> None:
        """Buffer events (those past the bound are dropped). The task is woken when the buffer
        starts (the interval's clock), when a batch is full, and by a flush or the end, not at
        every event."""
        buffer = self.buffer
        room = self.delivery.queue_size - len(buffer)
        if room < len(events):
            self.delivery.count(self.spec.name, "queue_full", len(events) - max(room, 0))
            events = events[: max(room, 0)]
            if not events:
                return
        if not buffer:
            self.since = time.monotonic()
            self.ready.set()
        buffer.extend(events)
        if self.limit:
            self.held += sum(map(len, events))  # type: ignore[arg-type]
        if self.sink is None or len(buffer) >= self.sink.max_batch or self._over_limit():
            self.ready.set()

    def _over_limit(self) -> bool:
        return bool(self.limit) and self.held >= self.limit

    def _batch(self, size: int) -> list[Held]:
        """The next batch: `size` events, fewer when the bytes bound comes first (an event
        alone over it still goes, alone)."""
        buffer = self.buffer
        if len(buffer) <= size and self.held <= self.limit:  # all of it (no bound: held is 0)
            batch = list(buffer)
            buffer.clear()
            self.held = 0
            return batch
        if not self.limit:
            return [buffer.popleft() for _ in range(size)]
        # The running total of the next events' bytes: as many as stay within the bound.
        totals = list(accumulate(map(len, islice(buffer, size))))  # type: ignore[arg-type]
        count = max(bisect_right(totals, self.limit), 1)
        self.held -= totals[count - 1]
        return [buffer.popleft() for _ in range(count)]

    async def run(self, client: httpx.AsyncClient) -> None:
        delivery = self.delivery
        buffer = self.buffer
        while True:
            await self.ready.wait()
            self.ready.clear()
            while buffer:
                size = self.sink.max_batch if self.sink is not None else len(buffer)
                # Full batches go at once; a partial one waits for more, up to the flush
                # interval from when the buffer started (what a full batch left included).
                full = len(buffer) >= size or self._over_limit()
                if not full and not delivery.stopping and not delivery.flushing:
                    left = self.since + delivery.flush_interval - time.monotonic()
                    if left > 0:
                        try:
                            await asyncio.wait_for(self.ready.wait(), timeout=left)
                        except TimeoutError:
                            pass
                        self.ready.clear()
                        continue
                await self._deliver(self._batch(size), client)

    async def _deliver(self, batch: list[Held], client: httpx.AsyncClient) -> None:
        name = self.spec.name
        count = self.delivery.count
        if self.sink is None:
            count(name, "invalid", len(batch))
            return
        if self.policy is not None:
            if not self.checked:
                # Every URL among its settings, once up front: the only check of those no
                # guarded connection makes (boto3's, to a team's `s3_endpoint_url`).
                self.refused = not await _urls_allowed(self.spec, self.policy)
                self.checked = True
            if self.refused:
                self._refused(len(batch))
                return
            client = self.delivery.guarded_client(self.policy)
        attempt = 0
        while True:
            try:
                if self.encoded:
                    await self.sink.send_encoded(batch, client=client)  # type: ignore[attr-defined]
                else:
                    await self.sink.send(batch, client=client)  # type: ignore[arg-type]
            except SinkRejected as exc:
                logger.warning("callback %s refused %d events: %s", name, len(batch), exc)
                count(name, "rejected", len(batch))
                return
            except AddressRefusedError:
                self._refused(len(batch))
                return
            except (SinkRetryable, httpx.TransportError) as exc:
                attempt += 1
                if attempt > self.delivery.max_retries or self.delivery.stopping:
                    logger.warning(
                        "callback %s: %d events dropped after %d attempts (%s)",
                        name,
                        len(batch),
                        attempt,
                        type(exc).__name__,
                    )
                    count(name, "retries_exhausted", len(batch))
                    return
                delay = min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX)
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
                continue
            except Exception:
                logger.exception("callback %s failed on %d events", name, len(batch))
                count(name, "rejected", len(batch))
                return
            count(name, "sent", len(batch))
            return

    def _refused(self, events: int) -> None:
        if not self.warned:  # once per sink: the count says how often
            logger.warning("callback %s: a team's URL reaches a private address", self.spec.name)
            self.warned = True
        self.delivery.count(self.spec.name, "refused_url", events)


async def _urls_allowed(spec: SinkSpec, policy: AddressPolicy) -> bool:
    """A team's settings: every http(s) URL among them must reach allowed addresses only."""
    for value in spec.settings.values():
        if not value.startswith(("http://", "https://")):
            continue
        parts = urlsplit(value)
        if not parts.hostname:
            return False
        try:
            await addresses_resolve(parts.hostname, parts.port or 443, policy=policy)
        except (OSError, AddressRefusedError):
            return False
    return True


class Delivery:
    """The process's buffers and counts."""

    def __init__(self, outbound: BinaryIO) -> None:
        defaults = CallbackSettings()
        self.queue_size = defaults.queue_size
        self.flush_interval = defaults.flush_interval
        self.max_retries = defaults.max_retries
        self.allow_private = False
        self.stopping = False
        self.flushing = 0  # flushes waiting
        self.outstanding = 0  # events (per sink) received, not yet sent nor dropped
        self.outbound = outbound
        self.counts: dict[tuple[str, str], int] = {}
        self.specs: dict[int, _SinkWorker] = {}
        self.workers: dict[tuple[Any, ...], _SinkWorker] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.client: httpx.AsyncClient | None = None
        self.guarded: dict[AddressPolicy, httpx.AsyncClient] = {}  # teams' sinks' clients

    def guarded_client(self, policy: AddressPolicy) -> httpx.AsyncClient:
        """The client of the teams' sinks: each connection checked by `policy`."""
        client = self.guarded.get(policy)
        if client is None:
            transport = guarded_transport(policy=policy)
            client = self.guarded[policy] = httpx.AsyncClient(timeout=TIMEOUT, transport=transport)
        return client

    def count(self, sink: str, outcome: str, number: int = 1) -> None:
        key = (sink, outcome)
        self.counts[key] = self.counts.get(key, 0) + number
        self.outstanding -= number

    def report(self) -> None:
        if self.counts:
            counts = [[sink, outcome, n] for (sink, outcome), n in self.counts.items()]
            self.counts = {}
            self._write(b"counts " + orjson.dumps(counts))

    def _write(self, line: bytes) -> None:
        self.outbound.write(line + b"\n")
        self.outbound.flush()

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "events":
            self._events(message[1])
        elif kind == "sink":
            _, number, name, sink_kind, settings, untrusted = message
            spec = SinkSpec(name=name, kind=sink_kind, settings=settings, untrusted=untrusted)
            self.specs[number] = self._worker_for(spec)
        elif kind == "config":
            _, self.queue_size, self.flush_interval, self.max_retries, self.allow_private = message
        elif kind == "forget":
            self.specs.clear()
        elif kind == "flush":
            task = asyncio.get_running_loop().create_task(self._flush(message[1]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _events(self, items: list[tuple[Any, tuple[int, ...]]]) -> None:
        """Each sink's events of the message, in order, buffered in one step. An event is built
        once, and encoded once when one of its sinks sends it as JSON (the webhook, S3)."""
        specs = self.specs
        dumps = orjson.dumps
        buckets: dict[int, list[Held]] = {}
        # Per sinks tuple (a plan's, the same for most events): [(bucket, encoded?)], any encoded
        routes: dict[tuple[int, ...], tuple[list[tuple[list[Held], bool]], bool]] = {}
        for values, numbers in items:
            route = routes.get(numbers)
            if route is None:
                targets = []
                for number in numbers:
                    bucket = buckets.get(number)
                    if bucket is None:
                        bucket = buckets[number] = []
                    targets.append((bucket, specs[number].encoded))
                route = routes[numbers] = (targets, any(encoded for _, encoded in targets))
            event = event_from_values(values)
            # common.json_bytes, inlined: a Python call an event saved
            data = dumps(event, default=str) if route[1] else None
            for bucket, encoded in route[0]:
                bucket.append(data if encoded else event)
        for number, events in buckets.items():
            self.outstanding += len(events)
            specs[number].put(events)

    def _worker_for(self, spec: SinkSpec) -> _SinkWorker:
        """The worker of these settings: one per platform destination, shared by equal specs
        (a team's plan rebuilt after a cache eviction still sends through the same buffer)."""
        key = (spec.name, spec.kind, spec.untrusted, tuple(sorted(spec.settings.items())))
        worker = self.workers.get(key)
        if worker is None:
            worker = self.workers[key] = _SinkWorker(spec, _sink_make(spec), self)
            assert self.client is not None
            task = asyncio.get_running_loop().create_task(worker.run(self.client))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return worker

    async def _flush(self, number: int) -> None:
        """Send every buffer now, without waiting for the interval; answer once all is done."""
        self.flushing += 1
        try:
            for worker in self.workers.values():
                worker.ready.set()
            while self.outstanding > 0:  # noqa: ASYNC110 - moved by every send task
                await asyncio.sleep(0.01)
        finally:
            self.flushing -= 1
        self.report()
        self._write(f"flushed {number}".encode())

    async def _reporting(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY)
            self.report()

    async def main(self, inbound: BinaryIO) -> None:
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            self.client = client
            reporting = loop.create_task(self._reporting())
            pipe = _Inbound(self)
            await loop.connect_read_pipe(lambda: pipe, inbound)
            await pipe.closed
            # The pipe closed: every buffer sends what it holds (no waiting, no new retries).
            self.stopping = True
            for worker in self.workers.values():
                worker.ready.set()
            while self.outstanding > 0:  # noqa: ASYNC110 - moved by every send task
                await asyncio.sleep(0.01)
            reporting.cancel()
            for task in self.tasks:
                task.cancel()
            for worker in self.workers.values():  # the sinks' own connections (the webhook's)
                close = getattr(worker.sink, "close", None)
                if close is not None:
                    await close()
            for guarded in self.guarded.values():
                await guarded.aclose()
            self.report()


class _Inbound(asyncio.Protocol):
    """The worker's pipe: each frame handled in the loop's read callback as it completes, with
    no task woken nor copy made per frame (a StreamReader's two `readexactly` did both)."""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.held = bytearray()  # the start of a frame not whole yet
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        held = self.held
        if held:
            held += data
            with memoryview(held) as view:
                used = self._frames(view)
            del held[:used]
            return
        with memoryview(data) as view:
            used = self._frames(view)
            if used < len(data):
                held += view[used:]

    def _frames(self, view: memoryview) -> int:
        """Handle the whole frames at the start of `view`; how many bytes they took."""
        start, end = 0, len(view)
        handle = self.delivery.handle
        while end - start >= 4:
            size = int.from_bytes(view[start : start + 4], "little")
            if end - start - 4 < size:
                break
            message = marshal.loads(view[start + 4 : start + 4 + size])  # noqa: S302 - our worker's
            start += 4 + size
            try:
                handle(message)
            except Exception:  # one bad message, not the process
                logger.exception("callbacks: a message not understood")
        return start

    def eof_received(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _sink_make(spec: SinkSpec) -> Sink | None:
    cls = sink_class(spec.kind)
    if cls is None:
        return None
    try:
        return cls(spec.settings)
    except (ValueError, KeyError) as exc:
        logger.warning("callback %s cannot start: %s", spec.name, exc)
        return None


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="ogem callbacks: %(message)s")
    child_scheduled()
    child_collector()
    asyncio.run(Delivery(sys.stdout.buffer).main(sys.stdin.buffer))


if __name__ == "__main__":
    main()

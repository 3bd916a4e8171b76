"""The worker's end of tracing's export (gateway/tracing_pipe.py): bounded when the collector
hangs (spans dropped and counted, never waited for), and what is queued reaches the collector,
decoded from protobuf, when the pipe is flushed or closed."""

from __future__ import annotations

import enum
import io
import os
import socket
import threading
import time
import uuid

import pytest

from gateway import tracing_export
from gateway.child_pipe import child_cpus, frame
from gateway.tracing_export import exporter_target
from gateway.tracing_pipe import MAX_TRACES, SpanPipe
from tests.emulators.otlp_receiver import OTLPReceiver
from tests.forked import in_forked_child

TRACE = 0x0AF7651916CD43DD8448EB211C80319C


class Colour(enum.StrEnum):
    RED = "red"


def _spans(number: int) -> list[tuple[object, ...]]:
    start = time.time_ns()
    attributes = {"gen_ai.operation.name": "chat", "ogem.request_id": f"req-{number}" + "x" * 500}
    return [(TRACE, number + 1, 0, False, "chat m", 2, start, start + 1000, attributes, [], None)]


def test_a_collector_that_hangs_fills_the_queue_and_drops_are_counted() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        target = exporter_target(protocol="http/protobuf", endpoint=f"http://127.0.0.1:{port}")
        pipe = SpanPipe(protocol="http/protobuf", target=target, service_name="t")
        try:
            started = time.monotonic()
            for number in range(20 * MAX_TRACES):
                pipe.put(_spans(number))
            assert time.monotonic() - started < 5  # never waits for the collector
            assert len(pipe.queue) <= MAX_TRACES
            assert pipe.dropped > 0
            assert pipe.lost >= pipe.dropped
        finally:
            pipe.close(wait=2.0)  # the exporter, still waiting, is stopped at the deadline


def test_what_is_queued_is_exported_at_close() -> None:
    receiver = OTLPReceiver().start()
    try:
        pipe = SpanPipe(
            protocol="http/protobuf",
            target=exporter_target(protocol="http/protobuf", endpoint=receiver.http_url),
            service_name="closing",
        )
        for number in range(10):
            pipe.put(_spans(number))
        # A value of another type than the protocol's (an id object, an enum): sent as text.
        (odd,) = _spans(10)
        odd[8]["odd"] = (Colour.RED, uuid.UUID(int=7))
        pipe.put([odd])
        pipe.close(wait=10.0)
        spans = receiver.trace(f"{TRACE:032x}", count=11, timeout=0)
        assert sorted(int(s.span_id, 16) for s in spans) == list(range(1, 12))
        (received,) = [s for s in spans if s.span_id == f"{11:016x}"]
        assert received.attributes["odd"] == ["red", str(uuid.UUID(int=7))]
        assert {s.resource["service.name"] for s in spans} == {"closing"}
        assert pipe.lost == 0
    finally:
        receiver.stop()


def test_a_forked_process_does_not_write_to_its_parents_exporter() -> None:
    from gateway import tracing

    receiver = OTLPReceiver().start()
    tracing.tracing_configure(endpoint=receiver.http_url)
    try:
        parent = tracing.tracing_active()
        assert parent is not None
        assert in_forked_child(lambda: tracing._active is None)
        assert tracing.tracing_active() is parent
    finally:
        tracing.tracing_configure(enabled=False)
        receiver.stop()


def test_an_exporter_whose_collector_hangs_keeps_reading_and_counts_what_it_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter process's loop (`exporter_main`) against a collector that never answers:
    it goes on reading the pipe (the worker's hand-over thread, shared with the callbacks, never
    waits on a collector), drops what waits past its bound, and answers a flush with every span
    it did not send."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setattr(tracing_export, "READ_AHEAD", 4)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        target = exporter_target(
            protocol="http/protobuf", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}"
        )
        read, write = os.pipe()
        outbound = io.BytesIO()
        with os.fdopen(read, "rb") as inbound:
            config = {"protocol": "http/protobuf", "target": target, "service_name": "t"}
            loop = threading.Thread(
                target=tracing_export.exporter_main, args=(config, inbound, outbound)
            )
            loop.start()
            first = [
                span for number in range(tracing_export.BATCH_SPANS) for span in _spans(number)
            ]
            data = frame(("spans", first))  # a full export: sent at once, and hangs
            data += b"".join(frame(("spans", _spans(number))) for number in range(40))
            data += frame(("flush", 1))
            started = time.monotonic()
            with os.fdopen(write, "wb") as pipe:
                pipe.write(data)  # then closed: all of it read while the first export hangs
            loop.join(timeout=60)
        assert not loop.is_alive()
    # Two exports waited for (the full one, then what was kept), not one a batch (41 s).
    assert time.monotonic() - started < 20
    assert outbound.getvalue() == f"flushed 1 {tracing_export.BATCH_SPANS + 40}\n".encode()


def threads_policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(task)) for task in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
@pytest.mark.parametrize(
    ("priority", "policy"), [("idle", "SCHED_IDLE"), ("normal", "SCHED_OTHER")]
)
def test_the_exporter_runs_at_the_telemetry_cpu_priority(
    settings: object, priority: str, policy: str
) -> None:
    """OGEM_TELEMETRY_CPU_PRIORITY (docs/observability.md): `idle`, the default, puts the
    exporter (every thread of it) under SCHED_IDLE, so that it takes only CPU time that serving
    /v1 leaves; `normal` leaves it as the worker is."""
    settings.OGEM_TELEMETRY_CPU_PRIORITY = priority  # type: ignore[attr-defined]
    receiver = OTLPReceiver().start()
    pipe = SpanPipe(
        protocol="http/protobuf",
        target=exporter_target(protocol="http/protobuf", endpoint=receiver.http_url),
        service_name="priority",
    )
    try:
        pipe.put(_spans(1))
        assert pipe.flush(timeout=10)  # answered: the exporter runs, its threads started
        assert receiver.trace(f"{TRACE:032x}", count=1, timeout=5)
        assert pipe._process is not None
        assert threads_policies(pipe._process.pid) == {getattr(os, policy)}
    finally:
        pipe.close(wait=5.0)
        receiver.stop()


def test_a_helper_keeps_off_the_cpus_its_worker_is_pinned_to() -> None:
    assert child_cpus(worker={0, 1, 2, 3}, every={0, 1, 2, 3}) == {0, 1, 2, 3}  # not pinned
    assert child_cpus(worker={1}, every={0, 1, 2, 3}) == {0, 2, 3}
    assert child_cpus(worker={0, 1}, every={0, 1}) == {0, 1}


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and two CPUs",
)
def test_the_exporter_of_a_pinned_worker_runs_on_the_other_cpus() -> None:
    """A worker pinned to a core (as `python -m bench` pins it, or an operator's taskset) keeps
    it: its exporter, which inherits the pinning, moves to the other CPUs."""
    allowed = os.sched_getaffinity(0)
    core = max(allowed)
    receiver = OTLPReceiver().start()
    os.sched_setaffinity(0, {core})  # this thread only: the child is forked from it
    try:
        pipe = SpanPipe(
            protocol="http/protobuf",
            target=exporter_target(protocol="http/protobuf", endpoint=receiver.http_url),
            service_name="pinned",
        )
    finally:
        os.sched_setaffinity(0, allowed)
    try:
        pipe.put(_spans(1))
        assert pipe.flush(timeout=10)  # answered: the exporter has placed itself
        assert pipe._process is not None
        placed = os.sched_getaffinity(pipe._process.pid)
        assert placed and core not in placed
    finally:
        pipe.close(wait=5.0)
        receiver.stop()

"""The dispatcher's delivery policy (gateway/callbacks/dispatcher.py) against the emulators over
real sockets: batches, retries with backoff on 5xx, a refusal dropped at once, a full queue
counted, a refused connection retried then given up, and what is held delivered at close."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.dispatcher import Dispatcher
from gateway.callbacks.settings import CallbackSettings, SinkSpec
from ogem_site.metrics import CALLBACK_EVENTS_DROPPED, CALLBACK_EVENTS_SENT
from tests.callbacks.emulators import LangfuseEmulator, WebhookEmulator
from tests.emulators.scripted import Fault
from tests.forked import in_forked_child
from tests.gateway.test_tracing_pipe import threads_policies
from tests.live import free_port, wait_for


@pytest.fixture(scope="module")
def _servers() -> Iterator[tuple[LangfuseEmulator, WebhookEmulator]]:
    yield LangfuseEmulator({"pk": ("sk", "p")}).start(), WebhookEmulator().start()


@pytest.fixture
def langfuse(_servers: tuple[LangfuseEmulator, WebhookEmulator]) -> Iterator[LangfuseEmulator]:
    _servers[0].reset()
    yield _servers[0]
    _servers[0].reset()


@pytest.fixture
def webhook(_servers: tuple[LangfuseEmulator, WebhookEmulator]) -> Iterator[WebhookEmulator]:
    _servers[1].reset()
    yield _servers[1]
    _servers[1].reset()


@pytest.fixture
def dispatcher() -> Iterator[Any]:
    made: list[Dispatcher] = []

    def make(**fields: Any) -> Dispatcher:
        instance = Dispatcher()
        instance.configure(CallbackSettings(**{"flush_interval": 0.05, **fields}))
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.close(timeout=5)


def _event(**fields: Any) -> CallbackEvent:
    now = time.time()
    event: dict[str, Any] = {
        "kind": "success",
        "request_id": uuid.uuid4().hex,
        "trace_id": "",
        "span_id": "",
        "started_at": now - 0.2,
        "ended_at": now,
        "endpoint": "chat/completions",
        "model": "m",
        "response_model": "m-2024",
        "provider": "openai",
        "deployment": "config:m#0",
        "status_code": 200,
        "stream": False,
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_tokens": 0,
        "cost": "0.000123",
        "latency_ms": 200,
        "ttft_ms": None,
        "cache_hit": False,
        "organization_id": None,
        "team_id": None,
        "key_id": None,
        "key_name": "master",
        "user_id": None,
        "end_user": "",
        "tags": [],
        "metadata": {},
        "error": None,
        **fields,
    }
    return event  # type: ignore[return-value]


def _hook(url: str, name: str | None = None) -> SinkSpec:
    name = name or f"hook-{uuid.uuid4().hex[:8]}"
    return SinkSpec(name=name, kind="webhook", settings={"generic_logger_endpoint": url})


def _langfuse(emulator: LangfuseEmulator, name: str, *, secret: str = "sk") -> SinkSpec:
    settings = {
        "langfuse_public_key": "pk",
        "langfuse_secret_key": secret,
        "langfuse_host": emulator.url,
    }
    return SinkSpec(name=name, kind="langfuse", settings=settings)


def _count(counter: Any, **labels: str) -> float:
    return float(counter.labels(**labels)._value.get())


def test_a_batch_retried_after_5xx_is_delivered_once(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    sink = _hook(f"{webhook.url}/hook")
    webhook.script(Fault(503, {"error": "busy"}), Fault(502, {"error": "busy"}))
    instance = dispatcher(max_retries=3)
    events = [_event() for _ in range(3)]
    for event in events:
        instance.submit(event, [sink])
    assert instance.flush(timeout=10)
    assert len(webhook.requests) == 3  # two refused sends, then the one that got through
    assert [e["request_id"] for e in webhook.events] == [e["request_id"] for e in events]
    assert _count(CALLBACK_EVENTS_SENT, sink=sink.name) == 3


def test_a_webhook_batch_stays_within_its_bytes_bound(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    sink = _hook(f"{webhook.url}/hook")
    instance = dispatcher()
    events = [_event(input="x" * 400_000) for _ in range(3)]  # 1.2 MB of JSON in all
    for event in events:
        instance.submit(event, [sink])
    assert instance.flush(timeout=10)
    assert [len(received.body) for received in webhook.requests] == [2, 1]
    assert all(len(received.raw) < 1_000_000 for received in webhook.requests)
    assert [e["request_id"] for e in webhook.events] == [e["request_id"] for e in events]
    assert _count(CALLBACK_EVENTS_SENT, sink=sink.name) == 3


def test_a_refusal_is_dropped_at_once_and_counted(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    sink = _hook(f"{webhook.url}/hook")
    webhook.script(Fault(401, {"error": "bad key"}))
    instance = dispatcher(max_retries=3)
    instance.submit(_event(), [sink])
    assert instance.flush(timeout=10)
    assert len(webhook.requests) == 1
    assert _count(CALLBACK_EVENTS_DROPPED, sink=sink.name, reason="rejected") == 1


def test_a_platform_that_refuses_connections_is_retried_then_given_up(dispatcher) -> None:  # type: ignore[no-untyped-def]
    sink = _hook(f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there
    instance = dispatcher(max_retries=1)
    instance.submit(_event(), [sink])
    assert instance.flush(timeout=10)
    assert _count(CALLBACK_EVENTS_DROPPED, sink=sink.name, reason="retries_exhausted") == 1


def test_a_full_queue_drops_and_counts(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    sink = _hook(f"{webhook.url}/hook")
    instance = dispatcher(queue_size=2, flush_interval=30)
    for _ in range(5):
        instance.submit(_event(), [sink])
    assert _count(CALLBACK_EVENTS_DROPPED, sink=sink.name, reason="queue_full") == 3
    instance.close(timeout=5)  # what is held goes out at close, without waiting the interval
    assert len(webhook.events) == 2


def test_langfuse_gets_batches_of_trace_and_generation(dispatcher, langfuse) -> None:  # type: ignore[no-untyped-def]
    spec = _langfuse(langfuse, "langfuse")
    instance = dispatcher()
    failed = _event(
        kind="failure",
        status_code=429,
        error={"type": "rate_limit_error", "message": "slow down", "status": 429},
    )
    for event in (_event(ttft_ms=40, input=[{"role": "user", "content": "hi"}]), failed):
        instance.submit(event, [spec])
    assert instance.flush(timeout=10)
    assert len(langfuse.requests) == 1  # one batch
    generations = langfuse.generations("p")
    assert [g["level"] for g in generations] == ["DEFAULT", "ERROR"]
    assert generations[0]["usage"] == {
        "input": 11,
        "output": 7,
        "total": 18,
        "unit": "TOKENS",
        "totalCost": 0.000123,
    }
    assert generations[0]["model"] == "m-2024"
    assert generations[1]["statusMessage"] == "429 rate_limit_error: slow down"
    assert len(langfuse.traces("p")) == 2


def test_a_wrong_langfuse_key_is_a_rejection(dispatcher, langfuse) -> None:  # type: ignore[no-untyped-def]
    spec = _langfuse(langfuse, "langfuse-wrong", secret="wrong")
    instance = dispatcher()
    instance.submit(_event(), [spec])
    assert instance.flush(timeout=10)
    assert _count(CALLBACK_EVENTS_DROPPED, sink="langfuse-wrong", reason="rejected") == 1
    assert langfuse.generations("p") == []


EXITING = """
import sys, time, django
django.setup()
from django.conf import settings
from gateway.callbacks.dispatcher import dispatcher_get
from gateway.callbacks.settings import CallbackSettings, SinkSpec
from tests.callbacks.test_dispatcher import _event

# The flush at exit may take its time on a busy machine; the interval alone would never send.
settings.OGEM_CALLBACKS_FLUSH_SECONDS = 60
dispatcher = dispatcher_get(CallbackSettings(flush_interval=3600))
spec = SinkSpec(name="exit", kind="webhook", settings={"generic_logger_endpoint": sys.argv[1]})
dispatcher.submit(_event(request_id="at-exit"), [spec])
"""


def test_a_process_that_exits_delivers_what_it_holds(webhook) -> None:  # type: ignore[no-untyped-def]
    """A worker process (web or Celery) that stops normally flushes its queue at exit, long
    before the flush interval (an hour here: without the flush at exit nothing arrives)."""
    import os
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-c", EXITING, f"{webhook.url}/hook"],
        check=True,
        timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"},
    )
    # The emulator records the batch before it answers, and the process waited for the answer.
    assert [event["request_id"] for event in webhook.events] == ["at-exit"]


def test_a_delivery_process_that_dies_is_restarted(dispatcher, webhook, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What the dead process held is counted as dropped (`exited`); the next events start a new
    one, which is told the sink's settings again."""
    from gateway import child_pipe

    monkeypatch.setattr(child_pipe, "RESPAWN_AFTER", 0.0)
    sink = _hook(f"{webhook.url}/hook")
    instance = dispatcher(flush_interval=30)
    instance.submit(_event(request_id="first"), [sink])
    assert instance.flush(timeout=10)
    first = instance._pipe._process
    instance.submit(_event(request_id="held"), [sink])
    instance._pipe._wake.set()  # handed over, then held for its 30 s interval
    wait_for(lambda: instance._pipe._pending.get(sink.name) == 1, what="the hand-over")
    first.kill()
    first.wait()
    instance.submit(_event(request_id="after"), [sink])
    assert instance.flush(timeout=10)
    assert instance._pipe._process.pid != first.pid
    assert [e["request_id"] for e in webhook.events] == ["first", "after"]
    assert _count(CALLBACK_EVENTS_DROPPED, sink=sink.name, reason="exited") == 1
    assert _count(CALLBACK_EVENTS_SENT, sink=sink.name) == 2


def test_a_sinks_keys_go_down_the_pipe_not_on_a_command_line(dispatcher, langfuse) -> None:  # type: ignore[no-untyped-def]
    spec = _langfuse(langfuse, "langfuse-team")
    instance = dispatcher()
    instance.submit(_event(), [spec])
    assert instance.flush(timeout=10)
    assert len(langfuse.generations("p")) == 1
    process = instance._pipe._process
    with open(f"/proc/{process.pid}/cmdline", "rb") as cmdline:
        arguments = cmdline.read().split(b"\0")
    assert b"gateway.callbacks.deliver" in arguments
    assert not any(b"sk" == argument or langfuse.url.encode() in argument for argument in arguments)


def test_a_full_buffer_in_the_delivery_process_drops_and_counts(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    """A platform slower than the events: its buffer in the delivery process fills, and the
    drops it counts there show in this process's metrics."""
    sink = _hook(f"{webhook.url}/hook")
    instance = dispatcher(queue_size=2, flush_interval=30)
    for _ in range(3):
        for _ in range(2):
            instance.submit(_event(), [sink])
        instance._pipe._wake.set()
        wait_for(lambda: not instance._pipe.queue, what="the hand-over")
    assert instance.flush(timeout=10)
    assert _count(CALLBACK_EVENTS_DROPPED, sink=sink.name, reason="queue_full") == 4
    assert len(webhook.events) == 2


def test_a_forked_process_starts_its_own_delivery_process(dispatcher, webhook) -> None:  # type: ignore[no-untyped-def]
    instance = dispatcher()
    instance.submit(_event(), [_hook(f"{webhook.url}/hook")])
    parent = instance._pipe
    assert parent is not None
    assert in_forked_child(lambda: instance._pipe is None)  # a delivery process of its own
    assert instance._pipe is parent
    assert instance.flush(timeout=10)
    assert len(webhook.events) == 1


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
@pytest.mark.parametrize(
    ("priority", "policy"), [("idle", "SCHED_IDLE"), ("normal", "SCHED_OTHER")]
)
def test_the_delivery_process_runs_at_the_telemetry_cpu_priority(  # type: ignore[no-untyped-def]
    dispatcher, webhook, settings, priority: str, policy: str
) -> None:
    """OGEM_TELEMETRY_CPU_PRIORITY: `idle` (the default) runs every thread of the delivery
    process under SCHED_IDLE; `normal` leaves it as the worker is."""
    settings.OGEM_TELEMETRY_CPU_PRIORITY = priority
    instance = dispatcher()
    instance.submit(_event(), [_hook(f"{webhook.url}/hook")])
    assert instance.flush(timeout=10)
    assert len(webhook.events) == 1
    assert threads_policies(instance._pipe._process.pid) == {getattr(os, policy)}

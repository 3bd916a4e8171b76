"""OpenTelemetry traces through the live server (docs/tracing.md): exported over OTLP/HTTP and
gRPC to a receiver the test runs, decoded from protobuf; the spans of a request whose first
deployment fails and whose fallback answers; traceparent honoured and propagated upstream;
the time to first token of a stream; content off by default, captured masked when enabled; the
x-ogem-trace-id header on every answer, tracing on or off."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import pytest

from gateway import tracing
from gateway.cache import cache_local_clear
from gateway.config import RouterSettings
from gateway.config import watch as config_watch
from gateway.config.types import CacheSettings, GuardrailSettings, GuardrailSpec
from gateway.health import local_health
from gateway.registry import registry_get
from gateway.tracing import trace_context_parse, tracing_configure, tracing_flush
from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SERVER, CLIENT, INTERNAL = 2, 3, 1
ERROR = 2
HELLO = [{"role": "user", "content": "Hello there"}]
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OTLPReceiver]:
    collector = OTLPReceiver().start()
    yield collector
    collector.stop()


@pytest.fixture
def traced(receiver: OTLPReceiver) -> Iterator[Callable[..., None]]:
    """Turn tracing on (OTLP over HTTP by default) for one test."""

    def on(**options: object) -> None:
        options.setdefault("endpoint", receiver.http_url)
        tracing_configure(**options)  # type: ignore[arg-type]

    yield on
    tracing_configure(enabled=False)


@pytest.fixture
def groups(
    openai_emulator: OpenAIEmulator, install_deployments: Callable[..., None]
) -> Iterator[OpenAIEmulator]:
    """Groups `primary` (upstream model `small`) falling back to `backup` (`large`)."""
    tag = secrets.token_hex(4)

    def make(name: str, group: str) -> Deployment:
        return Deployment(
            id=f"{tag}:{name}",
            model_name=group,
            provider="openai",
            upstream_model=name,
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
        )

    install_deployments(make("small", "primary"), make("large", "backup"))
    registry_get()
    previous = config_watch._current
    config_watch._current = replace(
        previous, router=RouterSettings(fallbacks={"primary": ("backup",)})
    )
    local_health.clear()
    yield openai_emulator
    config_watch._current = previous
    local_health.clear()


def _chat(live: LiveServer, key: str, *, model: str = "primary", headers=None, **body):  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{live.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", **(headers or {})},
        json={"model": model, "messages": HELLO, **body},
        timeout=30,
    )


def _by_name(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    named: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        named.setdefault(span.name, []).append(span)
    return named


def test_traceparent_parsing() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert trace_context_parse(parent) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        1,
    )
    assert trace_context_parse(parent.upper().encode()) == trace_context_parse(parent)
    for bad in (
        "",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",  # v00 has no more fields
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
    ):
        assert trace_context_parse(bad) is None, bad
    # A later version may carry more fields: its first four are read.
    assert trace_context_parse(parent.replace("00-", "01-", 1) + "-what") is not None


def test_failed_attempt_and_fallback_trace(traced, groups, receiver, live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    traced()
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    groups.inject(status=500)
    response = _chat(
        live_ogem, master_key, headers={"traceparent": f"00-{trace_id}-{client_span}-01"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-ogem-trace-id"] == trace_id
    assert response.headers["x-ogem-model-group"] == "backup"
    tracing_flush()
    spans = receiver.trace(trace_id, count=5)
    named = _by_name(spans)
    assert sorted(named) == [
        "chat large",
        "chat primary",
        "chat small",
        "ogem.admission",
        "ogem.routing",
    ]

    (root,) = named["chat primary"]
    assert root.kind == SERVER
    assert root.parent_span_id == client_span  # the client's span is the parent
    assert root.scope == "ogem.gateway"
    assert root.resource["service.name"] == "ogem"
    assert root.status_code == 0
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.request.model"] == "primary"
    assert root.attributes["gen_ai.provider.name"] == "openai"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert root.attributes["gen_ai.usage.input_tokens"] > 0
    assert root.attributes["gen_ai.usage.output_tokens"] > 0

    (admission,) = named["ogem.admission"]
    (routing,) = named["ogem.routing"]
    assert admission.parent_span_id == routing.parent_span_id == root.span_id
    assert routing.attributes["ogem.routing.attempts"] == 2
    assert routing.attributes["ogem.model_group"] == "backup"

    (failed,) = named["chat small"]
    (served,) = named["chat large"]
    for attempt in (failed, served):
        assert attempt.kind == CLIENT
        assert attempt.parent_span_id == routing.span_id
        assert attempt.attributes["gen_ai.provider.name"] == "openai"
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["server.address"] == groups.url.split("://")[1]
    assert failed.start_ns <= failed.end_ns <= served.start_ns
    assert failed.status_code == ERROR
    assert failed.attributes["http.response.status_code"] == 502
    assert failed.attributes["error.type"]
    assert failed.attributes["ogem.model_group"] == "primary"
    assert failed.attributes["gen_ai.request.model"] == "small"
    assert served.status_code == 0
    assert served.attributes["ogem.model_group"] == "backup"
    assert served.attributes["gen_ai.request.model"] == "large"
    assert served.attributes["gen_ai.response.model"] == response.json()["model"]
    assert served.attributes["gen_ai.response.id"] == response.json()["id"]
    assert served.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    usage = response.json()["usage"]
    assert served.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert served.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]
    # Content is off by default.
    assert not any(
        k.startswith("gen_ai.input") or k.startswith("gen_ai.output")
        for s in spans
        for k in s.attributes
    )

    # Each upstream request carried the trace, parented by its own attempt's span.
    seen = [r.headers.get("traceparent") for r in groups.requests]
    assert seen == [
        f"00-{trace_id}-{failed.span_id}-01",
        f"00-{trace_id}-{served.span_id}-01",
    ]


def test_a_cache_hit_is_traced_once_its_settle_ran(  # type: ignore[no-untyped-def]
    traced, groups, receiver, live_ogem, master_key, settings
) -> None:
    """A hit is answered before its settle (gateway/relay.py), which ends its trace: the request
    span still comes, with the admission's and the cache's."""
    traced()
    previous = config_watch._current
    kind = "redis" if settings.REDIS_URL else "local"
    config_watch._current = replace(previous, cache=CacheSettings(type=kind))
    try:
        seed = secrets.randbelow(1 << 30)  # a body no other test cached
        assert _chat(live_ogem, master_key, seed=seed).headers["x-ogem-cache"] == "miss"
        trace_id = secrets.token_hex(16)
        traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        hit = _chat(live_ogem, master_key, seed=seed, headers={"traceparent": traceparent})
        assert hit.headers["x-ogem-cache"] == "hit"

        def exported() -> list[ReceivedSpan] | None:
            # The settle, then the trace's end, follow the answer: flushed until they came.
            tracing_flush()
            spans = receiver.trace(trace_id, count=3, timeout=0)
            return spans if len(spans) >= 3 else None

        named = _by_name(wait_for(exported, what="the cache hit's three spans", every=0.05))
        assert sorted(named) == ["chat primary", "ogem.admission", "ogem.cache"]
        assert named["ogem.cache"][0].attributes["ogem.cache.status"] == "hit"
        assert named["chat primary"][0].attributes["http.response.status_code"] == 200
    finally:
        config_watch._current = previous
        cache_local_clear()


def test_stream_has_time_to_first_token_event_over_grpc(
    traced, groups, receiver, live_ogem, master_key
) -> None:  # type: ignore[no-untyped-def]
    traced(endpoint=receiver.grpc_endpoint, protocol="grpc")
    response = _chat(
        live_ogem, master_key, model="backup", stream=True, stream_options={"include_usage": True}
    )
    assert response.status_code == 200
    assert "data: [DONE]" in response.text
    trace_id = response.headers["x-ogem-trace-id"]
    assert TRACE_ID.match(trace_id)
    tracing_flush()
    named = _by_name(receiver.trace(trace_id, count=4))
    (root,) = named["chat backup"]
    (attempt,) = named["chat large"]
    assert root.parent_span_id == ""  # Ogem started this trace
    assert root.attributes["gen_ai.request.stream"] is True
    for span in (root, attempt):
        ((name, attributes),) = span.events
        assert name == "gen_ai.first_token"
        assert 0 < attributes["gen_ai.server.time_to_first_token"] < 10
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attempt.attributes["gen_ai.usage.output_tokens"] > 0
    assert attempt.end_ns >= root.start_ns
    assert groups.last.headers["traceparent"] == f"00-{trace_id}-{attempt.span_id}-01"


PROMPT = "Email jane.doe@example.com about it."


@pytest.mark.parametrize("stream", [False, True])
def test_content_captured_when_enabled_and_masked(
    traced, groups, receiver, live_ogem, master_key, stream: bool
) -> None:  # type: ignore[no-untyped-def]
    traced(capture_content=True)
    previous = config_watch._current
    spec = GuardrailSpec(name="pii", kind="pii", action="mask", default_on=True)
    config_watch._current = replace(
        previous,
        guardrails=GuardrailSettings(guardrails={"pii": spec}, default_on=("pii",)),
    )
    try:
        response = httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {master_key}"},
            json={
                "model": "backup",
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": stream,
            },
            timeout=30,
        )
    finally:
        config_watch._current = previous
    assert response.status_code == 200
    assert "jane.doe@example.com" in response.text  # the caller gets the original back
    trace_id = response.headers["x-ogem-trace-id"]
    tracing_flush()
    named = _by_name(receiver.trace(trace_id, count=5))
    (attempt,) = named["chat large"]
    sent = attempt.attributes["gen_ai.input.messages"]
    answered = attempt.attributes["gen_ai.output.messages"]
    assert "<EMAIL_ADDRESS_1>" in sent and "jane.doe" not in sent
    assert "<EMAIL_ADDRESS_1>" in answered and "jane.doe" not in answered
    phases = {s.attributes["ogem.guardrails.phase"]: s for s in named["ogem.guardrails"]}
    assert phases["pre_call"].attributes["ogem.guardrails.actions"] == ["mask"]
    assert "ogem.guardrails.decisions" in named["chat backup"][0].attributes


def test_errors_carry_the_trace_id_and_a_failed_span(
    traced, receiver, live_ogem, master_key
) -> None:  # type: ignore[no-untyped-def]
    traced()
    trace_id = secrets.token_hex(16)
    response = _chat(
        live_ogem,
        master_key,
        model="no-such-model",
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert response.status_code == 404
    assert response.headers["x-ogem-trace-id"] == trace_id
    tracing_flush()
    (root,) = receiver.trace(trace_id, count=1)
    assert root.status_code == ERROR
    assert root.attributes["http.response.status_code"] == 404
    assert root.attributes["error.type"] == "model_not_found"
    # Refused before the body is read (authentication, a body too large): the request span
    # alone, failed, with nothing of the key.
    refused_trace = secrets.token_hex(16)
    bad_key = _chat(
        live_ogem,
        "sk-wrong-secret",
        headers={"traceparent": f"00-{refused_trace}-{secrets.token_hex(8)}-01"},
    )
    assert bad_key.status_code == 401
    assert bad_key.headers["x-ogem-trace-id"] == refused_trace
    too_large_trace = secrets.token_hex(16)
    too_large = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        content=b"x" * (64 * 1024 * 1024),
        headers={
            "Authorization": f"Bearer {master_key}",
            "traceparent": f"00-{too_large_trace}-{secrets.token_hex(8)}-01",
        },
        timeout=30,
    )
    assert too_large.status_code == 413
    assert too_large.headers["x-ogem-trace-id"] == too_large_trace
    tracing_flush()
    (unauthenticated,) = receiver.trace(refused_trace, count=1)
    (oversized,) = receiver.trace(too_large_trace, count=1)
    for span, status in ((unauthenticated, 401), (oversized, 413)):
        assert span.name == "chat"
        assert span.kind == SERVER
        assert span.status_code == ERROR
        assert span.attributes["http.response.status_code"] == status
        assert span.attributes["url.path"] == "/v1/chat/completions"
        assert span.end_ns >= span.start_ns > 0
        assert not any(name.startswith("ogem.key") for name in span.attributes)
        assert "sk-wrong" not in repr(span.attributes)
    assert unauthenticated.attributes["error.type"] == "invalid_api_key"
    assert oversized.attributes["error.type"] == "request_too_large"
    # Endpoints the relay does not serve (files here) record theirs at the edge: one span.
    files_trace = secrets.token_hex(16)
    files = httpx.get(
        f"{live_ogem.url}/v1/files",
        headers={
            "Authorization": "Bearer sk-wrong-secret",
            "traceparent": f"00-{files_trace}-{secrets.token_hex(8)}-01",
        },
    )
    assert files.status_code == 401
    assert files.headers["x-ogem-trace-id"] == files_trace
    tracing_flush()
    (listing,) = receiver.trace(files_trace, count=1)
    assert listing.status_code == ERROR
    assert listing.attributes["http.request.method"] == "GET"
    assert listing.attributes["url.path"] == "/v1/files"
    assert listing.attributes["http.response.status_code"] == 401
    # The relay's own refusals are not recorded twice.
    assert len(receiver.trace(refused_trace, count=1)) == 1


def test_tracing_off_still_answers_with_the_trace_id(groups, live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    assert tracing.tracing_active() is None
    trace_id = secrets.token_hex(16)
    response = _chat(
        live_ogem,
        master_key,
        model="backup",
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert response.status_code == 200
    assert response.headers["x-ogem-trace-id"] == trace_id
    assert "traceparent" not in groups.last.headers  # nothing sent upstream when off
    other = _chat(live_ogem, master_key, model="backup", headers={"traceparent": "garbage"})
    assert TRACE_ID.match(other.headers["x-ogem-trace-id"])
    assert other.headers["x-ogem-trace-id"] not in (trace_id, response.headers["x-ogem-trace-id"])


def test_unsampled_parent_is_not_recorded_but_propagated(
    traced, groups, receiver, live_ogem, master_key
) -> None:  # type: ignore[no-untyped-def]
    traced()
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    response = _chat(
        live_ogem,
        master_key,
        model="backup",
        headers={"traceparent": f"00-{trace_id}-{client_span}-00"},
    )
    assert response.status_code == 200
    assert groups.last.headers["traceparent"] == f"00-{trace_id}-{client_span}-00"
    tracing_flush()
    assert receiver.trace(trace_id, count=1, timeout=0.5) == []


def test_a_collector_that_is_down_does_not_slow_requests(
    groups, live_ogem, master_key, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # The exporter process gives up on a batch after a second (OpenTelemetry's variable).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    tracing_configure(endpoint=f"http://127.0.0.1:{port}")
    try:
        started = time.monotonic()
        for _ in range(20):
            assert _chat(live_ogem, master_key, model="backup").status_code == 200
        assert time.monotonic() - started < 10
        # What could not be sent is counted: four spans a request.
        assert tracing_flush(20_000)
        assert tracing.tracing_active().pipe.lost == 20 * 4  # type: ignore[union-attr]
    finally:
        tracing_configure(enabled=False)


def test_the_tracing_section_of_ogems_format(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.config import config_check
    from gateway.config.types import TracingSettings

    path = tmp_path / "ogem.yaml"
    path.write_text(
        "version: 1\nmodels:\n  - name: m\n    provider: mock\n    model: mock-chat\n"
        "tracing:\n  endpoint: http://collector:4318\n  protocol: grpc\n"
        "  service_name: edge\n  capture_content: true\n  sample_rate: 0.5\n"
    )
    config, problems = config_check(str(path))
    assert config is not None, problems
    assert config.tracing == TracingSettings(
        enabled=True,
        endpoint="http://collector:4318",
        protocol="grpc",
        service_name="edge",
        capture_content=True,
        sample_rate=0.5,
    )
    path.write_text(
        "version: 1\nmodels:\n  - name: m\n    provider: mock\n    model: mock-chat\n"
        "tracing:\n  protocol: zipkin\n  sample_rate: 2\n  colour: red\n"
    )
    config, problems = config_check(str(path))
    assert config is None
    messages = sorted(p.message for p in problems)
    assert any("protocol must be one of http/protobuf, grpc" in m for m in messages)
    assert any("sample_rate must be between 0 and 1" in m for m in messages)
    assert any("colour" in m for m in messages)


def test_the_configuration_section_turns_tracing_on_and_off(
    groups, receiver, live_ogem, master_key
) -> None:  # type: ignore[no-untyped-def]
    from gateway.config.types import TracingSettings

    previous = config_watch._current
    section = TracingSettings(endpoint=receiver.http_url, service_name="from-config")
    config_watch._current = replace(previous, tracing=section)
    try:
        response = _chat(live_ogem, master_key, model="backup")
        assert response.status_code == 200
        tracing_flush()
        spans = receiver.trace(response.headers["x-ogem-trace-id"], count=4)
        assert {s.resource["service.name"] for s in spans} == {"from-config"}
        config_watch._current = replace(previous, tracing=replace(section, enabled=False))
        response = _chat(live_ogem, master_key, model="backup")
        assert tracing.tracing_active(config_watch._current.tracing) is None
        assert "traceparent" not in groups.last.headers
    finally:
        config_watch._current = previous
        tracing.tracing_active(None)  # the section removed: off again
    assert tracing.tracing_active() is None

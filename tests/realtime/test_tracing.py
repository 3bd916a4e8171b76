"""A Realtime session's trace (docs/tracing.md), exported over OTLP to the receiver the tracing
tests use and decoded from protobuf: the session's span, the client's traceparent honoured, and
one span per response with its usage."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus

from gateway.tracing import tracing_configure, tracing_flush
from tests.emulators.otlp_receiver import OTLPReceiver
from tests.realtime.helpers import events_until, raw_connect, send, user_text

SERVER, CLIENT = 2, 3
ERROR = 2


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    collector = OTLPReceiver().start()
    tracing_configure(endpoint=collector.http_url)
    yield collector
    tracing_configure(enabled=False)
    collector.stop()


def test_a_session_and_each_response_are_spans_with_their_usage(  # type: ignore[no-untyped-def]
    receiver, realtime_model, live_ogem, make_key
) -> None:
    realtime_model()
    secret = make_key()
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    with raw_connect(
        live_ogem, key=secret, headers={"traceparent": f"00-{trace_id}-{client_span}-01"}
    ) as ws:
        events_until(ws, "session.created")
        send(ws, user_text("Hi there"))
        send(ws, {"type": "response.create"})
        first = events_until(ws, "response.done")[-1]["response"]
        send(ws, {"type": "response.create"})
        second = events_until(ws, "response.done")[-1]["response"]
    assert tracing_flush()
    spans = receiver.trace(trace_id, count=3)
    (session,) = [s for s in spans if s.kind == SERVER]
    responses = sorted((s for s in spans if s.kind == CLIENT), key=lambda s: s.start_ns)
    assert len(responses) == 2
    assert session.name == "realtime voice"
    assert session.parent_span_id == client_span
    assert session.attributes["gen_ai.operation.name"] == "realtime"
    assert session.attributes["gen_ai.request.model"] == "voice"
    assert session.attributes["gen_ai.provider.name"] == "openai"
    assert session.attributes["ogem.deployment.id"] == "test:voice"
    assert session.attributes["ogem.realtime.session_id"].startswith("rt_")
    assert session.attributes["ogem.realtime.responses"] == 2
    assert session.attributes["ogem.realtime.close_reason"]
    assert session.attributes["ogem.key.prefix"]
    for span, answered in zip(responses, (first, second), strict=True):
        assert span.name == "realtime gpt-realtime"
        assert span.parent_span_id == session.span_id
        assert span.status_code != ERROR
        assert span.attributes["gen_ai.response.id"] == answered["id"]
        assert span.attributes["ogem.realtime.response.status"] == answered["status"]
        assert span.attributes["gen_ai.usage.input_tokens"] == answered["usage"]["input_tokens"]
        assert span.attributes["gen_ai.usage.output_tokens"] == answered["usage"]["output_tokens"]
        assert session.start_ns <= span.start_ns <= span.end_ns <= session.end_ns
    total_in = sum(r["usage"]["input_tokens"] for r in (first, second))
    total_out = sum(r["usage"]["output_tokens"] for r in (first, second))
    assert session.attributes["gen_ai.usage.input_tokens"] == total_in
    assert session.attributes["gen_ai.usage.output_tokens"] == total_out


def test_an_unsampled_session_is_not_recorded(  # type: ignore[no-untyped-def]
    receiver, realtime_model, live_ogem, make_key
) -> None:
    realtime_model()
    unsampled, sampled = secrets.token_hex(16), secrets.token_hex(16)
    for trace_id, flags in ((unsampled, "00"), (sampled, "01")):
        with raw_connect(
            live_ogem,
            key=make_key(),
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"},
        ) as ws:
            events_until(ws, "session.created")
            send(ws, {"type": "response.create"})
            events_until(ws, "response.done")
    # The sampled session, which ended after the other, is exported: the other is not.
    assert len(receiver.trace(sampled, count=2)) == 2
    assert tracing_flush()
    assert receiver.trace(unsampled, count=1, timeout=0.5) == []


def test_a_refused_handshake_has_its_request_span_and_trace_id(  # type: ignore[no-untyped-def]
    receiver, realtime_model, live_ogem
) -> None:
    realtime_model()
    trace_id = secrets.token_hex(16)
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(
            live_ogem,
            key="sk-not-a-key",
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["x-ogem-trace-id"] == trace_id
    assert tracing_flush()
    (span,) = receiver.trace(trace_id, count=1)
    assert span.kind == SERVER
    assert span.status_code == ERROR
    assert span.attributes["url.path"] == "/v1/realtime"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.response.status_code"] == 401
    assert span.attributes["error.type"] == "invalid_api_key"
    assert "sk-not" not in repr(span.attributes)

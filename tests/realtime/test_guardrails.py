"""Guardrails on /v1/realtime (docs/guardrails.md): the text a client adds with
`conversation.item.create` runs the session's pre_call (and during_call) checks before it goes
upstream: a block is an `error` event and the item is not forwarded, a mask forwards placeholders;
the decisions are recorded with the session's next response."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.config import watch as config_watch
from gateway.config.types import GuardrailSettings, GuardrailSpec
from gateway.registry import registry_get
from tests.realtime.helpers import events_until, key_of, raw_connect, realtime_logs, send, user_text

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def guarded() -> Iterator[None]:
    registry_get()
    previous = config_watch._current
    specs = (
        GuardrailSpec(name="pii", kind="pii", action="mask", default_on=True),
        GuardrailSpec(
            name="banned",
            kind="words",
            modes=("during_call",),
            default_on=True,
            options={"words": ["darn"]},
        ),
    )
    config_watch._current = replace(
        previous,
        guardrails=GuardrailSettings(
            guardrails={spec.name: spec for spec in specs}, default_on=("pii", "banned")
        ),
    )
    yield
    config_watch._current = previous


def test_item_text_is_blocked_or_masked_before_it_goes_upstream(  # type: ignore[no-untyped-def]
    guarded, realtime_model, live_ogem, make_key
) -> None:
    from billing.models import GuardrailDecision

    emulator = realtime_model()
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        events_until(ws, "session.created")
        blocked = {**user_text("well darn it"), "event_id": "evt_1"}
        send(ws, blocked)
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "content_filter"
        assert error["event_id"] == "evt_1"
        assert error["message"] == (
            "The request was blocked by the guardrail 'banned' (category: BLOCKED_WORD)."
        )
        send(ws, user_text("Write to jane.doe@example.com please"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    upstream = emulator.connections[0]
    items = upstream.of_type("conversation.item.create")
    assert [i["item"]["content"][0]["text"] for i in items] == ["Write to <EMAIL_ADDRESS_1> please"]
    [log] = realtime_logs(key_id=key_of(secret).pk)
    decisions = {
        (d.guardrail, d.action, d.category)
        for d in GuardrailDecision.objects.filter(request_id=log.request_id)
    }
    assert decisions == {("banned", "block", "BLOCKED_WORD"), ("pii", "mask", "EMAIL_ADDRESS")}


def test_a_session_without_guardrails_forwards_items_as_sent(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    with raw_connect(live_ogem, key=make_key()) as ws:
        events_until(ws, "session.created")
        send(ws, user_text("well darn it, jane.doe@example.com"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
    [item] = emulator.connections[0].of_type("conversation.item.create")
    assert item["item"]["content"][0]["text"] == "well darn it, jane.doe@example.com"

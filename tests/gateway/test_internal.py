"""Requests Ogem makes to its own pipeline on a caller's behalf (gateway/internal.py): the same
checks and accounting as a client's request."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from gateway.auth import caller_by_key_id
from gateway.internal import InternalStreamError, internal_call, internal_stream
from keys.services import key_create, key_revoke
from providers.base import Endpoint
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _call(key_id: int, body: dict[str, object]):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        caller = await caller_by_key_id(key_id=key_id)
        assert caller is not None
        return await internal_call(
            caller=caller, endpoint=Endpoint.EMBEDDINGS, body=body, request_id=uuid.uuid4().hex
        )

    return asyncio.run(run())


def test_an_internal_embedding_is_answered_and_accounted_to_the_key() -> None:
    created = key_create(name="internal", team=TeamFactory())
    key = created.key
    answer = _call(key.pk, {"model": "mock-embed", "input": "a paraphrase test"})
    assert answer.ok, answer.body
    assert answer.body["data"][0]["embedding"]
    usage_drain()
    log = RequestLog.objects.get(request_id=answer.headers["x-request-id"])
    assert log.key_id == key.pk
    assert log.endpoint == "embeddings"


def test_an_internal_call_gets_the_error_a_client_would() -> None:
    created = key_create(name="internal", team=TeamFactory(), models=["mock-chat"])
    key = created.key
    answer = _call(key.pk, {"model": "mock-embed", "input": "not allowed"})
    assert answer.status in (401, 403, 404)
    assert answer.body["error"]["message"]
    missing = _call(key.pk, {"model": "mock-chat"})
    assert missing.status == 400


def test_a_revoked_key_has_no_caller() -> None:
    created = key_create(name="internal", team=TeamFactory())
    key = created.key
    key_revoke(key=key)
    assert asyncio.run(caller_by_key_id(key_id=key.pk)) is None


def _stream(key_id: int, body: dict[str, object], request_id: str) -> list[dict[str, object]]:
    async def run() -> list[dict[str, object]]:
        caller = await caller_by_key_id(key_id=key_id)
        assert caller is not None
        chunks = internal_stream(caller=caller, body=body, request_id=request_id)
        return [chunk async for chunk in chunks]

    return asyncio.run(run())


def test_an_internal_stream_gives_the_chunks_as_they_come_and_is_accounted() -> None:
    created = key_create(name="internal", team=TeamFactory())
    request_id = uuid.uuid4().hex
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "one two three"}]}
    chunks = _stream(created.key.pk, body, request_id)
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert len([t for t in texts if t]) > 1
    assert "".join(t for t in texts if t) == "Mock reply to: one two three"
    assert chunks[-1]["usage"]["completion_tokens"] > 0  # include_usage is asked for
    usage_drain()
    log = RequestLog.objects.get(request_id=request_id)
    assert (log.key_id, log.endpoint, log.status_code) == (created.key.pk, "chat/completions", 200)
    assert log.completion_tokens == chunks[-1]["usage"]["completion_tokens"]


def test_an_internal_stream_refused_raises_the_answer_a_client_would_have() -> None:
    created = key_create(name="internal", team=TeamFactory(), models=["mock-embed"])
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InternalStreamError) as raised:
        _stream(created.key.pk, body, uuid.uuid4().hex)
    assert raised.value.answer.status in (401, 403, 404)
    assert raised.value.answer.body["error"]["message"]

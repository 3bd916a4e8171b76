"""The exact response cache (gateway/cache.py, docs/caching.md), through the live server and the
official openai SDK; the OpenAI emulator counts the upstream calls."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis

from gateway.cache import cache_local_clear
from gateway.config import watch as config_watch
from gateway.config.types import CacheSettings
from gateway.registry import registry_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _redis_entries_delete(prefix: str) -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}:cache:*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def cache_on(settings) -> Iterator[Callable[..., CacheSettings]]:  # type: ignore[no-untyped-def]
    """Turn the response cache on (Redis when the run has one) for one test."""
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current
    prefix = settings.OGEM_CACHE_PREFIX

    def turn_on(**fields: Any) -> CacheSettings:
        cache = CacheSettings(**{"type": "redis" if settings.REDIS_URL else "local", **fields})
        config_watch._current = replace(previous, cache=cache)
        return cache

    yield turn_on
    config_watch._current = previous
    cache_local_clear()
    _redis_entries_delete(prefix)


@pytest.fixture
def emulated(emulated_model, cache_on) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    cache_on()
    return emulated_model()


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"What is the answer? {uuid.uuid4().hex}"}]


def _chat(client: openai.OpenAI, messages: list[dict[str, str]], **options: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="emulated", messages=messages, **options
    )


def _upstream_calls(emulator: OpenAIEmulator) -> int:
    return sum(1 for recorded in emulator.requests if recorded.path.endswith("/completions"))


def test_a_repeated_request_is_answered_from_the_cache(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    first = _chat(sdk, messages, temperature=0.2)
    assert first.headers["x-ogem-cache"] == "miss"
    assert "x-ogem-cache-age" not in first.headers
    second = _chat(sdk, messages, temperature=0.2, user="someone-else")
    assert second.headers["x-ogem-cache"] == "hit"
    assert second.headers["x-ogem-cache-age"] == "0"
    assert "x-ogem-deployment" not in second.headers
    assert second.parse().model_dump() == first.parse().model_dump()
    # The hit sends the stored bytes: what the miss sent, byte for byte.
    assert second.http_response.content == first.http_response.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert _upstream_calls(emulated) == 1
    # A field that changes the answer changes the key.
    third = _chat(sdk, messages, temperature=0.3)
    assert third.headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == 2


def test_a_stored_completion_is_its_own_and_never_cached(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    """`store: true` bypasses the cache both ways: each stored completion is a real answer under
    its own id, and no later request is answered with a stored completion's id."""
    messages = _messages()
    first = _chat(sdk, messages, store=True)
    second = _chat(sdk, messages, store=True)
    assert first.headers["x-ogem-cache"] == second.headers["x-ogem-cache"] == "bypass"
    assert first.parse().id != second.parse().id
    assert sdk.chat.completions.retrieve(second.parse().id).id == second.parse().id
    plain = _chat(sdk, messages)
    assert plain.headers["x-ogem-cache"] == "miss"
    assert plain.parse().id not in {first.parse().id, second.parse().id}
    assert _upstream_calls(emulated) == 3


def test_the_cache_object_is_never_sent_upstream(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _chat(sdk, _messages(), extra_body={"cache": {"ttl": 60, "namespace": "docs"}})
    assert "cache" not in emulated.requests[-1].json


def test_another_organizations_key_never_hits(emulated, make_key, live_ogem) -> None:  # type: ignore[no-untyped-def]
    def client(secret: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)

    first, other_org = client(make_key()), client(make_key())  # each in an organization of its own
    messages = _messages()
    assert _chat(first, messages).headers["x-ogem-cache"] == "miss"
    assert _chat(first, messages).headers["x-ogem-cache"] == "hit"
    assert _chat(other_org, messages).headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == 2


def test_keys_of_one_organization_share_entries_unless_scoped_to_the_key(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, cache_on
) -> None:
    from tests.factories import TeamFactory

    team = TeamFactory()
    other_team = TeamFactory(organization=team.organization)

    def client(**options: Any) -> openai.OpenAI:
        secret = make_key(**options)
        return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)

    messages = _messages()
    assert _chat(client(team=team), messages).headers["x-ogem-cache"] == "miss"
    assert _chat(client(team=other_team), messages).headers["x-ogem-cache"] == "hit"
    scoped = client(team=team, metadata={"cache": {"scope": "key"}})
    assert _chat(scoped, messages).headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == 2


def test_a_stored_stream_answers_a_plain_request(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    with sdk.chat.completions.with_streaming_response.create(
        model="emulated", messages=messages, stream=True
    ) as streamed:
        assert streamed.headers["x-ogem-cache"] == "miss"
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in streamed.parse() if chunk.choices
        )
    plain = _chat(sdk, messages)
    assert plain.headers["x-ogem-cache"] == "hit"
    completion = plain.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert _upstream_calls(emulated) == 1


def test_a_stored_answer_is_replayed_as_a_stream(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    stored = _chat(sdk, messages).parse()
    with sdk.chat.completions.with_streaming_response.create(
        model="emulated", messages=messages, stream=True, stream_options={"include_usage": True}
    ) as streamed:
        assert streamed.headers["x-ogem-cache"] == "hit"
        assert streamed.headers["content-type"].startswith("text/event-stream")
        chunks = list(streamed.parse())
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == stored.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == stored.usage.model_dump()
    assert _upstream_calls(emulated) == 1


def test_tool_calls_survive_a_stream_and_its_replay(cache_on, sdk) -> None:  # type: ignore[no-untyped-def]
    cache_on()
    messages = _messages()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    with sdk.chat.completions.with_streaming_response.create(
        model="mock-chat", messages=messages, stream=True, tools=tools
    ) as streamed:
        assert streamed.headers["x-ogem-cache"] == "miss"
        chunks = list(streamed.parse())
    arguments = "".join(
        call.function.arguments or ""
        for chunk in chunks
        if chunk.choices
        for call in chunk.choices[0].delta.tool_calls or ()
    )
    plain = sdk.chat.completions.with_raw_response.create(
        model="mock-chat", messages=messages, tools=tools
    )
    assert plain.headers["x-ogem-cache"] == "hit"
    choice = plain.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [call.function.name for call in choice.message.tool_calls] == ["lookup"]
    assert choice.message.tool_calls[0].function.arguments == arguments
    assert arguments.startswith("{")


def test_no_store_and_no_cache(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    assert _chat(sdk, messages, extra_body={"cache": {"no-store": True}}).headers[
        "x-ogem-cache"
    ] == ("miss")
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"  # nothing was stored
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "hit"
    fresh = _chat(sdk, messages, extra_body={"cache": {"no-cache": True}})
    assert fresh.headers["x-ogem-cache"] == "bypass"
    assert _upstream_calls(emulated) == 3
    # Cache-Control request headers say the same.
    header = _chat(sdk, messages, extra_headers={"Cache-Control": "no-cache"})
    assert header.headers["x-ogem-cache"] == "bypass"
    assert _upstream_calls(emulated) == 4
    other = _messages()
    _chat(sdk, other, extra_headers={"Cache-Control": "no-store"})
    assert _chat(sdk, other).headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == 6


def test_a_hits_plan_memo_gives_way_to_what_it_depends_on(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, cache_on
) -> None:
    """A hit's body check, routing and cache key are kept for the same body and caller
    (gateway/cache.py `PlanMemo`); each thing they depend on is still seen: the request's
    Cache-Control, a purge, the key's settings (a changed key is a new caller), a revoked key,
    the configuration."""
    from gateway import cache
    from keys.models import VirtualKey
    from keys.services import key_revoke, key_update

    cache_on(type="local")  # L1 only: every repeat is found before its admission
    secret = make_key()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    messages = _messages()

    def answered(**options: Any) -> str:
        return str(_chat(client, messages, **options).headers["x-ogem-cache"])

    assert [answered() for _ in range(3)] == ["miss", "hit", "hit"]
    assert any(memo.caller.key_prefix == secret[3:11] for memo in cache._memos.values())
    assert answered(extra_headers={"Cache-Control": "no-cache"}) == "bypass"
    assert answered(extra_headers={"Cache-Control": "max-age=60"}) == "hit"
    assert answered() == "hit"
    cache_local_clear()  # a purge
    assert [answered(), answered()] == ["miss", "hit"]
    key = VirtualKey.objects.get(prefix=secret[3:11])
    key_update(key=key, allowed_models=["mock-embed"])
    with pytest.raises(openai.PermissionDeniedError):
        _chat(client, messages)
    key_update(key=key, allowed_models=[])
    assert answered() == "hit"
    cache_on(type="local", namespace="elsewhere")  # a new configuration: a new key prefix
    assert [answered(), answered()] == ["miss", "hit"]
    key_revoke(key=key)
    with pytest.raises(openai.AuthenticationError):
        _chat(client, messages)
    assert _upstream_calls(emulated) == 4


def test_max_age_and_s_maxage_refuse_older_entries(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    _chat(sdk, messages)
    time.sleep(1.1)
    young = _chat(sdk, messages, extra_body={"cache": {"s-maxage": 0.5}})
    assert young.headers["x-ogem-cache"] == "miss"  # too old: asked again, and stored again
    assert _chat(sdk, messages, extra_headers={"Cache-Control": "max-age=60"}).headers[
        "x-ogem-cache"
    ] == ("hit")
    assert _upstream_calls(emulated) == 2


def test_a_request_ttl_expires_its_entry(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    _chat(sdk, messages, extra_body={"cache": {"ttl": 0.5}})
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "hit"
    time.sleep(0.7)
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"


def test_namespaces_keep_entries_apart(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    _chat(sdk, messages, extra_body={"cache": {"namespace": "one"}})
    assert _chat(sdk, messages, extra_body={"cache": {"namespace": "one"}}).headers[
        "x-ogem-cache"
    ] == ("hit")
    assert _chat(sdk, messages, extra_body={"cache": {"namespace": "two"}}).headers[
        "x-ogem-cache"
    ] == ("miss")


@pytest.mark.parametrize(
    ("cache", "param"),
    [
        ({"ttl": -1}, "cache.ttl"),
        ({"ttl": 90_000}, "cache.ttl"),
        ({"ttl": "soon"}, "cache.ttl"),
        ({"s-maxage": -5}, "cache.s-maxage"),
        ({"no-cache": "yes"}, "cache.no-cache"),
        ({"namespace": "a b"}, "cache.namespace"),
        ({"nocache": True}, "cache.nocache"),
        ("no-cache", "cache"),
    ],
)
def test_bad_cache_controls_are_refused(emulated, sdk, cache: Any, param: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as refused:
        _chat(sdk, _messages(), extra_body={"cache": cache})
    error = refused.value.response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert _upstream_calls(emulated) == 0


def test_errors_refusals_and_cut_streams_are_never_stored(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    emulated.inject(status=500)
    with pytest.raises(openai.APIStatusError) as failed:
        _chat(sdk, messages)
    assert failed.value.response.headers["x-ogem-cache"] == "miss"
    refusal = {
        "id": "chatcmpl-refused",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": "content_filter",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5},
    }
    emulated.inject(status=200, body=refusal)
    assert _chat(sdk, messages).parse().choices[0].finish_reason == "content_filter"
    emulated.inject(cut_after_chunks=2)
    with pytest.raises(openai.APIError):
        with sdk.chat.completions.with_streaming_response.create(
            model="emulated", messages=messages, stream=True
        ) as streamed:
            list(streamed.parse())
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"
    calls = _upstream_calls(emulated)
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "hit"
    assert _upstream_calls(emulated) == calls


def test_embeddings_and_completions_are_cached(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    text = f"embed me {uuid.uuid4().hex}"
    first = sdk.embeddings.with_raw_response.create(model="emulated", input=text)
    second = sdk.embeddings.with_raw_response.create(model="emulated", input=text)
    assert (first.headers["x-ogem-cache"], second.headers["x-ogem-cache"]) == ("miss", "hit")
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    prompt = f"complete me {uuid.uuid4().hex}"
    with sdk.completions.with_streaming_response.create(
        model="emulated", prompt=prompt, stream=True
    ) as streamed:
        text = "".join(chunk.choices[0].text for chunk in streamed.parse() if chunk.choices)
    plain = sdk.completions.with_raw_response.create(model="emulated", prompt=prompt)
    assert plain.headers["x-ogem-cache"] == "hit"
    assert plain.parse().choices[0].text == text
    embedding_calls = [r for r in emulated.requests if r.path.endswith("/embeddings")]
    assert len(embedding_calls) == 1
    assert _upstream_calls(emulated) == 1


def test_no_cache_configured_means_no_header(emulated_model, sdk) -> None:  # type: ignore[no-untyped-def]
    emulated_model()
    answer = _chat(sdk, _messages(), extra_body={"cache": {"ttl": 5}})
    assert "x-ogem-cache" not in answer.headers


def test_a_model_group_can_turn_the_cache_off(  # type: ignore[no-untyped-def]
    emulated_model, cache_on, sdk
) -> None:
    cache_on()
    emulator = emulated_model(params={"model_info": {"cache": False}})
    messages = _messages()
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "bypass"
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "bypass"
    assert _upstream_calls(emulator) == 2


def test_default_off_serves_only_requests_that_ask(emulated_model, cache_on, sdk) -> None:  # type: ignore[no-untyped-def]
    cache_on(default_on=False)
    emulator = emulated_model()
    messages = _messages()
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "bypass"
    ask = {"cache": {"use-cache": True}}
    assert _chat(sdk, messages, extra_body=ask).headers["x-ogem-cache"] == "miss"
    assert _chat(sdk, messages, extra_body=ask).headers["x-ogem-cache"] == "hit"
    assert _upstream_calls(emulator) == 2


def _metric(live: LiveServer, name: str, **labels: str) -> float:
    text = httpx.get(f"{live.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bypasses_are_counted_by_prometheus(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    """Each request not looked up counts once: written but not read (`no-cache`), and neither
    read nor written."""
    before = _metric(live_ogem, "ogem_cache_requests_total", result="bypass", model="emulated")
    misses = _metric(live_ogem, "ogem_cache_requests_total", result="miss", model="emulated")
    _chat(sdk, _messages(), extra_headers={"Cache-Control": "no-cache"})
    _chat(sdk, _messages(), extra_body={"cache": {"no-cache": True, "no-store": True}})
    after = _metric(live_ogem, "ogem_cache_requests_total", result="bypass", model="emulated")
    assert after - before == 2
    now = _metric(live_ogem, "ogem_cache_requests_total", result="miss", model="emulated")
    assert now == misses


def test_a_hit_is_counted_by_prometheus(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    before = _metric(live_ogem, "ogem_cache_requests_total", result="hit", model="emulated")
    saved = _metric(live_ogem, "ogem_cache_saved_tokens_total", model="emulated")
    messages = _messages()
    first = _chat(sdk, messages).parse()
    _chat(sdk, messages)
    after = _metric(live_ogem, "ogem_cache_requests_total", result="hit", model="emulated")
    assert after - before == 1
    saved_now = _metric(live_ogem, "ogem_cache_saved_tokens_total", model="emulated")
    assert saved_now - saved == first.usage.total_tokens


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_a_hit_is_free_against_budgets_but_counts_against_rpm(  # type: ignore[no-untyped-def]
    cache_on, make_key, live_ogem
) -> None:
    from billing.models import RequestLog

    cache_on()
    secret = make_key(rpm_limit=2, max_budget=Decimal("5"))
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    messages = _messages()
    ids = []
    for expected in ("miss", "hit"):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=messages)
        assert raw.headers["x-ogem-cache"] == expected
        ids.append(raw.headers["x-request-id"])
    with pytest.raises(openai.RateLimitError):  # the hit took the second request of the minute
        client.chat.completions.create(model="mock-chat", messages=messages)
    _drained(ids)
    rows = {row.request_id: row for row in RequestLog.objects.filter(request_id__in=ids)}
    miss, hit = rows[ids[0]], rows[ids[1]]
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    assert miss.cost > 0
    assert hit.cost == 0
    assert hit.total_tokens == miss.total_tokens


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_an_l1_hit_is_recorded_by_its_admission_and_a_refused_one_not_at_all(  # type: ignore[no-untyped-def]
    cache_on, make_key, live_ogem
) -> None:
    """An L1 hit's answer is built before its admission, whose script records its usage event
    (gateway/governance.py `_hit_event`): one free row per hit, with the stored answer's tokens,
    its one parallel slot never held; a hit the rpm refuses records nothing and says `miss`.
    Hits differ in their request id and times only."""
    from billing.models import RequestLog

    cache_on(type="local")
    secret = make_key(rpm_limit=4, max_parallel_requests=1)
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    messages = _messages()
    ids = []
    for expected in ("miss", "hit", "hit", "hit"):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=messages)
        assert raw.headers["x-ogem-cache"] == expected
        ids.append(raw.headers["x-request-id"])
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-chat", messages=messages)
    assert refused.value.response.headers["x-ogem-cache"] == "miss"
    refused_id = refused.value.response.headers["x-request-id"]
    _drained(ids)
    rows = {row.request_id: row for row in RequestLog.objects.filter(request_id__in=ids)}
    assert [rows[request_id].cache_hit for request_id in ids] == [False, True, True, True]
    assert [rows[request_id].cost for request_id in ids[1:]] == [0, 0, 0]
    assert {rows[request_id].total_tokens for request_id in ids} == {rows[ids[0]].total_tokens}
    assert {rows[request_id].status_code for request_id in ids} == {200}
    assert not RequestLog.objects.filter(request_id=refused_id).exists()
    # Hit after hit, the admission's event is the last one renewed (`_hit_event`): each row its
    # own request id, and the same in every column that does not count time.
    timed = {"id", "request_id", "created_at", "latency_ms"}
    hits = [
        {k: v for k, v in vars(rows[request_id]).items() if k not in timed and k[0] != "_"}
        for request_id in ids[1:]
    ]
    assert hits[0]["cache_result"] == "hit" and hits[0]["cache_saved_tokens"] > 0
    assert hits[1] == hits[0] and hits[2] == hits[0]


class _Admissions:
    """Counts the admission scripts Redis runs for one key's rpm window while in use. MONITOR sees
    every command of the server: other parallel workers' admissions, on the same database, are
    told apart by the window, whose key carries this worker's prefix and this key's id."""

    def __init__(self, window: str) -> None:
        from gateway.limits import _ADMIT_LUA

        self.window = window
        self.client = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.sha = hashlib.sha1(_ADMIT_LUA.encode(), usedforsecurity=False).hexdigest()
        self.end = f"admissions-counted-{uuid.uuid4().hex}"
        self.count = 0

    def __enter__(self) -> _Admissions:
        self.monitor = self.client.monitor().__enter__()
        self.thread = threading.Thread(target=self._listen)
        self.thread.start()
        return self

    def _listen(self) -> None:
        for command in self.monitor.listen():
            if command["db"] != self.db:
                continue
            text = command["command"]
            if text.startswith(f"EVALSHA {self.sha}") and self.window in text:
                self.count += 1
            elif self.end in text:
                return

    def __exit__(self, *exc: object) -> None:
        self.client.echo(self.end)
        self.thread.join(10)
        self.monitor.__exit__(*exc)


def _drained(ids: list[str]) -> None:
    """Usage drained until every one of `ids` is recorded (at most 5 s): a hit is answered
    before its settle (gateway/relay.py), so the last one's may still run when it is read."""
    from billing.models import RequestLog
    from billing.services import usage_drain

    def all_recorded() -> bool:
        usage_drain()
        return RequestLog.objects.filter(request_id__in=ids).count() == len(set(ids))

    wait_for(all_recorded, timeout=5, what="every request's usage")


def _second_start() -> None:
    """Wait for the start of a second: a burst right after stays in one second's lease."""
    time.sleep(1 - time.time() % 1 + 0.01)


def _lease_key(rpm_limit: int) -> tuple[str, str]:
    """A key with this rpm limit: its secret and its rpm window's Redis key."""
    from gateway.limits import rule_key
    from keys.services import key_create
    from tests.factories import TeamFactory

    team = TeamFactory()
    issued = key_create(name="lease", team=team, rpm_limit=rpm_limit)
    tenant = f"o:{team.organization_id if team.organization_id is not None else '-'}"
    window = rule_key(tenant=tenant, entity=f"key:{issued.key.pk}", metric="rpm")
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete(window)  # an earlier run's key of that id
    return issued.secret, window


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_l1_hits_on_a_lease_make_no_admission_round_trip_and_are_recorded_once(  # type: ignore[no-untyped-def]
    cache_on, live_ogem
) -> None:
    """After a second's first hits, a worker takes request allowance from Redis beyond each
    hit's own request (a lease, gateway/governance.py `_HitLease`) and admits the next hits of
    that second on it, without an admission script. They count as requests all the same, their
    x-ratelimit-* headers go on counting down, and their usage events reach the usage stream
    soon after, each once."""
    from billing.models import RequestLog
    from billing.services import usage_drain
    from billing.usage import usage_stream_key

    cache_on(type="local")
    secret, window = _lease_key(6_400)  # leases of up to 16 requests
    stream = redis.Redis.from_url(os.environ["REDIS_URL"])
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "mock-chat", "messages": _messages()}
    with httpx.Client(base_url=f"{live_ogem.url}/v1", headers=headers, timeout=10) as client:
        miss = client.post("/chat/completions", json=body)
        assert miss.headers["x-ogem-cache"] == "miss"
        ids = [miss.headers["x-request-id"]]
        remaining = [int(miss.headers["x-ratelimit-remaining-requests"])]
        _second_start()
        with _Admissions(window) as admissions:
            started = time.time()
            for _ in range(40):
                hit = client.post("/chat/completions", json=body)
                assert hit.status_code == 200, hit.text
                assert hit.headers["x-ogem-cache"] == "hit"
                assert hit.headers["x-ratelimit-limit-requests"] == "6400"
                assert hit.headers["x-ratelimit-reset-requests"]
                ids.append(hit.headers["x-request-id"])
                remaining.append(int(hit.headers["x-ratelimit-remaining-requests"]))
            seconds = int(time.time()) - int(started) + 1
    # A second's hits ask Redis at most at their 1st, 2nd, 4th, 8th, 16th and 32nd (each lease at
    # least as large as the hits so far, at most 16), then once per 17.
    assert 1 <= admissions.count <= 6 * seconds  # at least the second's first hit asks
    assert admissions.count < 20
    assert remaining[0] == 6_399
    # Counted once each, in order, as if each had been admitted alone.
    assert all(later < earlier for earlier, later in itertools.pairwise(remaining))
    counted = int(stream.hget(window, "t"))
    assert len(ids) <= counted <= len(ids) + 16 * seconds

    def recorded() -> list[str]:
        entries = stream.xrange(usage_stream_key())
        return [orjson.loads(fields[b"e"])["request_id"] for _, fields in entries]

    deadline = time.monotonic() + 5
    while len(recorded()) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(recorded()) == sorted(ids)  # each once
    usage_drain()
    rows = RequestLog.objects.filter(request_id__in=ids)
    assert sorted(row.cache_hit for row in rows) == [False] + [True] * 40
    assert {row.cost for row in rows if row.cache_hit} == {0}


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
@pytest.mark.parametrize("limit", [63, 128])
def test_hits_on_a_lease_count_against_the_rpm(cache_on, live_ogem, limit: int) -> None:  # type: ignore[no-untyped-def]
    """A limit under 64 a minute leases nothing: the request after the limit-th is refused. A
    larger one leases at most a 64th of itself per second (docs/caching.md): what a lease holds
    unspent when its second ends counts against the limit, so the refusal may come that much
    earlier, never later."""
    cache_on(type="local")
    secret, window = _lease_key(limit)
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"model": "mock-chat", "messages": _messages()}
    served = 0
    with httpx.Client(base_url=f"{live_ogem.url}/v1", headers=headers, timeout=10) as client:
        _second_start()
        started = time.time()
        for _ in range(limit + 1):
            response = client.post("/chat/completions", json=body)
            if response.status_code == 429:
                break
            assert response.status_code == 200, response.text
            served += 1
        seconds = int(time.time()) - int(started) + 1
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        again = client.post("/chat/completions", json=body)
        assert again.status_code == 429
    counted = int(redis.Redis.from_url(os.environ["REDIS_URL"]).hget(window, "t"))
    assert counted == limit
    if limit < 64:
        assert served == limit
    else:
        assert limit - (limit // 64) * seconds <= served <= limit


def test_a_free_hit_needs_no_budget_room_but_a_request_that_misses_does(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, settings
) -> None:
    """A free hit known before admission (its L1 entry) reserves nothing against budgets; when
    the entry does not answer after all (too old for the request), the budget is checked before
    the upstream call, and the refusal frees the key's one slot."""
    from tests.factories import TeamFactory

    team = TeamFactory()

    def client(**options: Any) -> openai.OpenAI:
        secret = make_key(team=team, **options)
        return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)

    messages = _messages()
    rich = client()
    assert _chat(rich, messages).headers["x-ogem-cache"] == "miss"
    if settings.REDIS_URL:  # the entry goes to Redis; a hit read from there keeps it in L1
        _redis_entry_wait(settings)
        assert _chat(rich, messages).headers["x-ogem-cache"] == "hit"
    # Far below any request's worst case: only a free hit is served.
    broke = client(max_budget=Decimal("0.00000001"), max_parallel_requests=1)
    for _ in range(2):
        hit = _chat(broke, messages)
        assert hit.headers["x-ogem-cache"] == "hit"
    for _ in range(2):  # each refusal gave its slot back: the next one is refused by the budget
        with pytest.raises(openai.RateLimitError) as refused:
            _chat(broke, messages, extra_body={"cache": {"s-maxage": 0}})
        assert refused.value.code == "budget_exceeded"
    assert _chat(broke, messages).headers["x-ogem-cache"] == "hit"
    assert _upstream_calls(emulated) == 1


def test_back_to_back_hits_of_a_one_at_a_time_key_are_all_served(  # type: ignore[no-untyped-def]
    cache_on, make_key, live_ogem
) -> None:
    """A hit is answered before its settle (gateway/relay.py): the settle still releases the
    key's one slot before the client's next request is admitted, and records every hit."""
    from billing.models import RequestLog

    cache_on()
    secret = make_key(max_parallel_requests=1)
    messages = _messages()
    ids = []
    with httpx.Client(base_url=f"{live_ogem.url}/v1", timeout=10) as client:
        body = {"model": "mock-chat", "messages": messages}
        headers = {"Authorization": f"Bearer {secret}"}
        for _ in range(30):  # one connection, each request sent as soon as the answer is read
            response = client.post("/chat/completions", json=body, headers=headers)
            assert response.status_code == 200, response.text
            ids.append(response.headers["x-request-id"])
    assert response.headers["x-ogem-cache"] == "hit"
    _drained(ids)
    rows = RequestLog.objects.filter(request_id__in=ids)
    assert sorted(row.cache_hit for row in rows) == [False] + [True] * 29


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_redis_away_serves_uncached(emulated, sdk, settings, live_ogem) -> None:  # type: ignore[no-untyped-def]
    from tests.gateway.test_auth import _redis_unreachable

    _redis_unreachable(settings)
    errors = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    messages = _messages()
    for _ in range(2):
        cache_local_clear()  # only Redis could have answered
        answer = _chat(sdk, messages)
        assert answer.http_response.status_code == 200
        assert answer.headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == 2
    now = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    assert now - errors == 2


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_a_hit_from_redis_after_this_process_forgot_it(emulated, sdk, settings) -> None:  # type: ignore[no-untyped-def]
    messages = _messages()
    _chat(sdk, messages)
    _redis_entry_wait(settings)
    cache_local_clear()
    hit = _chat(sdk, messages)
    assert hit.headers["x-ogem-cache"] == "hit"
    assert _upstream_calls(emulated) == 1


def _redis_entry_wait(settings) -> None:  # type: ignore[no-untyped-def]
    from ogem_site.redis import redis_client_sync

    client = redis_client_sync()
    deadline = time.monotonic() + 5
    while not list(client.scan_iter(match=f"{settings.OGEM_CACHE_PREFIX}:cache:*")):
        assert time.monotonic() < deadline, "the entry never reached Redis"
        time.sleep(0.02)


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_a_hit_from_a_redis_cluster(  # type: ignore[no-untyped-def]
    emulated, cache_on, sdk, settings, tmp_path_factory
) -> None:
    """Six redis-server nodes of the test's own (tests/governance/redis_servers.py): the entry
    is one key, stored and read on whichever node holds its slot."""
    from gateway.governance import governance_snapshot_flush
    from ogem_site.redis import redis_clients_forget
    from tests.governance.redis_servers import RedisCluster

    cluster = RedisCluster(directory=tmp_path_factory.mktemp("cache-cluster")).start()
    try:
        settings.REDIS_URL = cluster.url
        redis_clients_forget()
        governance_snapshot_flush()
        cache_on(type="redis")
        messages = _messages()
        assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"
        _redis_entry_wait(settings)
        cache_local_clear()  # only the Cluster can answer now
        hit = _chat(sdk, messages)
        assert hit.headers["x-ogem-cache"] == "hit"
        assert _upstream_calls(emulated) == 1
    finally:
        cluster.stop()
        redis_clients_forget()


def _settled(log: redis.Redis, requests: int) -> None:
    """Wait until `requests` usage events are in the stream: their settles, each request's last
    command, have run (nothing drains the stream here)."""
    from billing.usage import usage_stream_key

    deadline = time.monotonic() + 5
    while log.xlen(usage_stream_key()) < requests:
        assert time.monotonic() < deadline, "a settle never reached Redis"
        time.sleep(0.02)


def _scripts_and_gets(log: redis.Redis, prefix: str) -> tuple[int, int]:
    """The scripts and the GETs of response cache entries that clients sent (not those a script
    ran: logged as from `?:0`), in Redis's slow log."""
    entry = f"{prefix}:cache:".encode()
    sent = [
        item["command"].split(b" ")
        for item in log.slowlog_get(100_000)
        if item["client_address"] != b"?:0"
    ]
    scripts = sum(1 for command in sent if command[0] in (b"EVALSHA", b"EVAL"))
    gets = sum(1 for command in sent if command[0] == b"GET" and command[1].startswith(entry))
    return scripts, gets


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
@pytest.mark.parametrize(
    ("limits", "tier", "commands"),
    [
        # No limit, no budget: no admission; the settle after the answer (its usage event).
        ({}, "L1", (1, 0)),
        ({}, "L2", (1, 1)),  # and the entry's GET
        # An rpm limit: the admission script, which records an L1 hit's usage event (no
        # settle of its own: its answer is built before the admission, parallel slots checked
        # and not held)...
        ({"rpm_limit": 1000}, "L1", (1, 0)),
        ({"rpm_limit": 1000, "max_parallel_requests": 5}, "L1", (1, 0)),
        # ... and reads an L2 hit's entry (no GET of its own), which settles after its answer.
        ({"rpm_limit": 1000}, "L2", (2, 0)),
    ],
)
def test_the_redis_commands_of_a_hit(  # type: ignore[no-untyped-def]
    emulated, cache_on, make_key, live_ogem, settings, tmp_path_factory, limits, tier, commands
) -> None:
    """A hit sends Redis only what its limits need: on a plain Redis server of the test's own,
    whose slow log keeps every command."""
    from gateway.governance import governance_snapshot_flush
    from ogem_site.redis import redis_clients_forget
    from tests.governance.redis_servers import RedisProcess

    server = RedisProcess(
        directory=tmp_path_factory.mktemp("hit-commands"),
        extra=("--slowlog-log-slower-than", "0", "--slowlog-max-len", "100000"),
    ).start()
    log = redis.Redis.from_url(server.url)
    try:
        settings.REDIS_URL = server.url
        redis_clients_forget()
        governance_snapshot_flush()
        cache_on(type="redis")
        client = openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**limits), max_retries=0
        )
        messages = _messages()
        assert _chat(client, messages).headers["x-ogem-cache"] == "miss"
        _redis_entry_wait(settings)
        requests = 1
        if tier == "L1":  # read back from Redis once, L1 keeps it
            assert _chat(client, messages).headers["x-ogem-cache"] == "hit"
            requests += 1
        else:
            cache_local_clear()
        _settled(log, requests)
        log.slowlog_reset()
        assert _chat(client, messages).headers["x-ogem-cache"] == "hit"
        _settled(log, requests + 1)
        assert _scripts_and_gets(log, settings.OGEM_CACHE_PREFIX) == commands
        assert _upstream_calls(emulated) == 1
    finally:
        log.close()
        server.stop()
        redis_clients_forget()
        governance_snapshot_flush()


def test_purging_an_organization_forgets_its_entries_only(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, master_key, settings
) -> None:
    from rest_framework.test import APIClient

    from tenants.models import Role
    from tests.factories import MembershipFactory, TeamFactory, UserFactory

    mine, theirs = TeamFactory(), TeamFactory()

    def client(team: Any) -> openai.OpenAI:
        secret = make_key(team=team)
        return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)

    mine_client, their_client = client(mine), client(theirs)
    messages = _messages()
    for sdk_client in (mine_client, their_client):
        assert _chat(sdk_client, messages).headers["x-ogem-cache"] == "miss"
    if settings.REDIS_URL:
        _redis_entry_wait(settings)

    outsider = UserFactory()
    outsider.save(update_fields=["password"])
    MembershipFactory(user=outsider, organization=theirs.organization, role=Role.ORG_ADMIN)
    api = APIClient()
    api.force_login(outsider)
    path = f"/api/v1/cache?organization={mine.organization_id}"
    assert api.delete(path).status_code == 403
    assert _chat(mine_client, messages).headers["x-ogem-cache"] == "hit"

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    assert api.delete("/api/v1/cache?organization=x").json() == {
        "organization": ["A valid integer is required."]
    }
    purged = api.delete(path)
    assert purged.status_code == 200
    assert purged.json()["deleted"] == (1 if settings.REDIS_URL else 0)
    assert _chat(mine_client, messages).headers["x-ogem-cache"] == "miss"
    # Another organization's entry stays in Redis (every process's L1 was dropped).
    kept = "hit" if settings.REDIS_URL else "miss"
    assert _chat(their_client, messages).headers["x-ogem-cache"] == kept
    assert _upstream_calls(emulated) == (3 if settings.REDIS_URL else 4)


def test_anthropic_messages_hit_too(cache_on, live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    """/v1/messages runs the same pipeline: a repeat is answered from the cache, streamed or
    not, in Anthropic's shapes."""
    import anthropic

    cache_on()
    client = anthropic.Anthropic(base_url=live_ogem.url, api_key=master_key, max_retries=0)
    messages = _messages()
    first = client.messages.with_raw_response.create(
        model="mock-chat", max_tokens=50, messages=messages
    )
    assert first.headers["x-ogem-cache"] == "miss"
    second = client.messages.with_raw_response.create(
        model="mock-chat", max_tokens=50, messages=messages
    )
    assert second.headers["x-ogem-cache"] == "hit"
    assert second.parse().content[0].text == first.parse().content[0].text
    with client.messages.stream(model="mock-chat", max_tokens=50, messages=messages) as stream:
        text = "".join(stream.text_stream)
        assert stream.response.headers["x-ogem-cache"] == "hit"
    assert text == first.parse().content[0].text


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_cache_stats_equal_the_hits_the_requests_produced(  # type: ignore[no-untyped-def]
    cache_on, make_key, live_ogem, master_key
) -> None:
    """Five requests, two distinct: two misses, three hits. /api/v1/cache/stats says exactly
    that, and the cost saved is the price of the cached usage (what each miss cost)."""
    from billing.models import RequestLog

    cache_on()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    first, second = _messages(), [{"role": "user", "content": "Another question, longer " * 5}]
    ids = []
    for messages, expected in (
        (first, "miss"),
        (first, "hit"),
        (second, "miss"),
        (first, "hit"),
        (second, "hit"),
    ):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=messages)
        assert raw.headers["x-ogem-cache"] == expected
        ids.append(raw.headers["x-request-id"])
    _drained(ids)
    rows = [RequestLog.objects.get(request_id=request_id) for request_id in ids]
    miss_first, miss_second = rows[0], rows[2]
    assert miss_first.cost > 0 and miss_second.cost > 0
    assert [row.cache_result for row in rows] == ["miss", "hit", "miss", "hit", "hit"]
    assert rows[1].cache_saved_cost == miss_first.cost
    assert rows[4].cache_saved_cost == miss_second.cost
    assert rows[0].cache_saved_cost is None
    assert all(row.cache_saved_latency_ms is not None for row in (rows[1], rows[3], rows[4]))
    key_id = miss_first.key_id

    answer = httpx.get(
        f"{live_ogem.url}/api/v1/cache/stats",
        params={"group_by": "key", "key": key_id},
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    saved_cost = 2 * miss_first.cost + miss_second.cost
    saved_tokens = 2 * miss_first.total_tokens + miss_second.total_tokens
    saved_latency = sum(row.cache_saved_latency_ms for row in rows if row.cache_hit)
    expected = {
        "requests": 5,
        "hits": 3,
        "semantic_hits": 0,
        "misses": 2,
        "bypasses": 0,
        "hit_rate": 0.6,
        "saved_cost": f"{saved_cost:.8f}",
        "saved_tokens": saved_tokens,
        "saved_latency_ms": saved_latency,
    }
    assert body["total"] == expected
    assert body["results"] == [{"key": key_id, "key_name": "test key", **expected}]
    by_model = httpx.get(
        f"{live_ogem.url}/api/v1/cache/stats",
        params={"group_by": "model", "key": key_id},
        headers={"Authorization": f"Bearer {master_key}"},
    ).json()
    assert by_model["results"] == [{"model": "mock-chat", **expected}]


def test_admin_lists_and_purges_an_organizations_namespaces(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, settings
) -> None:
    """The admin page (gateway.admin.ResponseCacheAdmin): an organization's admin sees their
    organization's namespaces and purges them, in one namespace or all; another organization's
    admin neither sees nor purges them."""
    from django.test import Client

    from tenants.models import Role
    from tests.factories import MembershipFactory, TeamFactory, UserFactory

    mine, theirs = TeamFactory(), TeamFactory()
    secret = make_key(team=mine)
    sdk = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    messages = _messages()
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"
    other = [{"role": "user", "content": "Another namespace, please."}]
    named = sdk.chat.completions.with_raw_response.create(
        model="emulated", messages=other, extra_body={"cache": {"namespace": "docs"}}
    )
    assert named.headers["x-ogem-cache"] == "miss"
    if settings.REDIS_URL:
        _redis_entry_wait(settings)

    def admin_of(organization: Any) -> Client:
        user = UserFactory()
        user.save(update_fields=["password"])
        MembershipFactory(user=user, organization=organization, role=Role.ORG_ADMIN)
        client = Client()
        client.force_login(user)
        return client

    page = "/admin/gateway/responsecacheorganization/"
    outsider = admin_of(theirs.organization)
    listing = outsider.get(page).content.decode()
    assert theirs.organization.name in listing
    assert mine.organization.name not in listing
    action = {"action": "purge", "_selected_action": [mine.organization_id], "namespace": ""}
    outsider.post(page, action)
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "hit"  # not theirs to purge

    owner = admin_of(mine.organization)
    listing = owner.get(page).content.decode()
    if settings.REDIS_URL:  # L1 entries are per process: only Redis's are listed
        assert "-: 1 / 0" in listing and "docs: 1 / 0" in listing
    refused = owner.post(page, {**action, "namespace": "no spaces"}, follow=True)
    assert "A namespace is 1 to 64 letters" in refused.content.decode()
    done = owner.post(page, {**action, "namespace": "docs"}, follow=True)
    assert f"{1 if settings.REDIS_URL else 0} response cache entries purged" in (
        done.content.decode()
    )
    assert _chat(sdk, messages).headers["x-ogem-cache"] == ("hit" if settings.REDIS_URL else "miss")
    again = sdk.chat.completions.with_raw_response.create(
        model="emulated", messages=other, extra_body={"cache": {"namespace": "docs"}}
    )
    assert again.headers["x-ogem-cache"] == "miss"
    owner.post(page, action)  # every namespace
    assert _chat(sdk, messages).headers["x-ogem-cache"] == "miss"


async def test_a_hit_whose_client_left_at_once_is_answered_and_recorded(  # type: ignore[no-untyped-def]
    cache_on, make_key
) -> None:
    """A hit answered from memory or Redis never listens for its client leaving (gateway/asgi.py,
    gateway/relay.py `_client_watch`): a client gone right after its body still has its hit
    answered (into the void, as a server takes it), settled and recorded, once."""
    from asgiref.sync import sync_to_async
    from django.db import connections

    from billing.models import RequestLog
    from billing.services import usage_drain
    from tests.gateway.test_lean_asgi import _request

    cache_on()
    secret = await sync_to_async(make_key)(max_parallel_requests=1)
    scope, body = _request(secret, "mock-chat")
    _, first = await _served(scope, body, leave=False)
    assert first[b"x-ogem-cache"] == b"miss"
    status, hit = await _served(scope, body, leave=True)
    assert (status, hit[b"x-ogem-cache"]) == (200, b"hit")
    # Its settle released the key's one slot: the next hit is admitted.
    status, again = await _served(scope, body, leave=False)
    assert (status, again[b"x-ogem-cache"]) == (200, b"hit")
    request_id = hit[b"x-request-id"].decode()

    def recorded() -> list[bool]:
        usage_drain()
        try:
            return [row.cache_hit for row in RequestLog.objects.filter(request_id=request_id)]
        finally:
            connections.close_all()  # sync_to_async's thread's, before the test database goes

    assert await sync_to_async(recorded)() == [True]


async def _served(scope: dict[str, Any], body: bytes, *, leave: bool) -> tuple[int, dict]:
    """One request through the ASGI application in process: its status and headers. `leave`:
    the client is gone as soon as its body is sent, else it stays."""
    from ogem_site.asgi import application

    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    start: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        for message in messages:
            return message
        if not leave:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)

    await asyncio.wait_for(application(scope, receive, send), timeout=10)
    return start.get("status", 0), dict(start.get("headers", ()))

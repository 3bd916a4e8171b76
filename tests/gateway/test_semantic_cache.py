"""The response cache's semantic tier (gateway/semantic.py, docs/caching.md), through the live
server and the official openai SDK, with the real embedding model Ogem ships (`local-embed`:
WordLlama, in process). The OpenAI emulator counts the upstream calls."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest

from gateway.cache import cache_local_clear
from gateway.config import watch as config_watch
from gateway.config.types import CacheSettings, SemanticCacheSettings
from gateway.registry import registry_get
from gateway.semantic import (
    semantic_catch_up_soon,
    semantic_idle,
    semantic_index_ready,
    semantic_index_reset,
    semantic_index_size,
)
from tests.emulators.openai_api import OpenAIEmulator
from tests.gateway.test_cache import _metric, _redis_entries_delete, _upstream_calls
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

# Similarities under local-embed (WordLlama l2_supercat, 256 dimensions), as measured:
QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"  # 0.984
LOOSER = "I forgot my password, how do I reset it?"  # 0.882
UNRELATED = "Write a haiku about autumn leaves."


@pytest.fixture
def semantic_on(settings) -> Iterator[Callable[..., CacheSettings]]:  # type: ignore[no-untyped-def]
    """Turn the response cache on with its semantic tier (embedding with local-embed)."""
    registry_get()
    previous = config_watch._current
    prefix = settings.OGEM_CACHE_PREFIX
    semantic_index_reset()

    def turn_on(cache: dict[str, Any] | None = None, **fields: Any) -> CacheSettings:
        semantic = SemanticCacheSettings(**{"model": "local-embed", **fields})
        kind = "redis" if settings.REDIS_URL else "local"
        config = CacheSettings(**{"type": kind, **(cache or {}), "semantic": semantic})
        config_watch._current = replace(previous, cache=config)
        return config

    yield turn_on
    # Let this test's queued entries reach the database now, not after the next test's flush.
    deadline = time.monotonic() + 10
    while not semantic_idle() and time.monotonic() < deadline:
        time.sleep(0.02)
    config_watch._current = previous
    cache_local_clear()
    semantic_index_reset()
    _redis_entries_delete(prefix)


@pytest.fixture
def emulated(emulated_model, semantic_on) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    semantic_on()
    return emulated_model()


def _ask(client: openai.OpenAI, text: str, **options: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="emulated", messages=[{"role": "user", "content": text}], **options
    )


def _written() -> None:
    """Wait for the live server's new entries to be embedded and written to the database."""
    deadline = time.monotonic() + 10
    while not semantic_idle():
        assert time.monotonic() < deadline, "the semantic entries were never written"
        time.sleep(0.02)


def _client(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _ready(client: openai.OpenAI) -> None:
    """A worker indexes the database's entries in the background once it serves a semantic
    request; lookups miss until then. Start it and wait."""
    _ask(client, f"warm-up {time.time_ns()}", extra_body={"cache": {"no-store": True}})
    deadline = time.monotonic() + 10
    while not semantic_index_ready():
        assert time.monotonic() < deadline, "the semantic index was never rebuilt"
        time.sleep(0.02)


def test_a_paraphrase_is_answered_by_the_semantic_tier(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    calls = _upstream_calls(emulated)
    first = _ask(sdk, QUESTION)
    assert first.headers["x-ogem-cache"] == "miss"
    assert "x-ogem-cache-similarity" not in first.headers
    paraphrase = _ask(sdk, PARAPHRASE)
    assert paraphrase.headers["x-ogem-cache"] == "semantic-hit"
    assert paraphrase.headers["x-ogem-cache-similarity"] == "0.984"
    assert paraphrase.headers["x-ogem-cache-age"] == "0"
    assert "x-ogem-deployment" not in paraphrase.headers
    assert paraphrase.parse().model_dump() == first.parse().model_dump()
    assert _upstream_calls(emulated) == calls + 1
    # The exact tier answers an identical request first.
    assert _ask(sdk, QUESTION).headers["x-ogem-cache"] == "hit"
    unrelated = _ask(sdk, UNRELATED)
    assert unrelated.headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == calls + 2
    # Below the threshold (0.9 by default): asked upstream, and stored in its turn.
    assert _ask(sdk, LOOSER).headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == calls + 3


def test_the_threshold_per_model_group_and_per_key(  # type: ignore[no-untyped-def]
    emulated_model, semantic_on, make_key, live_ogem
) -> None:
    from tests.factories import TeamFactory

    semantic_on(similarity_threshold=0.8)
    emulator = emulated_model(params={"model_info": {"cache": {"similarity_threshold": 0.95}}})
    team = TeamFactory()
    client = _client(live_ogem, make_key(team=team))
    _ready(client)
    _ask(client, QUESTION)
    assert _ask(client, LOOSER).headers["x-ogem-cache"] == "miss"  # 0.882 < the group's 0.95
    assert _ask(client, PARAPHRASE).headers["x-ogem-cache"] == "semantic-hit"  # 0.984
    strict = make_key(team=team, metadata={"cache": {"similarity_threshold": 0.99}})
    please = "How can I reset my password, please?"  # 0.950 to QUESTION
    assert _ask(_client(live_ogem, strict), please).headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulator) == 4  # the warm-up, QUESTION, LOOSER, please
    off = _client(live_ogem, make_key(team=team, metadata={"cache": {"semantic": False}}))
    sorry = "Sorry, how do I reset my password?"
    assert _ask(off, sorry).headers["x-ogem-cache"] == "miss"
    assert _ask(off, sorry).headers["x-ogem-cache"] == "hit"  # the exact tier still serves it
    assert _upstream_calls(emulator) == 5


def test_a_model_group_can_turn_the_semantic_tier_off(  # type: ignore[no-untyped-def]
    emulated_model, semantic_on, sdk
) -> None:
    semantic_on()
    emulator = emulated_model(params={"model_info": {"cache": {"semantic": False}}})
    _ask(sdk, QUESTION)
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "miss"
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "hit"
    assert _upstream_calls(emulator) == 2


def test_another_organizations_key_never_hits(emulated, make_key, live_ogem) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import TeamFactory

    team = TeamFactory()
    mine = _client(live_ogem, make_key(team=team))
    colleague = _client(live_ogem, make_key(team=TeamFactory(organization=team.organization)))
    other_org = _client(live_ogem, make_key())
    _ready(mine)
    calls = _upstream_calls(emulated)
    assert _ask(mine, QUESTION).headers["x-ogem-cache"] == "miss"
    assert _ask(other_org, PARAPHRASE).headers["x-ogem-cache"] == "miss"
    # A colleague in the first organization gets its entry (the default scope).
    assert _ask(colleague, PARAPHRASE).headers["x-ogem-cache"] == "semantic-hit"
    assert _upstream_calls(emulated) == calls + 2


def test_a_different_parameter_or_context_never_matches(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    calls = _upstream_calls(emulated)
    _ask(sdk, QUESTION, temperature=0.2)
    assert _ask(sdk, PARAPHRASE, temperature=0.7).headers["x-ogem-cache"] == "miss"
    assert _ask(sdk, PARAPHRASE, temperature=0.2, max_tokens=5).headers["x-ogem-cache"] == "miss"
    system = [{"role": "system", "content": "Answer in French."}]
    answer = sdk.chat.completions.with_raw_response.create(
        model="emulated",
        messages=[*system, {"role": "user", "content": PARAPHRASE}],
        temperature=0.2,
    )
    assert answer.headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulated) == calls + 4
    # The same parameters, with another `user` (never part of the key), match.
    again = _ask(sdk, PARAPHRASE, user="someone", temperature=0.2)
    assert again.headers["x-ogem-cache"] == "semantic-hit"
    assert _upstream_calls(emulated) == calls + 4


def test_a_semantic_hit_replays_streams_both_ways(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    with sdk.chat.completions.with_streaming_response.create(
        model="emulated", messages=[{"role": "user", "content": QUESTION}], stream=True
    ) as streamed:
        assert streamed.headers["x-ogem-cache"] == "miss"
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in streamed.parse() if chunk.choices
        )
    plain = _ask(sdk, PARAPHRASE)
    assert plain.headers["x-ogem-cache"] == "semantic-hit"
    assert plain.parse().choices[0].message.content == text
    assert plain.parse().choices[0].finish_reason == "stop"

    stored = _ask(sdk, "Explain photosynthesis in simple terms.").parse()
    with sdk.chat.completions.with_streaming_response.create(
        model="emulated",
        messages=[{"role": "user", "content": "Explain photosynthesis simply."}],  # 0.95
        stream=True,
        stream_options={"include_usage": True},
    ) as streamed:
        assert streamed.headers["x-ogem-cache"] == "semantic-hit"
        assert float(streamed.headers["x-ogem-cache-similarity"]) >= 0.9
        chunks = list(streamed.parse())
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    replayed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert replayed == stored.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == stored.usage.model_dump()
    assert _upstream_calls(emulated) == 3  # the warm-up, the stream, the plain answer


def test_completions_are_matched_too(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    first = sdk.completions.with_raw_response.create(model="emulated", prompt=QUESTION)
    second = sdk.completions.with_raw_response.create(model="emulated", prompt=PARAPHRASE)
    assert (first.headers["x-ogem-cache"], second.headers["x-ogem-cache"]) == (
        "miss",
        "semantic-hit",
    )
    assert second.parse().choices[0].text == first.parse().choices[0].text


def test_no_store_and_no_cache(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    calls = _upstream_calls(emulated)
    assert _ask(sdk, QUESTION, extra_body={"cache": {"no-store": True}}).headers[
        "x-ogem-cache"
    ] == ("miss")
    assert _ask(sdk, PARAPHRASE, extra_body={"cache": {"no-store": True}}).headers[
        "x-ogem-cache"
    ] == ("miss")  # nothing was stored
    # no-cache: not looked up, but its fresh answer is stored (embedded after it left).
    fresh = _ask(sdk, QUESTION, extra_headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-ogem-cache"] == "bypass"
    _written()
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "semantic-hit"
    assert _upstream_calls(emulated) == calls + 3


def test_errors_and_refusals_are_never_stored(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    emulated.inject(status=500)
    with pytest.raises(openai.APIStatusError):
        _ask(sdk, QUESTION)
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
    _ask(sdk, QUESTION)
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "miss"


def test_the_embedding_is_a_request_of_the_callers_key_and_hits_are_counted(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, master_key
) -> None:
    from billing.models import RequestLog
    from billing.services import usage_drain

    # A key limited to the chat model: its prompts are embedded all the same.
    key_secret = make_key(models=["emulated"])
    client = _client(live_ogem, key_secret)
    _ready(client)
    expected = [
        (QUESTION, "miss"),
        (PARAPHRASE, "semantic-hit"),
        (QUESTION, "hit"),
        ("How can I reset my password, please?", "semantic-hit"),
        (UNRELATED, "miss"),
    ]
    ids = []
    for text, result in expected:
        answer = _ask(client, text)
        assert answer.headers["x-ogem-cache"] == result, text
        ids.append(answer.headers["x-request-id"])
    usage_drain()
    rows = [RequestLog.objects.get(request_id=request_id) for request_id in ids]
    assert [row.cache_result for row in rows] == [result for _, result in expected]
    assert [row.cache_hit for row in rows] == [False, True, True, True, False]
    assert rows[1].cost == 0 and rows[1].cache_saved_cost == rows[0].cost
    key_id = rows[0].key_id
    # One embedding per prompt the exact tier did not answer (and the warm-up's): the key's.
    embeddings = RequestLog.objects.filter(key_id=key_id, endpoint="embeddings")
    assert embeddings.count() == 5
    assert set(embeddings.values_list("model", flat=True)) == {"local-embed"}

    stats = httpx.get(
        f"{live_ogem.url}/api/v1/cache/stats",
        params={"group_by": "model", "key": key_id, "model": "emulated"},
        headers={"Authorization": f"Bearer {master_key}"},
    ).json()
    total = stats["total"]
    assert (total["hits"], total["semantic_hits"], total["misses"]) == (3, 2, 3)
    assert total["saved_tokens"] == 3 * rows[0].total_tokens  # each hit answered QUESTION's


def test_a_hit_is_counted_by_prometheus(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    before = _metric(live_ogem, "ogem_cache_requests_total", result="semantic-hit")
    misses = _metric(live_ogem, "ogem_cache_requests_total", result="miss", model="emulated")
    _ask(sdk, QUESTION)
    _ask(sdk, PARAPHRASE)
    assert _metric(live_ogem, "ogem_cache_requests_total", result="semantic-hit") - before == 1
    after = _metric(live_ogem, "ogem_cache_requests_total", result="miss", model="emulated")
    assert after - misses == 1  # the exact tier's miss is not counted twice


def test_entries_survive_a_restart(emulated, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    """A new process has an empty index: it rebuilds it from the database."""
    from gateway.models import SemanticCacheEntry

    _ready(sdk)
    _ask(sdk, QUESTION)
    _written()
    assert SemanticCacheEntry.objects.count() == 1
    semantic_index_reset()  # what a restarted worker starts with
    cache_local_clear()
    _ready(sdk)
    calls = _upstream_calls(emulated)
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "semantic-hit"
    assert _upstream_calls(emulated) == calls


def test_an_entry_from_another_worker_arrives_by_broadcast_or_catch_up(  # type: ignore[no-untyped-def]
    emulated, sdk, live_ogem
) -> None:
    """Another worker's entry: the broadcast's `add` (or, when it was lost, the catch-up by id)
    indexes it here; its answer is read from the database."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import orjson

    from gateway.models import SemanticCacheEntry
    from providers.local.models import local_model_get

    _ready(sdk)
    first = _ask(sdk, QUESTION)  # gives the partition of this body
    _written()
    stored = SemanticCacheEntry.objects.get()
    model = local_model_get("wordllama-l2-supercat")
    vector = model.vectors(
        model.token_ids(["Explain photosynthesis in simple terms."]), dimensions=256
    )
    answer = {**first.parse().model_dump(), "id": "chatcmpl-other-worker"}
    now = time.time()
    SemanticCacheEntry.objects.create(
        label=12345,
        organization_id=None,
        scope=stored.scope,
        namespace=stored.namespace,
        partition=stored.partition,
        model="emulated",
        vector=np.asarray(vector[0], dtype="<f4").tobytes(),
        entry=orjson.dumps({"t": now, "x": now + 600, "l": 5, "r": answer}),
        created_at=datetime.now(tz=UTC),
        expires_at=datetime.now(tz=UTC) + timedelta(minutes=10),
    )
    semantic_catch_up_soon()  # no message was sent for it: as if lost
    _ask(sdk, f"tick {time.time_ns()}")  # a lookup starts the catch-up
    deadline = time.monotonic() + 10
    while True:
        hit = _ask(sdk, "Explain photosynthesis simply.", extra_body={"cache": {"no-store": True}})
        if hit.headers["x-ogem-cache"] == "semantic-hit":
            break
        assert time.monotonic() < deadline, "the catch-up never indexed the entry"
        time.sleep(0.05)
    assert hit.parse().id == "chatcmpl-other-worker"


def test_a_resubscribed_listener_rebuilds_while_the_index_answers(  # type: ignore[no-untyped-def]
    emulated, sdk, live_ogem, settings
) -> None:
    """Broadcasts may have been lost while the listener was away: on resubscribing, the index
    is rebuilt from the database beside the one that answers, so no lookup misses meanwhile."""
    import asyncio

    import orjson

    from gateway import semantic
    from ogem_site import broadcast
    from ogem_site.redis import redis_client_sync
    from tests.live import wait_for

    if not settings.REDIS_URL:
        pytest.skip("the broadcast listener needs Redis")
    _ready(sdk)  # the master key's requests start the listener too (gateway/auth.py)
    _ask(sdk, QUESTION)
    _written()
    loops: list[asyncio.AbstractEventLoop] = []

    def heard(message: dict[str, Any]) -> None:
        loops.append(asyncio.get_running_loop())

    broadcast.broadcast_topic_register(broadcast.BroadcastTopic("test-loop", heard))

    def listening() -> bool:
        channel = broadcast.broadcast_channel()
        redis_client_sync().publish(channel, orjson.dumps({"topic": "test-loop"}))
        return bool(loops)

    wait_for(listening, what="the live server's broadcast listener", every=0.05)
    size = semantic_index_size()

    async def resubscribed() -> bool:
        broadcast._resync()  # what the listener runs when it subscribes again
        return semantic_index_ready()

    assert asyncio.run_coroutine_threadsafe(resubscribed(), loops[0]).result(10)
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "semantic-hit"
    rebuild = semantic._state.loader
    assert rebuild is not None
    wait_for(rebuild.done, what="the rebuild")
    assert semantic_index_ready() and semantic_index_size() == size


def test_purging_an_organization_removes_its_semantic_entries(  # type: ignore[no-untyped-def]
    emulated, make_key, live_ogem, master_key
) -> None:
    from gateway.models import SemanticCacheEntry

    mine, theirs = _client(live_ogem, make_key()), _client(live_ogem, make_key())
    _ready(mine)
    _ask(mine, QUESTION)
    _ask(theirs, QUESTION)
    _written()
    organization = SemanticCacheEntry.objects.exclude(organization_id=None).first()
    assert organization is not None
    purged = httpx.delete(
        f"{live_ogem.url}/api/v1/cache",
        params={"organization": organization.organization_id},
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert purged.status_code == 200, purged.text
    assert purged.json()["deleted"] >= 1
    assert not SemanticCacheEntry.objects.filter(
        organization_id=organization.organization_id
    ).exists()
    results = {
        name: _ask(client, PARAPHRASE).headers["x-ogem-cache"]
        for name, client in (("mine", mine), ("theirs", theirs))
    }
    # Whichever organization was purged misses; the other still hits.
    assert sorted(results.values()) == ["miss", "semantic-hit"]


def test_the_embedding_failing_serves_uncached(emulated_model, semantic_on, sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    semantic_on(model="no-such-embedding-model")
    emulator = emulated_model()
    errors = _metric(live_ogem, "ogem_cache_semantic_errors_total", operation="embed")
    counted = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    for text in (QUESTION, PARAPHRASE):
        answer = _ask(sdk, text)
        assert answer.http_response.status_code == 200
        assert answer.headers["x-ogem-cache"] == "miss"
    assert _upstream_calls(emulator) == 2
    assert _metric(live_ogem, "ogem_cache_semantic_errors_total", operation="embed") - errors == 2
    now = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    assert now - counted == 2


def test_a_slow_embedding_is_given_up_on(  # type: ignore[no-untyped-def]
    emulated_model, semantic_on, sdk
) -> None:
    from tests.emulators.fixtures import slow_mock

    semantic_on(model="slow-embed", timeout=0.2)
    openai_emulator = emulated_model(
        slow_mock("slow-embed", latency_ms=20_000, upstream_model="mock-embed")
    )
    started = time.monotonic()
    answer = _ask(sdk, QUESTION)
    assert answer.headers["x-ogem-cache"] == "miss"
    assert time.monotonic() - started < 10  # not the embedding's twenty seconds
    assert _upstream_calls(openai_emulator) == 1


def test_a_namespace_keeps_at_most_max_entries(emulated_model, semantic_on, sdk) -> None:  # type: ignore[no-untyped-def]
    semantic_on(max_entries=1)
    emulated_model()
    _ready(sdk)
    _ask(sdk, QUESTION)
    _ask(sdk, UNRELATED)  # the namespace's newest: the question's entry is dropped
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "miss"
    # Another namespace has its own bound.
    space = {"cache": {"namespace": "other"}}
    _ask(sdk, QUESTION, extra_body=space)
    assert _ask(sdk, PARAPHRASE, extra_body=space).headers["x-ogem-cache"] == "semantic-hit"


def test_the_expiry_task_deletes_expired_and_surplus_entries(semantic_on) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from gateway.models import SemanticCacheEntry
    from gateway.tasks import semantic_cache_expire

    semantic_on(max_entries=2)
    now = datetime.now(tz=UTC)

    def entry(label: int, *, namespace: str = "-", expires: timedelta) -> None:
        SemanticCacheEntry.objects.create(
            label=label,
            organization_id=1,
            scope="o1",
            namespace=namespace,
            partition="p",
            model="emulated",
            vector=b"\0" * 16,
            entry=b"{}",
            created_at=now,
            expires_at=now + expires,
        )

    entry(1, expires=timedelta(seconds=-1))
    for label in (2, 3, 4):
        entry(label, expires=timedelta(hours=1))
    entry(5, namespace="other", expires=timedelta(hours=1))
    assert semantic_cache_expire() == 2  # the expired one, and the oldest of three
    assert sorted(SemanticCacheEntry.objects.values_list("label", flat=True)) == [3, 4, 5]
    assert semantic_cache_expire() == 0


def test_anthropic_messages_are_matched_too(semantic_on, live_ogem, master_key) -> None:  # type: ignore[no-untyped-def]
    """/v1/messages runs the same pipeline: a paraphrase is answered in Anthropic's shape."""
    import anthropic

    semantic_on()
    client = anthropic.Anthropic(base_url=live_ogem.url, api_key=master_key, max_retries=0)

    def ask(text: str) -> Any:
        return client.messages.with_raw_response.create(
            model="mock-chat", max_tokens=50, messages=[{"role": "user", "content": text}]
        )

    ask(f"warm-up {time.time_ns()}")
    deadline = time.monotonic() + 10
    while not semantic_index_ready():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first = ask(QUESTION)
    assert first.headers["x-ogem-cache"] == "miss"
    second = ask(PARAPHRASE)
    assert second.headers["x-ogem-cache"] == "semantic-hit"
    assert second.parse().content[0].text == first.parse().content[0].text


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_redis_away_still_serves(emulated, sdk, settings, live_ogem) -> None:  # type: ignore[no-untyped-def]
    """Redis away: the exact tier's L2 and the broadcast fail (counted); the semantic tier still
    answers from this worker's index, and no request fails."""
    from tests.gateway.test_auth import _redis_unreachable

    _ready(sdk)
    _redis_unreachable(settings)
    calls = _upstream_calls(emulated)
    first = _ask(sdk, QUESTION)
    assert first.http_response.status_code == 200
    assert first.headers["x-ogem-cache"] == "miss"
    cache_local_clear()
    paraphrase = _ask(sdk, PARAPHRASE)
    assert paraphrase.http_response.status_code == 200
    assert paraphrase.headers["x-ogem-cache"] == "semantic-hit"
    assert _upstream_calls(emulated) == calls + 1


def test_the_admin_lists_and_deletes_entries(emulated, sdk, admin_client_root) -> None:  # type: ignore[no-untyped-def]
    from django.urls import reverse

    from gateway.models import SemanticCacheEntry

    _ready(sdk)
    _ask(sdk, QUESTION)
    _written()
    entry = SemanticCacheEntry.objects.get()
    changelist = reverse("admin:gateway_semanticcacheentry_changelist")
    page = admin_client_root.get(changelist)
    assert page.status_code == 200
    assert str(entry.label) in page.content.decode()
    done = admin_client_root.post(
        changelist, {"action": "delete_entries", "_selected_action": [entry.pk]}
    )
    assert done.status_code == 302
    assert not SemanticCacheEntry.objects.exists()
    assert semantic_index_size() == 0  # this worker forgot it too
    assert _ask(sdk, PARAPHRASE).headers["x-ogem-cache"] == "miss"


@pytest.fixture
def admin_client_root():  # type: ignore[no-untyped-def]
    from django.test import Client

    from tests.factories import UserFactory

    user = UserFactory(username="root", is_superuser=True, is_staff=True)
    user.save(update_fields=["password"])
    client = Client()
    client.force_login(user)
    return client


def test_s_maxage_refuses_an_older_semantic_entry(emulated, sdk) -> None:  # type: ignore[no-untyped-def]
    _ready(sdk)
    _ask(sdk, QUESTION)
    time.sleep(1.1)
    young = _ask(sdk, PARAPHRASE, extra_body={"cache": {"s-maxage": 0.5, "no-store": True}})
    assert young.headers["x-ogem-cache"] == "miss"
    old = _ask(sdk, PARAPHRASE, extra_headers={"Cache-Control": "max-age=60"})
    assert old.headers["x-ogem-cache"] == "semantic-hit"
    assert int(old.headers["x-ogem-cache-age"]) >= 1

"""The /v1 request metrics scraped from the live server's /metrics after real requests
(docs/metrics.md): refusals by reason and rule, upstream errors by status, key labels and their
cap, deployment circuits, Celery queue depth and task failures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import httpx
import openai
import pytest
import redis

from gateway import metrics as gateway_metrics
from gateway.config import watch as config_watch
from gateway.config.types import GuardrailSettings, GuardrailSpec
from gateway.health import HealthPolicy, health_store
from gateway.registry import registry_get
from tests.live import wait_for
from tests.site.test_metrics import _scrape

pytestmark = pytest.mark.live

Sample = tuple[str, tuple[tuple[str, str], ...]]
MESSAGES = [{"role": "user", "content": "hello"}]


def _sample(name: str, **labels: str) -> Sample:
    return (name, tuple(sorted(labels.items())))


@pytest.fixture
def emulated(emulated_model):  # type: ignore[no-untyped-def]
    return emulated_model()


@pytest.fixture
def series_reset() -> Iterator[None]:
    """This process's key labels start over (the cap counts keys seen)."""
    gateway_metrics._series.clear()
    gateway_metrics._keys_labelled.clear()
    yield
    gateway_metrics._series.clear()
    gateway_metrics._keys_labelled.clear()


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "emulated", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_refusals_are_counted_by_reason_and_rule(live_ogem, emulated, make_key) -> None:  # type: ignore[no-untyped-def]
    before = _scrape(live_ogem.url)
    limited = make_key(rpm_limit=1)
    assert _chat(live_ogem.url, limited).status_code == 200
    refused = _chat(live_ogem.url, limited)
    assert refused.status_code == 429, refused.text
    broke = make_key(max_budget=Decimal("0"))
    over = _chat(live_ogem.url, broke)
    assert over.status_code == 429, over.text
    assert over.json()["error"]["message"].startswith("Budget has been exceeded!")

    previous = config_watch._current
    spec = GuardrailSpec(name="no-secrets", kind="secrets", default_on=True)
    config_watch._current = replace(
        previous,
        guardrails=GuardrailSettings(guardrails={spec.name: spec}, default_on=(spec.name,)),
    )
    try:
        secret = "sk-proj-AbCdEf0123456789AbCdEf0123456789"
        client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="emulated", messages=[{"role": "user", "content": f"key {secret}"}]
            )
    finally:
        config_watch._current = previous
    after = _scrape(live_ogem.url)

    def delta(sample: Sample) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    assert delta(_sample("ogem_refusals_total", reason="rate_limit", rule="key:rpm")) == 1
    assert delta(_sample("ogem_refusals_total", reason="budget", rule="key:budget")) == 1
    assert delta(_sample("ogem_refusals_total", reason="guardrail", rule="no-secrets")) == 1
    # Every request that reached the model group is counted once, refused or not.
    requests = "ogem_model_requests_total"
    assert delta(_sample(requests, model="emulated", deployment="test:emulated", status="200")) == 1
    assert delta(_sample(requests, model="emulated", deployment="", status="429")) == 2
    assert delta(_sample(requests, model="emulated", deployment="", status="400")) == 1
    assert len(emulated.requests) == 1


def test_upstream_errors_are_counted_by_provider_and_status(live_ogem, sdk, emulated) -> None:  # type: ignore[no-untyped-def]
    before = _scrape(live_ogem.url)
    emulated.inject(status=400)
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="emulated", messages=MESSAGES)
    emulated.inject(status=404)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="emulated", messages=MESSAGES)
    answer = sdk.chat.completions.create(model="emulated", messages=MESSAGES)
    assert answer.choices[0].message.content
    after = _scrape(live_ogem.url)

    def delta(sample: Sample) -> float:
        return after.get(sample, 0.0) - before.get(sample, 0.0)

    errors = "ogem_upstream_errors_total"
    assert delta(_sample(errors, provider="openai", status="400")) == 1
    assert delta(_sample(errors, provider="openai", status="404")) == 1
    assert sum(delta(key) for key in after if key[0] == errors) == 2
    requests = "ogem_model_requests_total"
    for status, count in (("400", 1), ("404", 1), ("200", 1)):
        sample = _sample(requests, model="emulated", deployment="test:emulated", status=status)
        assert delta(sample) == count


def test_key_labels_are_opt_in_and_capped(  # type: ignore[no-untyped-def]
    live_ogem, emulated, make_key, settings, series_reset
) -> None:
    first, second = make_key(), make_key()
    assert _chat(live_ogem.url, first).status_code == 200
    tokens = [key for key in _scrape(live_ogem.url) if key[0] == "ogem_tokens_total"]
    assert tokens
    assert {dict(labels)["key"] for _, labels in tokens} == {""}  # off by default

    settings.OGEM_METRICS_KEY_LABELS = True
    settings.OGEM_METRICS_KEY_LABELS_MAX = 1
    before = _scrape(live_ogem.url)
    for key in (first, second, first):
        assert _chat(live_ogem.url, key).status_code == 200
    after = _scrape(live_ogem.url)
    requests = {
        dict(key[1])["key"]: value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == "ogem_tokens_total" and dict(key[1])["type"] == "completion"
    }
    ids = [label for label, value in requests.items() if label.isdigit() and value]
    assert len(ids) == 1  # the first key seen keeps its id; the second, past the cap, is "other"
    assert requests["other"] > 0
    assert requests[ids[0]] == 2 * requests["other"]  # the same answer, twice and once


def test_deployment_circuits_are_read_at_scrape(live_ogem, emulated) -> None:  # type: ignore[no-untyped-def]
    labels = {"model": "emulated", "deployment": "test:emulated", "provider": "openai"}
    scraped = _scrape(live_ogem.url)
    assert scraped[_sample("ogem_deployment_up", **labels)] == 1
    assert scraped[_sample("ogem_deployment_circuit_state", **labels, state="closed")] == 1
    store = health_store()
    policy = HealthPolicy(allowed_fails=1, cooldown=60)

    async def fail() -> None:
        await store.failure("test:emulated", policy=policy, forced=60)

    asyncio.run(fail())
    try:
        # A worker's view of the circuits may be a quarter second old: scraped until it is not.
        scraped = wait_for(
            lambda: (
                (now := _scrape(live_ogem.url))[_sample("ogem_deployment_up", **labels)] == 0
                and now
            ),
            what="the open circuit on /metrics",
            every=0.05,
        )
        assert scraped[_sample("ogem_deployment_circuit_state", **labels, state="open")] == 1
        assert scraped[_sample("ogem_deployment_circuit_state", **labels, state="closed")] == 0
        assert _sample("ogem_deployment_circuit_failures", **labels) in scraped
    finally:

        async def recover() -> None:
            await store.success("test:emulated")

        asyncio.run(recover())
    assert registry_get().by_id["test:emulated"]


def test_celery_task_failures_and_queue_depth(live_ogem, settings) -> None:  # type: ignore[no-untyped-def]
    from ogem_site.celery import app

    name = f"tests.metrics.fails_{os.getpid()}"

    @app.task(name=name)
    def fails() -> None:
        raise RuntimeError("this task fails")

    before = _scrape(live_ogem.url)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            fails.apply(throw=True)
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    queue = f"{options.get('global_keyprefix', '')}celery"
    client = redis.Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    if client is not None:
        client.lpush(queue, b"{}", b"{}", b"{}")
    try:
        after = _scrape(live_ogem.url)
    finally:
        if client is not None:
            client.delete(queue)
            client.hdel(f"{settings.OGEM_CACHE_PREFIX}:metrics:celery_task_failures", name)
    failures = _sample("ogem_celery_task_failures_total", task=name)
    assert after[failures] - before.get(failures, 0.0) == 2
    if client is not None:
        assert after[_sample("ogem_celery_queue_length", queue="celery")] == 3
    else:
        assert not [key for key in after if key[0] == "ogem_celery_queue_length"]

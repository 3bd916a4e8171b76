"""Prices and cost: the shipped table, overrides with effective dates, exact values."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import ModelPrice
from billing.pricing import (
    cost_compute,
    cost_from_price,
    cost_worst_case,
    price_overrides_flush,
    price_resolve,
    price_table,
    unpriced_models,
)
from gateway.context import Usage
from providers.base import Deployment
from tests.live import broadcast_listening


def _deployment(**extra: object) -> Deployment:
    fields: dict[str, object] = {
        "id": "config:gpt:0",
        "model_name": "gpt",
        "provider": "openai",
        "upstream_model": "gpt-4o",
    }
    fields.update(extra)
    return Deployment(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_overrides() -> None:
    price_overrides_flush()


def test_every_shipped_entry_names_its_source_and_date() -> None:
    table = price_table()
    assert len(table.prices) > 150
    for (provider, model), price in table.prices.items():
        assert price.source, (provider, model)
        assert len(price.as_of) == 10, (provider, model)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        # 800 fresh * $2.50/M + 200 cached * $1.25/M + 500 out * $10/M
        (
            "openai",
            "gpt-4o",
            Usage(prompt_tokens=1000, cached_tokens=200, completion_tokens=500),
            "0.00725",
        ),
        # Dated ids and Azure use the same list price.
        ("azure", "gpt-4o-2024-08-06", Usage(prompt_tokens=1000, completion_tokens=500), "0.0075"),
        # 100 fresh * $3/M + 1000 written * $3.75/M + 2000 read * $0.30/M + 300 out * $15/M
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            Usage(
                prompt_tokens=3100,
                cache_creation_tokens=1000,
                cached_tokens=2000,
                completion_tokens=300,
            ),
            "0.00915",
        ),
        # o3: reasoning tokens are output tokens: 2000 * $8/M + 100 in * $2/M
        (
            "openai",
            "o3",
            Usage(prompt_tokens=100, completion_tokens=2000, reasoning_tokens=1500),
            "0.0162",
        ),
        # Perplexity: tokens plus the per-request search fee.
        ("perplexity", "sonar", Usage(prompt_tokens=1000, completion_tokens=1000), "0.007"),
        # A cross-region Bedrock profile costs its base model.
        ("bedrock", "us.amazon.nova-micro-v1:0", Usage(prompt_tokens=1_000_000), "0.035"),
        ("openai", "dall-e-3", Usage(images=2, image_size="1024x1792", image_quality="hd"), "0.24"),
        ("openai", "whisper-1", Usage(audio_seconds=90), "0.009"),
        ("openai", "tts-1", Usage(characters=1000), "0.015"),
        # Groq bills transcription by the hour: $0.111 / 3600 s * 3600 s.
        ("groq", "whisper-large-v3", Usage(audio_seconds=3600), "0.111"),
        ("cohere", "rerank-v3.5", Usage(), "0.002"),
        ("voyage", "voyage-3.5", Usage(prompt_tokens=10_000), "0.0006"),
    ],
)
def test_cost_exact_values(provider: str, model: str, usage: Usage, expected: str) -> None:
    cost = cost_compute(model=model, provider=provider, deployment=None, usage=usage)
    assert cost == Decimal(expected)


@pytest.mark.django_db
def test_unpriced_model_costs_zero_and_is_counted() -> None:
    before = unpriced_models().get(("openai", "no-such-model"), 0)
    usage = Usage(prompt_tokens=10, completion_tokens=10)
    cost = cost_compute(model="no-such-model", provider="openai", deployment=None, usage=usage)
    assert cost == Decimal(0)
    assert unpriced_models()[("openai", "no-such-model")] == before + 1


@pytest.mark.django_db
def test_deployment_params_override_the_table() -> None:
    deployment = _deployment(params={"input_cost_per_token": 0.000001, "output_cost_per_token": 0})
    usage = Usage(prompt_tokens=1000, completion_tokens=1000, cached_tokens=100)
    cost = cost_compute(model="gpt-4o", provider="openai", deployment=deployment, usage=usage)
    # 900 fresh * 1e-6 + 100 cached at the table's $1.25/M + output free
    assert cost == Decimal("0.000900") + Decimal("0.000125")


@pytest.mark.django_db
def test_model_price_rows_apply_within_their_effective_dates() -> None:
    now = timezone.now()
    ModelPrice.objects.create(
        model="gpt-4o",
        input_cost_per_token=Decimal("0.00000100"),
        output_cost_per_token=Decimal("0.00000200"),
        effective_from=now - timedelta(days=1),
    )
    ModelPrice.objects.create(
        model="gpt-4o",
        input_cost_per_token=Decimal("0.00000300"),
        output_cost_per_token=Decimal("0.00000400"),
        effective_from=now + timedelta(days=1),
    )
    usage = Usage(prompt_tokens=100, completion_tokens=100)
    assert cost_compute(model="gpt-4o", provider="openai", deployment=None, usage=usage) == Decimal(
        "0.0003"
    )
    tomorrow = price_resolve(model="gpt-4o", provider="openai", now=now + timedelta(days=2))
    assert tomorrow is not None and tomorrow.input == Decimal("0.000003")


@pytest.mark.django_db
def test_a_deployment_row_beats_a_model_row() -> None:
    from tests.factories import ModelDeploymentFactory

    row = ModelDeploymentFactory(model_name="gpt", upstream_model="gpt-4o", provider="openai")
    ModelPrice.objects.create(
        model="gpt-4o", input_cost_per_token=Decimal("0.000001"), output_cost_per_token=0
    )
    ModelPrice.objects.create(
        model="anything",
        deployment=row,
        input_cost_per_token=Decimal("0.000005"),
        output_cost_per_token=0,
    )
    usage = Usage(prompt_tokens=1000)
    mine = _deployment(id=f"db:{row.pk}")
    other = _deployment(id="db:999999")
    assert cost_compute(model="gpt-4o", provider="openai", deployment=mine, usage=usage) == Decimal(
        "0.005"
    )
    assert cost_compute(
        model="gpt-4o", provider="openai", deployment=other, usage=usage
    ) == Decimal("0.001")


def test_worst_case_uses_max_tokens_then_the_model_limit() -> None:
    price = price_table().prices[("openai", "gpt-4o")]
    # 1000 in * $2.50/M + 100 out * $10/M
    assert cost_worst_case(price=price, prompt_tokens=1000, max_tokens=100) == Decimal("0.0035")
    # without max_tokens: the model's 16384 output tokens
    assert cost_worst_case(price=price, prompt_tokens=0, max_tokens=None) == Decimal("0.16384")
    assert cost_worst_case(price=None, prompt_tokens=10, max_tokens=10) == Decimal(0)


def test_worst_case_bounds_every_unit_a_request_is_billed_for() -> None:
    prices = price_table().prices
    gpt, claude = prices[("openai", "gpt-4o")], prices[("anthropic", "claude-sonnet-4-5")]
    # n completions of max_tokens each: 50 * 100 out * $10/M.
    assert cost_worst_case(price=gpt, prompt_tokens=0, max_tokens=100, outputs=50) == Decimal(
        "0.05"
    )
    # A max_tokens the upstream ignores (not positive) falls back to the model's limit.
    assert cost_worst_case(price=gpt, prompt_tokens=0, max_tokens=-5) == Decimal("0.16384")
    # A prompt written to the cache costs more than a fresh one ($3.75/M for five minutes, $6/M
    # for an hour, against $3/M): the bound is what a prompt written for an hour costs.
    written = Usage(
        prompt_tokens=1000,
        cache_creation_tokens=1000,
        cache_creation_1h_tokens=1000,
        completion_tokens=100,
    )
    bound = cost_worst_case(price=claude, prompt_tokens=1000, max_tokens=100)
    assert bound == cost_from_price(price=claude, usage=written)
    assert bound == Decimal("0.0075")
    # Images at the dearest size and quality, speech by character, transcription by second.
    dalle = prices[("openai", "dall-e-3")]
    assert cost_worst_case(price=dalle, prompt_tokens=0, max_tokens=1, images=3) == Decimal("0.36")
    tts = prices[("openai", "tts-1")]
    assert cost_worst_case(price=tts, prompt_tokens=0, max_tokens=1, characters=1000) == Decimal(
        "0.015"
    )
    whisper = prices[("openai", "whisper-1")]
    assert cost_worst_case(
        price=whisper, prompt_tokens=0, max_tokens=1, audio_seconds=60
    ) == Decimal("0.006")


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (pub/sub)")
def test_a_price_edit_reaches_every_worker_at_once(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    """Another process's edit arrives only through the broadcast: the row is written with a bare
    create (no flush here), and the "prices" message is published on the channel by hand."""
    import httpx
    import orjson
    import redis
    from django.conf import settings

    from ogem_site.broadcast import PRICES, broadcast_channel

    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {make_key()}"}
    assert httpx.post(f"{live_ogem.url}/v1/chat/completions", json=body, headers=headers).is_success
    broadcast_listening()  # the broadcast listener starts with the first request
    usage = Usage(prompt_tokens=100, completion_tokens=100)

    def cost() -> Decimal:
        return cost_compute(model="gpt-4o", provider="openai", deployment=None, usage=usage)

    before = cost()
    ModelPrice.objects.create(
        model="gpt-4o",
        input_cost_per_token=Decimal("0.00000100"),
        output_cost_per_token=Decimal("0.00000200"),
    )
    assert cost() == before  # the rows are cached for OGEM_PRICE_OVERRIDE_TTL
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.publish(broadcast_channel(), orjson.dumps({"topic": PRICES}))
    finally:
        client.close()
    deadline = time.monotonic() + 1.0
    while cost() != Decimal("0.0003"):
        assert time.monotonic() < deadline, "the price edit did not arrive within 1 s"
        time.sleep(0.02)


@pytest.mark.django_db
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (pub/sub)")
def test_saving_a_price_in_admin_announces_it(
    admin_client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    import orjson
    import redis
    from django.conf import settings

    from ogem_site.broadcast import broadcast_channel

    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(broadcast_channel())
    try:
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(
                "/admin/billing/modelprice/add/",
                {
                    "model": "gpt-4o",
                    "input_cost_per_token": "0.000001",
                    "output_cost_per_token": "0.000002",
                },
            )
        assert response.status_code == 302, response.content[:2000]
        message = pubsub.get_message(timeout=2)
        assert message is not None and orjson.loads(message["data"]) == {"topic": "prices"}
    finally:
        pubsub.close()
        client.close()

"""Audio tokens (the Realtime API) are priced apart from text tokens: fresh, cached and output
audio each at its own price, from the shipped table or LiteLLM's deployment params."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.pricing import Price, cost_from_price, cost_worst_case, shipped_price
from gateway.context import Usage
from providers.base import Deployment

M = Decimal(1_000_000)


def _usage() -> Usage:
    # 100 tokens in (60 audio, of which 20 cached; 10 cached text), 50 out (30 audio).
    return Usage(
        prompt_tokens=100,
        completion_tokens=50,
        cached_tokens=30,
        audio_prompt_tokens=60,
        audio_cached_tokens=20,
        audio_completion_tokens=30,
    )


def test_gpt_realtime_prices_text_audio_and_cached_tokens_apart() -> None:
    price = shipped_price(model="gpt-realtime", provider="openai")
    assert price is not None
    expected = (
        30 * Decimal("4") / M  # fresh text: 100 - 30 cached - 40 fresh audio
        + 40 * Decimal("32") / M  # fresh audio
        + 10 * Decimal("0.4") / M  # cached text
        + 20 * Decimal("0.4") / M  # cached audio
        + 20 * Decimal("16") / M  # text out
        + 30 * Decimal("64") / M  # audio out
    )
    assert cost_from_price(price=price, usage=_usage()) == expected


def test_without_audio_prices_audio_tokens_cost_what_text_tokens_cost() -> None:
    price = Price(input=Decimal("1") / M, output=Decimal("2") / M, cache_read=Decimal("0.5") / M)
    expected = (70 * Decimal("1") + 30 * Decimal("0.5") + 50 * Decimal("2")) / M
    assert cost_from_price(price=price, usage=_usage()) == expected.quantize(Decimal("1e-8"))


@pytest.mark.django_db
def test_litellms_audio_token_params_price_a_deployment() -> None:
    from billing.pricing import deployment_price

    deployment = Deployment(
        id="test:audio",
        model_name="voice",
        provider="openai",
        upstream_model="some-realtime-model",
        params={
            "input_cost_per_token": 0.000001,
            "output_cost_per_token": 0.000002,
            "input_cost_per_audio_token": 0.00001,
            "output_cost_per_audio_token": 0.00002,
            "cache_read_input_audio_token_cost": 0.000005,
        },
    )
    price = deployment_price(deployment=deployment)
    assert price is not None
    assert (price.audio_input, price.audio_output, price.audio_cache_read) == (
        Decimal("0.00001"),
        Decimal("0.00002"),
        Decimal("0.000005"),
    )


@pytest.mark.parametrize("audio", [True, False])
def test_the_worst_case_takes_the_dearer_of_text_and_audio(audio: bool) -> None:
    price = Price(
        input=Decimal("1") / M,
        output=Decimal("2") / M,
        audio_input=Decimal("10") / M if audio else None,
        audio_output=Decimal("20") / M if audio else None,
    )
    bound = cost_worst_case(price=price, prompt_tokens=1000, max_tokens=100)
    expected = (Decimal(10_000 + 2_000) if audio else Decimal(1_000 + 200)) / M
    assert bound == expected


@pytest.mark.django_db
def test_a_model_price_row_prices_audio_tokens() -> None:
    from billing.models import ModelPrice
    from billing.pricing import cost_compute, price_overrides_flush

    ModelPrice.objects.create(
        model="gpt-realtime",
        input_cost_per_token=Decimal("0.000001"),
        output_cost_per_token=Decimal("0.000002"),
        cache_read_input_cost_per_token=Decimal("0.0000005"),
        input_cost_per_audio_token=Decimal("0.00001"),
        output_cost_per_audio_token=Decimal("0.00002"),
        cache_read_input_audio_token_cost=Decimal("0.000005"),
    )
    price_overrides_flush()
    try:
        cost = cost_compute(
            model="gpt-realtime", provider="openai", deployment=None, usage=_usage()
        )
    finally:
        ModelPrice.objects.all().delete()
        price_overrides_flush()
    expected = (
        30 * Decimal("1") + 40 * Decimal("10") + 10 * Decimal("0.5") + 20 * Decimal("5")
        + 20 * Decimal("2") + 30 * Decimal("20")
    ) / M  # fmt: skip
    assert cost == expected

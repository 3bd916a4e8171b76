"""The shipped price table prices prompt caching wherever the provider bills it separately, so
cached tokens are never charged at the full input price (docs/prompt-caching.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.pricing import Price, cost_from_price, price_table, shipped_price
from gateway.context import Usage

# Providers whose every chat model in the table caches prompts, and what they bill for it:
# Anthropic bills cache writes and reads; the others reads only (writes cost nothing extra).
WRITES_AND_READS = ("anthropic",)
READS = ("deepseek",)


def _chat_models(provider: str) -> list[str]:
    return [
        name
        for (owner, name), price in price_table().prices.items()
        if owner == provider and price.output > 0
    ]


@pytest.mark.parametrize("provider", WRITES_AND_READS + READS)
def test_every_chat_model_of_a_caching_provider_has_cache_prices(provider: str) -> None:
    for model in _chat_models(provider):
        price = shipped_price(model=model, provider=provider)
        assert price is not None and price.cache_read is not None, model
        assert price.cache_read < price.input, model
        if provider in WRITES_AND_READS:
            assert price.cache_write is not None and price.cache_write > price.input, model


@pytest.mark.parametrize(
    ("provider", "model", "read", "write"),
    [
        # Claude on Bedrock, as Bedrock bills cachePoint reads and writes
        ("bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0", "0.08", "1.00"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0", "0.30", "3.75"),
        ("bedrock", "amazon.nova-lite-v1:0", "0.015", None),
        # Claude on Vertex AI falls back to Anthropic's prices, Gemini to Gemini's
        ("vertex_ai", "claude-sonnet-4-5@20250929", "0.30", "3.75"),
        ("vertex_ai", "gemini-2.5-flash", "0.03", None),
        ("gemini", "gemini-2.5-pro", "0.125", None),
        ("gemini", "gemini-2.0-flash", "0.025", None),
        ("openai", "gpt-4o-mini", "0.075", None),
        ("openai", "gpt-5", "0.125", None),
        ("azure", "gpt-4.1", "0.50", None),
        ("deepseek", "deepseek-chat", "0.028", None),
    ],
)
def test_cache_prices_of_the_models_the_caching_docs_name(
    provider: str, model: str, read: str, write: str | None
) -> None:
    price = shipped_price(model=model, provider=provider)
    million = Decimal(1_000_000)
    assert price is not None
    assert price.cache_read == Decimal(read) / million
    assert price.cache_write == (None if write is None else Decimal(write) / million)


def test_an_hours_cache_writes_cost_the_one_hour_price_and_fall_back_to_the_write_price() -> None:
    per_token = Decimal("0.000001")
    price = Price(
        input=per_token,
        output=4 * per_token,
        cache_read=per_token / 10,
        cache_write=per_token * Decimal("1.25"),
        cache_write_1h=2 * per_token,
    )
    usage = Usage(
        prompt_tokens=10_000,
        cached_tokens=4_000,
        cache_creation_tokens=3_000,
        cache_creation_1h_tokens=1_000,
        completion_tokens=100,
    )
    # 3,000 fresh + 4,000 read + 2,000 written for 5 minutes + 1,000 for an hour + 100 out
    assert cost_from_price(price=price, usage=usage) == Decimal("0.00830000")
    without = Price(input=per_token, output=4 * per_token, cache_write=per_token * Decimal("1.25"))
    assert cost_from_price(price=without, usage=usage) == Decimal("0.01115000")


def test_anthropic_one_hour_writes_are_twice_the_input_price() -> None:
    for model in _chat_models("anthropic"):
        price = shipped_price(model=model, provider="anthropic")
        assert price is not None and price.cache_write_1h == 2 * price.input, model

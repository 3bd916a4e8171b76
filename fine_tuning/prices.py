"""What the providers charge for fine-tuning: the training per token trained, and the inference
of the fine-tuned model per token, by base model (USD per million tokens).

Source: OpenAI's pricing page, "Fine-tuning" table (https://platform.openai.com/docs/pricing),
as of 2025-10-01; Azure OpenAI bills its own rates per region, which an operator sets by editing
the fine-tuned deployment's price row (admin: Billing > Model prices). Vertex AI: its pricing
page's Gemini tuning prices (https://cloud.google.com/vertex-ai/generative-ai/pricing, as of
2025-10-01), a tuned model's requests at its base model's price (billing/prices/prices.yaml).
A fine-tuned model's price row (`billing.ModelPrice`, `source` naming the table) is written when
its job succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.pricing import shipped_price
from providers.vertex_ai.tuning import tunable_model

SOURCE = "OpenAI fine-tuning prices (platform.openai.com/docs/pricing, 2025-10-01)"
VERTEX_SOURCE = (
    "Vertex AI Gemini tuning prices (cloud.google.com/vertex-ai/generative-ai/pricing, "
    "2025-10-01); requests at the base model's price"
)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class FineTunedPrice:
    training: Decimal
    input: Decimal
    cached_input: Decimal | None
    output: Decimal


def _price(training: str, input: str, cached: str | None, output: str) -> FineTunedPrice:
    return FineTunedPrice(
        training=Decimal(training),
        input=Decimal(input),
        cached_input=Decimal(cached) if cached is not None else None,
        output=Decimal(output),
    )


# The models OpenAI fine-tunes (supervised), by snapshot; the aliases below name the snapshot
# OpenAI fine-tunes when given the bare name.
FINE_TUNED_PRICES: dict[str, FineTunedPrice] = {
    "gpt-4.1-2025-04-14": _price("25.00", "3.00", "0.75", "12.00"),
    "gpt-4.1-mini-2025-04-14": _price("5.00", "0.80", "0.20", "3.20"),
    "gpt-4.1-nano-2025-04-14": _price("1.50", "0.20", "0.05", "0.80"),
    "gpt-4o-2024-08-06": _price("25.00", "3.75", "1.875", "15.00"),
    "gpt-4o-mini-2024-07-18": _price("3.00", "0.30", "0.15", "1.20"),
    "gpt-3.5-turbo-0125": _price("8.00", "3.00", None, "6.00"),
}
ALIASES = {
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}


def fine_tunable_snapshot(model: str) -> str | None:
    """The snapshot a base model name fine-tunes as, or None when it cannot be fine-tuned.
    A fine-tuned model (`ft:<snapshot>:...`) may be fine-tuned further, as OpenAI allows."""
    if model.startswith("ft:"):
        model = model.split(":")[1]
    # Azure names a fine-tuned model `<snapshot>.ft-<id>`.
    model = model.split(".ft-")[0]
    model = ALIASES.get(model, model)
    return model if model in FINE_TUNED_PRICES else None


# Vertex AI's training price by tuned model, per million tokens trained.
VERTEX_TRAINING = {
    "gemini-2.5-pro": Decimal("25.00"),
    "gemini-2.5-flash": Decimal("5.00"),
    "gemini-2.5-flash-lite": Decimal("1.50"),
    "gemini-2.0-flash-001": Decimal("3.00"),
    "gemini-2.0-flash-lite-001": Decimal("1.00"),
}


def fine_tuned_price(model: str, *, provider: str) -> FineTunedPrice | None:
    """The price of fine-tuning `model` (the base model) at `provider`, and of the result."""
    if provider == "vertex_ai":
        return _vertex_price(model)
    snapshot = fine_tunable_snapshot(model)
    return FINE_TUNED_PRICES[snapshot] if snapshot is not None else None


def _vertex_price(model: str) -> FineTunedPrice | None:
    tuned = tunable_model(model)
    base = shipped_price(model=tuned, provider="vertex_ai") if tuned else None
    if tuned is None or base is None:
        return None
    return FineTunedPrice(
        training=VERTEX_TRAINING[tuned],
        input=base.input * MILLION,
        cached_input=base.cache_read * MILLION if base.cache_read is not None else None,
        output=base.output * MILLION,
    )


def price_source(provider: str) -> str:
    return VERTEX_SOURCE if provider == "vertex_ai" else SOURCE

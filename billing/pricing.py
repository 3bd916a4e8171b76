"""Model prices and the cost of one request.

Where a price comes from, most specific first:

1. a deployment's ``params`` (``input_cost_per_token``, ``output_cost_per_token`` and the other
   per-unit names of LiteLLM's config, in ``litellm_params`` or ``model_info``), applied over
   whatever 2-4 resolve;
2. a ``billing.ModelPrice`` row for that deployment, effective now;
3. a ``billing.ModelPrice`` row for the model (any deployment), effective now;
4. the shipped table, ``billing/prices/prices.yaml`` (loaded once per process).

``ModelPrice`` rows are read in one query and kept in process for ``OGEM_PRICE_OVERRIDE_TTL``
seconds, so computing a cost never queries the database on the request path. A model with no price
anywhere costs 0 and is counted in ``unpriced_models()`` so that admin can show it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import yaml
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.utils import timezone

from billing.models import ModelPrice
from ogem_site.broadcast import PRICES, BroadcastTopic, broadcast_topic_register
from ogem_site.caching import LocalCache
from ogem_site.metrics import unpriced_model_record

logger = logging.getLogger(__name__)


class Deployment(Protocol):
    """What pricing reads of a deployment (the gateway's providers.base.Deployment): billing
    sits below the gateway and the providers and imports neither."""

    id: str
    model_name: str
    provider: str
    upstream_model: str
    params: dict[str, Any]


class Usage(Protocol):
    """What pricing reads of a request's usage (the gateway's gateway.context.Usage)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    cache_creation_1h_tokens: int
    reasoning_tokens: int
    audio_prompt_tokens: int
    audio_cached_tokens: int
    audio_completion_tokens: int
    images: int
    audio_seconds: float
    characters: int
    image_size: str
    image_quality: str


def _no_deployment(deployment_id: str) -> Deployment | None:
    return None


# How admin's unpriced warning finds a logged deployment id's deployment: the gateway's registry,
# set by GatewayConfig.ready() (price_deployment_lookup_set).
_deployment_lookup: Callable[[str], Deployment | None] = _no_deployment


def price_deployment_lookup_set(lookup: Callable[[str], Deployment | None]) -> None:
    global _deployment_lookup
    _deployment_lookup = lookup


PRICES_FILE = Path(__file__).resolve().parent / "prices" / "prices.yaml"
PER_MILLION = Decimal(1_000_000)
# Costs are kept to the precision of RequestLog.cost and Budget.spend (8 decimal places).
COST_QUANTUM = Decimal("0.00000001")
ZERO = Decimal(0)

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|@latest|-latest)$")
_BEDROCK_PROFILE = re.compile(r"^(us|eu|apac|us-gov|global)\.")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per unit. Token prices are per token; ``None`` means "not billed separately"."""

    input: Decimal = ZERO
    output: Decimal = ZERO
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    # Anthropic's one-hour cache writes (twice the input price, where five minutes cost 1.25x).
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    # Audio tokens (the Realtime API, audio chat models); None: priced as text tokens.
    audio_input: Decimal | None = None
    audio_output: Decimal | None = None
    audio_cache_read: Decimal | None = None
    image: dict[str, Decimal] = field(default_factory=dict)
    audio_second: Decimal | None = None
    tts_character: Decimal | None = None
    request: Decimal | None = None
    max_output_tokens: int | None = None
    source: str = ""
    as_of: str = ""


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _entry_price(entry: dict[str, Any], *, source: str, as_of: str) -> Price:
    def per_token(name: str) -> Decimal | None:
        return _dec(entry[name]) / PER_MILLION if name in entry else None

    audio: Decimal | None = None
    if "audio_second" in entry:
        audio = _dec(entry["audio_second"])
    elif "audio_minute" in entry:
        audio = _dec(entry["audio_minute"]) / 60
    elif "audio_hour" in entry:
        audio = _dec(entry["audio_hour"]) / 3600
    return Price(
        input=per_token("input") or ZERO,
        output=per_token("output") or ZERO,
        cache_read=per_token("cache_read"),
        cache_write=per_token("cache_write"),
        cache_write_1h=per_token("cache_write_1h"),
        reasoning=per_token("reasoning"),
        audio_input=per_token("audio_input"),
        audio_output=per_token("audio_output"),
        audio_cache_read=per_token("audio_cache_read"),
        image={size: _dec(usd) for size, usd in (entry.get("image") or {}).items()},
        audio_second=audio,
        tts_character=per_token("tts_character"),
        request=_dec(entry["request"]) if "request" in entry else None,
        max_output_tokens=entry.get("max_output_tokens"),
        source=str(entry.get("source", source)),
        as_of=str(entry.get("as_of", as_of)),
    )


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: dict[tuple[str, str], Price]
    by_name: dict[str, Price]  # model name -> price, whatever the provider (first listed wins)
    aliases: dict[str, str]  # provider -> provider whose prices it uses
    fallbacks: dict[str, str]  # provider -> provider to try when its own table has no entry


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    """The shipped table, parsed once per process."""
    raw = yaml.safe_load(PRICES_FILE.read_text())
    prices: dict[tuple[str, str], Price] = {}
    aliases: dict[str, str] = {}
    fallbacks: dict[str, str] = {}
    by_name: dict[str, Price] = {}
    for provider, block in raw["providers"].items():
        if "alias_of" in block:
            aliases[provider] = block["alias_of"]
        if "fallback" in block:
            fallbacks[provider] = block["fallback"]
        source = str(block.get("source", ""))
        as_of = str(block.get("as_of", ""))
        for model, entry in (block.get("models") or {}).items():
            price = _entry_price(entry, source=source, as_of=as_of)
            for name in (model, *entry.get("aliases", ())):
                prices[(provider, name)] = price
                by_name.setdefault(name, price)
    return PriceTable(prices=prices, by_name=by_name, aliases=aliases, fallbacks=fallbacks)


def _candidates(model: str) -> list[str]:
    names = [model]
    base = _BEDROCK_PROFILE.sub("", model)
    if base != model:
        names.append(base)
    for name in list(names):
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped != name:
            names.append(stripped)
        if "@" in name:
            names.append(name.replace("@", "-"))
    return names


def shipped_price(*, model: str, provider: str) -> Price | None:
    table = price_table()
    providers = [provider]
    if provider in table.aliases:
        providers.append(table.aliases[provider])
    if provider in table.fallbacks:
        providers.append(table.fallbacks[provider])
    for name in _candidates(model):
        for candidate in providers:
            price = table.prices.get((candidate, name))
            if price is not None:
                return price
    return None


def shipped_price_by_name(*, model: str) -> Price | None:
    """A price for a bare model name from any provider: admission, before a deployment is chosen."""
    by_name = price_table().by_name
    for name in _candidates(model):
        if name in by_name:
            return by_name[name]
    return None


# ---- ModelPrice overrides, cached in process -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Override:
    model: str
    provider: str
    deployment_pk: int | None
    effective_from: datetime | None
    effective_to: datetime | None
    price: Price


# The ModelPrice rows, one entry: past OGEM_PRICE_OVERRIDE_TTL they serve on while a background
# load refreshes them (in an event loop; elsewhere they are reloaded at once).
_ROWS = "rows"
_NO_ROWS: list[_Override] = []
_overrides: LocalCache[str, list[_Override]] = LocalCache(maxsize=1, ttl=0)
_overrides_refreshing: list[asyncio.Task[None]] = []


def _override_rows_load() -> list[_Override]:
    rows = []
    for row in ModelPrice.objects.all():
        wrong = model_price_problems({field: getattr(row, field) for field in MODEL_PRICE_FIELDS})
        if wrong:  # written around admin's validation: never applied
            logger.error("billing.ModelPrice #%s skipped: %s", row.pk, "; ".join(wrong))
            continue

        def opt(value: Decimal | None) -> Decimal | None:
            return None if value is None else Decimal(value)

        rows.append(
            _Override(
                model=row.model,
                provider=row.provider,
                deployment_pk=row.deployment_id,
                effective_from=row.effective_from,
                effective_to=row.effective_to,
                price=Price(
                    input=Decimal(row.input_cost_per_token),
                    output=Decimal(row.output_cost_per_token),
                    cache_read=opt(row.cache_read_input_cost_per_token),
                    cache_write=opt(row.cache_creation_input_cost_per_token),
                    reasoning=opt(row.reasoning_cost_per_token),
                    image={k: _dec(v) for k, v in (row.cost_per_image or {}).items()},
                    audio_second=opt(row.input_cost_per_audio_second),
                    audio_input=opt(row.input_cost_per_audio_token),
                    audio_output=opt(row.output_cost_per_audio_token),
                    audio_cache_read=opt(row.cache_read_input_audio_token_cost),
                    tts_character=opt(row.output_cost_per_character),
                    request=opt(row.cost_per_request),
                    source=row.source or "billing.ModelPrice",
                ),
            )
        )
    return rows


MODEL_PRICE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_cost_per_token",
    "cache_creation_input_cost_per_token",
    "reasoning_cost_per_token",
    "cost_per_image",
    "input_cost_per_audio_second",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "cache_read_input_audio_token_cost",
    "output_cost_per_character",
    "cost_per_request",
)


def model_price_problems(values: dict[str, Any]) -> list[str]:
    """The prices of a ``billing.ModelPrice`` (field -> value) that are not numbers >= 0."""
    problems = (price_value_problem(name, values.get(name)) for name in MODEL_PRICE_FIELDS)
    return [problem for problem in problems if problem]


def price_overrides_load() -> None:
    """Read every ModelPrice row now (sync; Celery, admin, tests and the async refresher)."""
    generation = _overrides.generation
    rows = _override_rows_load()
    # Not over a flush made meanwhile: those rows may predate the edit it announced.
    _overrides.set(_ROWS, rows, ttl=settings.OGEM_PRICE_OVERRIDE_TTL, generation=generation)


def _price_overrides_load_in_thread() -> None:
    try:
        price_overrides_load()
    finally:
        # A worker thread of its own: hand its connection back rather than hold it.
        connections.close_all()


def price_overrides_flush() -> None:
    """Forget the cached overrides; the next use reloads them (call after editing ModelPrice)."""
    _overrides.clear()


# A price edited anywhere (admin, in any process) reaches every worker at once.
broadcast_topic_register(BroadcastTopic(name=PRICES, receive=lambda message: _overrides.clear()))


async def price_overrides_ensure() -> None:
    """Keep the override cache fresh without making a request wait on the database.

    The first load is awaited (there is nothing to serve from yet); later refreshes run in the
    background while requests keep using the previous rows.
    """
    hit = _overrides.peek(_ROWS)
    if hit is not None and hit[1]:
        return
    if hit is None:
        await sync_to_async(_price_overrides_load_in_thread, thread_sensitive=False)()
        return
    if not _overrides_refreshing or _overrides_refreshing[0].done():
        _overrides_refreshing[:] = [
            asyncio.get_running_loop().create_task(
                sync_to_async(_price_overrides_load_in_thread, thread_sensitive=False)()
            )
        ]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _override_rows() -> list[_Override]:
    hit = _overrides.peek(_ROWS)
    if (hit is None or not hit[1]) and not _in_event_loop():
        price_overrides_load()
        hit = _overrides.peek(_ROWS)
    return _NO_ROWS if hit is None else hit[0]


def deployment_pk_from_id(deployment_id: str) -> int | None:
    """The ModelDeployment row behind a registry id ("db:12"); None for other deployments."""
    prefix, _, tail = deployment_id.partition(":")
    return int(tail) if prefix == "db" and tail.isdigit() else None


def _deployment_pk(deployment: Deployment | None) -> int | None:
    return None if deployment is None else deployment_pk_from_id(deployment.id)


def _override_price(
    *, model: str, provider: str, deployment: Deployment | None, now: datetime
) -> Price | None:
    rows = _override_rows()
    if not rows:
        return None
    names = {model}
    if deployment is not None:
        names.update({deployment.model_name, deployment.upstream_model})
    pk = _deployment_pk(deployment)
    best: tuple[int, datetime, Price] | None = None
    for row in rows:
        if row.effective_from is not None and row.effective_from > now:
            continue
        if row.effective_to is not None and row.effective_to <= now:
            continue
        if row.deployment_pk is not None:
            if row.deployment_pk != pk:
                continue
            rank = 2
        else:
            if row.model not in names or row.provider not in ("", provider):
                continue
            rank = 1
        started = row.effective_from or datetime.min.replace(tzinfo=now.tzinfo)
        if best is None or (rank, started) > (best[0], best[1]):
            best = (rank, started, row.price)
    return best[2] if best else None


_PARAM_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "cache_creation_input_token_cost": "cache_write",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "output_cost_per_reasoning_token": "reasoning",
    "input_cost_per_audio_token": "audio_input",
    "output_cost_per_audio_token": "audio_output",
    "cache_read_input_audio_token_cost": "audio_cache_read",
    "input_cost_per_second": "audio_second",
    "output_cost_per_character": "tts_character",
    "input_cost_per_request": "request",
}


# A parameter that is a price by its name (LiteLLM's `input_cost_per_token`,
# `cache_read_input_token_cost`, `output_cost_per_image`, ...): a number, never below 0.
_PRICE_NAME = re.compile(r"(^|_)cost(_|$)")


def price_is_named(name: str) -> bool:
    return bool(_PRICE_NAME.search(name))


def price_value_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the price ``name`` (USD, a finite number >= 0), or None.
    A negative price would credit budgets instead of charging them."""
    if value is None:
        return None
    if isinstance(value, dict):  # per size or quality: {"1024x1024": 0.04}
        for key, item in value.items():
            problem = price_value_problem(f"{name}.{key}", item)
            if problem:
                return problem
        return None
    shown = repr(value) if isinstance(value, str) else str(value)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = _dec(value)
    except (ArithmeticError, ValueError):
        return f"{name} must be a number, got {shown}"
    if not number.is_finite() or number < 0:
        return f"{name} must be a price of 0 or more, got {shown}"
    return None


def price_params_problems(params: dict[str, Any]) -> list[str]:
    """Every price among a deployment's ``params`` (and LiteLLM's ``params.model_info``) that
    is not a number >= 0."""
    problems = []
    for where, values in (("", params), ("model_info.", params.get("model_info"))):
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            if isinstance(name, str) and price_is_named(name):
                problem = price_value_problem(f"{where}{name}", value)
                if problem:
                    problems.append(problem)
    return problems


def _base_model_price(params: dict[str, Any]) -> Price | None:
    """The table's price for LiteLLM's `model_info.base_model` (`azure/gpt-4o`, `gpt-4o`): the
    model a deployment's own name hides (an Azure deployment's name), which LiteLLM prices."""
    info = params.get("model_info")
    base_model = info.get("base_model") if isinstance(info, dict) else None
    if not isinstance(base_model, str) or not base_model:
        return None
    provider, _, model = base_model.partition("/")
    price = shipped_price(model=model, provider=provider) if model else None
    return price if price is not None else shipped_price_by_name(model=base_model)


def _params_price(base: Price | None, params: dict[str, Any]) -> Price | None:
    # LiteLLM's custom pricing sits in `model_info` or in `litellm_params` (the params); the
    # params win when both name a price. A price that is not a number >= 0 is never applied
    # (loaders refuse such deployments).
    info = params.get("model_info")
    named = {**(info if isinstance(info, dict) else {}), **params}
    updates = {
        ours: _dec(named[theirs])
        for theirs, ours in _PARAM_FIELDS.items()
        if theirs in named and price_value_problem(theirs, named[theirs]) is None
    }
    # The output limit a worst-case reservation assumes when a request sets no max_tokens:
    # LiteLLM's `max_output_tokens` (either place), or `model_info.max_tokens` (its older name;
    # a `litellm_params.max_tokens` is a request default sent upstream, not a limit).
    limit = named.get("max_output_tokens")
    if limit is None and isinstance(info, dict):
        limit = info.get("max_tokens")
    valid = isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
    if valid and (base is not None or updates):  # a limit alone does not price a model
        updates["max_output_tokens"] = limit
    if not updates:
        return base
    return replace(base or Price(), source="deployment params", **updates)


# ---- the public API ---------------------------------------------------------------------------

_unpriced: Counter[tuple[str, str]] = Counter()
_unpriced_lock = threading.Lock()


def unpriced_models() -> dict[tuple[str, str], int]:
    """(provider, model) -> how many requests were recorded at zero cost for want of a price."""
    with _unpriced_lock:
        return dict(_unpriced)


def unpriced_record(*, provider: str, model: str) -> None:
    with _unpriced_lock:
        _unpriced[(provider, model)] += 1
    unpriced_model_record(model=f"{provider}/{model}" if provider else model)


# price_resolve's answers for "now", kept a second: a /v1 request asks 3-4 times (admission's
# worst case over the candidates, then settle) and each walk costs tens of µs. An entry holds the
# deployment and override rows it was computed from, so a reloaded configuration or a flushed
# or refreshed override list is never served from it; an effective date applies within a second.
_resolved: LocalCache[tuple[str, str, int], tuple[Deployment | None, object, Price | None]] = (
    LocalCache(maxsize=10_000, ttl=1.0)
)


def price_resolve(
    *, model: str, provider: str, deployment: Deployment | None = None, now: datetime | None = None
) -> Price | None:
    """The price that applies to ``model`` on ``provider`` (through ``deployment``), or None."""
    if now is not None:
        return _price_resolve(model=model, provider=provider, deployment=deployment, now=now)
    rows = _override_rows()
    key = (model, provider, id(deployment))
    hit = _resolved.get(key)
    if hit is not None and hit[0] is deployment and hit[1] is rows:
        return hit[2]
    price = _price_resolve(model=model, provider=provider, deployment=deployment, now=None)
    _resolved.set(key, (deployment, rows, price))
    return price


def _price_resolve(
    *, model: str, provider: str, deployment: Deployment | None, now: datetime | None
) -> Price | None:
    now = now or timezone.now()
    base = _override_price(model=model, provider=provider, deployment=deployment, now=now)
    if base is None and deployment is not None and deployment.params:
        base = _base_model_price(deployment.params)
    if base is None:
        base = shipped_price(model=model, provider=provider)
    if deployment is not None and deployment.params:
        base = _params_price(base, deployment.params)
    return base


def deployment_price(*, deployment: Deployment) -> Price | None:
    """What a request served by ``deployment`` costs: its own price (override, table, params),
    else its public model name's in the table."""
    price = price_resolve(
        model=deployment.upstream_model, provider=deployment.provider, deployment=deployment
    )
    return price if price is not None else shipped_price_by_name(model=deployment.model_name)


def params_price(*, model: str, provider: str, params: dict[str, Any]) -> Price | None:
    """The price of a deployment described by its names and params (a listed row, with no
    Deployment at hand): the table's or an override's, then its own LiteLLM prices."""
    base = _override_price(model=model, provider=provider, deployment=None, now=timezone.now())
    if base is None:
        base = _base_model_price(params)
    if base is None:
        base = shipped_price(model=model, provider=provider)
    return _params_price(base, params)


def price_known(*, provider: str, model: str, deployment_id: str = "") -> bool:
    """Whether a request logged with these names would find a price now, resolved as the gateway
    does (`deployment_price`, else the model's); admin's unpriced warning asks this."""
    deployment = _deployment_lookup(deployment_id) if deployment_id else None
    if deployment is not None:
        return deployment_price(deployment=deployment) is not None
    price = price_resolve(model=model, provider=provider)
    return price is not None or shipped_price_by_name(model=model) is not None


def _image_price(price: Price, *, size: str, quality: str) -> Decimal:
    for key in (f"{size}/{quality}", size, "default"):
        if key and key in price.image:
            return price.image[key]
    return ZERO


def cost_from_price(*, price: Price, usage: Usage) -> Decimal:
    """The exact cost of ``usage`` at ``price``, rounded half-even to 8 decimal places.

    Token counts follow OpenAI's usage shape: ``prompt_tokens`` includes cached reads
    (``cached_tokens``) and cache writes (``cache_creation_tokens``, of which
    ``cache_creation_1h_tokens`` for an hour); ``completion_tokens`` includes
    ``reasoning_tokens``.
    """
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_creation_tokens, usage.prompt_tokens - cached)
    fresh = usage.prompt_tokens - cached - written
    # Audio tokens are part of those counts (OpenAI's *_token_details), at their own prices.
    audio_cached = min(usage.audio_cached_tokens, cached)
    audio_fresh = min(max(usage.audio_prompt_tokens - audio_cached, 0), fresh)
    cost = (fresh - audio_fresh) * price.input
    # Decimal arithmetic is slow next to the rest of a request: skip the terms that are zero.
    if audio_fresh:
        cost += audio_fresh * (price.audio_input if price.audio_input is not None else price.input)
    read = price.cache_read if price.cache_read is not None else price.input
    if cached:
        cost += (cached - audio_cached) * read
    if audio_cached:
        cost += audio_cached * (
            price.audio_cache_read if price.audio_cache_read is not None else read
        )
    if written:
        write = price.cache_write if price.cache_write is not None else price.input
        hour = min(usage.cache_creation_1h_tokens, written)
        cost += (written - hour) * write
        if hour:
            cost += hour * (price.cache_write_1h if price.cache_write_1h is not None else write)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    audio_out = min(usage.audio_completion_tokens, usage.completion_tokens - reasoning)
    cost += (usage.completion_tokens - reasoning - audio_out) * price.output
    if audio_out:
        cost += audio_out * (price.audio_output if price.audio_output is not None else price.output)
    if reasoning:
        cost += reasoning * (price.reasoning if price.reasoning is not None else price.output)
    if usage.images:
        image = _image_price(price, size=usage.image_size, quality=usage.image_quality)
        cost += usage.images * image
    if usage.audio_seconds and price.audio_second is not None:
        cost += _dec(usage.audio_seconds) * price.audio_second
    if usage.characters and price.tts_character is not None:
        cost += usage.characters * price.tts_character
    if price.request is not None:
        cost += price.request
    return cost.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


def cost_compute(
    *, model: str, provider: str, deployment: Deployment | None, usage: Usage
) -> Decimal:
    """What one request cost in USD. An unpriced model costs 0 and is counted."""
    price = price_resolve(model=model, provider=provider, deployment=deployment)
    if price is None:
        unpriced_record(provider=provider, model=model)
        return ZERO
    return cost_from_price(price=price, usage=usage)


def cost_worst_case(
    *,
    price: Price | None,
    prompt_tokens: int,
    max_tokens: int | None,
    outputs: int = 1,
    images: int = 0,
    characters: int = 0,
    audio_seconds: int = 0,
) -> Decimal:
    """The most a request can cost: every prompt token at the dearest input rate (fresh, cache
    write or cache read), ``outputs`` completions of ``max_tokens`` each at the dearest output
    rate, its images at the dearest image price, its speech characters and audio seconds.

    ``max_tokens`` is what the client asked for; without it (or when it is not positive, which
    upstreams ignore), the model's own limit from the price table, else
    ``OGEM_BUDGET_DEFAULT_MAX_OUTPUT``. Rounded up, so a reservation never undershoots.
    """
    if price is None:
        return ZERO
    if max_tokens is None or max_tokens < 1:
        max_tokens = price.max_output_tokens or settings.OGEM_BUDGET_DEFAULT_MAX_OUTPUT
    input_price = max(
        price.input,
        price.cache_write or ZERO,
        price.cache_write_1h or ZERO,
        price.cache_read or ZERO,
        price.audio_input or ZERO,
    )
    output_price = max(price.output, price.reasoning or ZERO, price.audio_output or ZERO)
    cost = prompt_tokens * input_price + outputs * max_tokens * output_price
    # Decimal arithmetic is slow next to the rest of a request: skip the terms that are zero.
    if images and price.image:
        cost += images * max(price.image.values())
    if characters and price.tts_character is not None:
        cost += characters * price.tts_character
    if audio_seconds and price.audio_second is not None:
        cost += audio_seconds * price.audio_second
    if price.request is not None:
        cost += price.request
    return cost.quantize(COST_QUANTUM, rounding=ROUND_CEILING)

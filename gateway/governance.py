"""The governance hooks of the /v1 pipeline: limits and budgets before the call, accounting after.

The data plane calls `governance_admit` before the upstream call and `governance_settle` exactly
once when the request has finished (successfully, failed, or cancelled by the client).

Admission checks, in one atomic step (gateway/limits.py): requests and tokens per minute and
requests in flight of the key, its user, team and organization, the end customer, the key's
per-model limits (``model_rpm_limit``/``model_tpm_limit`` in key metadata, as LiteLLM has them),
the key's per-endpoint limits (``endpoint_limits``, keys/limits.py) and
the deployment when already chosen; and it reserves the worst-case cost of the request on every
budget that applies (organization, team, user, key, end customer); a free response cache hit
known before admission reserves none of that (`Admission.rest`). Settling applies the real token
count and cost, releases the parallel slots and emits the usage event in the same step.

Budgets and entity limits come from a per-process snapshot of the Budget rows, trusted for
``OGEM_GOVERNANCE_SNAPSHOT_TTL`` seconds (then refreshed in the background) and dropped by
`governance_snapshot_flush`. In steady state a request makes no database query and at most one
Redis round trip in each hook; most free response cache hits of a busy key make none, admitted on
a lease of request allowance its worker took from Redis (`_HitLease`).

While Redis is away (`ogem_site.redis.redis_outage`, docs/redis.md), ``OGEM_REDIS_FAILURE_POLICY``
decides: ``open`` admits against this process's own counts (`gateway.limits.outage_limiter`, its
budgets starting from the snapshot's spend), ``closed`` refuses with a 503; either way a settle
that cannot reach Redis goes to the usage spool (gateway/spool.py), replayed when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings

from billing.counters import budget_counter_key, units_to_usd, usd_to_units
from billing.pricing import (
    Price,
    cost_from_price,
    cost_worst_case,
    deployment_price,
    price_overrides_ensure,
    price_resolve,
    shipped_price_by_name,
    unpriced_record,
)
from billing.usage import UsageEvent, usage_event_encode
from gateway.accounting import usage_event_build, usage_event_renew
from gateway.cache import cache_hit_shown
from gateway.capacity import capacity_settle
from gateway.config import config_current
from gateway.errors import BudgetExceededError, GatewayError, RateLimitError
from gateway.limits import (
    SETTLE_WRITE_FAILED,
    UNLIMITED,
    AdmitPacking,
    Decision,
    PendingDecision,
    Rule,
    RuleState,
    Settlement,
    limiter,
    local_limiter,
    outage_limiter,
    rule_key,
    settle_marked,
    settle_script,
    settle_unwrite,
    settle_write,
)
from gateway.limits import now_ms as clock_ms
from gateway.responses import PlainHeaders
from gateway.spool import usage_event_later, usage_spool_append
from ogem_site.broadcast import GOVERNANCE, BroadcastTopic, broadcast_topic_register
from ogem_site.caching import LocalCache
from ogem_site.hot_settings import hot_settings
from ogem_site.metrics import cache_redis_error_record, refusal_record
from ogem_site.redis import redis_failed, redis_outage, redis_outage_watch, redis_unreachable
from providers.base import Endpoint

if TYPE_CHECKING:
    from billing.selectors import BudgetSnapshot, SnapshotKey
    from gateway.body import Inbound
    from gateway.context import Caller, RequestContext

logger = logging.getLogger(__name__)

_OUTPUT_ENDPOINTS = frozenset(
    {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.REALTIME, Endpoint.RESPONSES}
)
# billing.models.BudgetScope / BudgetMode values (kept as strings: no model import on this path).
_ORGANIZATION, _TEAM, _USER, _KEY, _END_CUSTOMER = (
    "organization",
    "team",
    "user",
    "key",
    "end_customer",
)
_AUDIT = "audit"
_ZERO = Decimal(0)
# The parallel rules of Realtime sessions (gateway/realtime/): one slot per open session.
SESSIONS_METRIC = "realtime_sessions"


@dataclass(slots=True)
class Admission:
    # OpenAI's x-ratelimit-* headers to add to the response (empty when no limit applies).
    headers: dict[str, str] = field(default_factory=dict)
    # Opaque state governance needs to settle or release what it reserved.
    reservation: object | None = None
    # The decision still on its way from Redis: `admission_confirm` awaits it.
    pending: _Pending | None = None
    refused: bool = False
    # A free response cache hit known before admission (its L1 entry) is admitted by its request
    # rate and parallel rules alone (its token windows at zero, for their headers): the rest of
    # its plan, its budgets' worst case and its token estimate, is admitted by `admission_complete`
    # only if the entry does not answer after all and the request goes upstream.
    rest: _RulePlan | None = None


@dataclass(slots=True)
class _Pending:
    decision: PendingDecision
    rules: list[Rule]
    price: Price | None
    # The admission script records the request's usage event once it admits (a free response
    # cache hit whose answer is built: `_hit_event`): admitted, it is settled.
    settles: bool = False
    # The lease of request allowance this admission asked for (`_HitLease`), and its time.
    lease: _HitLease | None = None
    now: int = 0


@dataclass(slots=True)
class Reservation:
    rules: list[Rule]
    bucket: int
    price: Price | None
    settled: bool = False
    local: bool = False  # admitted by outage_limiter, Redis being away


# ---- the budget/limit snapshot cache ------------------------------------------------------------


# Entity -> its budget snapshot (None: no budget). Past its TTL a snapshot is still served while
# one background query refreshes it.
_snapshots: LocalCache[SnapshotKey, BudgetSnapshot | None] = LocalCache(maxsize=100_000, ttl=0)
_refreshing: set[asyncio.Task[None]] = set()


def governance_snapshot_flush() -> None:
    """Forget every cached budget/limit snapshot of this process."""
    _snapshots.clear()


# Billing publishes on this topic when budgets or limits change: this process and, through Redis,
# every worker forget their snapshots now rather than after OGEM_GOVERNANCE_SNAPSHOT_TTL.
broadcast_topic_register(
    BroadcastTopic(name=GOVERNANCE, receive=lambda message: governance_snapshot_flush())
)


def _snapshots_load(
    keys: list[SnapshotKey], generation: int
) -> dict[SnapshotKey, BudgetSnapshot | None]:
    from django.db import connections

    from billing.selectors import budget_snapshots_load

    try:
        loaded = budget_snapshots_load(keys=keys)
    finally:
        # Runs in a worker thread of its own: hand its connection back rather than hold it.
        connections.close_all()
    ttl = settings.OGEM_GOVERNANCE_SNAPSHOT_TTL
    for key, value in loaded.items():  # unless flushed meanwhile: then it may be out of date
        _snapshots.set(key, value, ttl=ttl, generation=generation)
    return loaded


async def _snapshots_get(keys: list[SnapshotKey]) -> dict[SnapshotKey, BudgetSnapshot | None]:
    generation = _snapshots.generation
    found: dict[SnapshotKey, BudgetSnapshot | None] = {}
    missing: list[SnapshotKey] = []
    stale: list[SnapshotKey] = []
    for key in keys:
        hit = _snapshots.peek(key)
        if hit is None:
            missing.append(key)
            continue
        found[key] = hit[0]
        if not hit[1]:
            stale.append(key)
    if missing:
        load = sync_to_async(_snapshots_load, thread_sensitive=False)
        found.update(await load(missing + stale, generation))
    elif stale and not _refreshing:
        # Serve the previous snapshot while one background query refreshes it.
        load = sync_to_async(_snapshots_load, thread_sensitive=False)
        task = asyncio.get_running_loop().create_task(load(stale, generation))  # type: ignore[arg-type]
        _refreshing.add(task)
        task.add_done_callback(_refreshing.discard)
    return found


def _entity_keys(ctx: RequestContext) -> list[SnapshotKey]:
    caller = ctx.caller
    keys: list[SnapshotKey] = []
    if caller.organization_id is not None:
        keys.append((_ORGANIZATION, caller.organization_id))
        if ctx.end_customer:
            keys.append((_END_CUSTOMER, caller.organization_id, ctx.end_customer))
    if caller.team_id is not None:
        keys.append((_TEAM, caller.team_id))
    if caller.user_id is not None:
        keys.append((_USER, caller.user_id))
    if caller.key_id is not None:
        keys.append((_KEY, caller.key_id))
    return keys


# ---- building the rules of one request -----------------------------------------------------------


def _price_for(ctx: RequestContext) -> tuple[str, str, Price | None]:
    """(provider, model, price) of the request: its deployment's, else its public model name's."""
    deployment = ctx.deployment
    if deployment is not None:
        price = deployment_price(deployment=deployment)
        return deployment.provider, deployment.upstream_model, price
    if ctx.cache_status in ("hit", "semantic-hit") and ctx.candidates:
        # A charged cache hit costs what the model group's first deployment would have.
        return "", ctx.model, deployment_price(deployment=ctx.candidates[0])
    return "", ctx.model, shipped_price_by_name(model=ctx.model)


# The prompt's bound without tokenizing it (a tokenizer pass costs milliseconds on a large prompt,
# and tiktoken cannot fetch its encodings offline): byte-level BPE tokenizers (OpenAI's, Llama 3's,
# Claude's) and SentencePiece with byte fallback (Gemini's, Mistral's) never make more tokens than
# the text has UTF-8 bytes, and a JSON body spends more bytes on each message's framing than a chat
# template adds tokens. What a provider adds for tools comes on top (Anthropic: up to 346 tokens).
_TOOLS_PROMPT_TOKENS = 512
# Audio uploads are billed by the second: 500 bytes a second (4 kbit/s) is below every codec's
# usable speech bitrate, so an upload's size bounds its length.
_AUDIO_BYTES_PER_SECOND = 500
# Redis's Lua numbers are doubles, exact below 2^53: one reservation takes at most $1,000,000 (a
# worst case past it, an absurd n times max_tokens, is refused by every smaller budget anyway).
_RESERVATION_MAX_UNITS = 10**14
_IMAGE_ENDPOINTS = frozenset(
    {Endpoint.IMAGES_GENERATIONS, Endpoint.IMAGES_EDITS, Endpoint.IMAGES_VARIATIONS}
)
_AUDIO_INPUT_ENDPOINTS = frozenset({Endpoint.AUDIO_TRANSCRIPTIONS, Endpoint.AUDIO_TRANSLATIONS})


def request_bounds_fill(ctx: RequestContext, *, inbound: Inbound) -> None:
    """Bound what the request can be billed, for its budget reservation: O(1) in the prompt."""
    body = inbound.body
    prompt = inbound.size
    if inbound.files:  # multipart: the size counts the files; a prompt field comes on top
        prompt += sum(len(str(value).encode()) for value in body.values())
    if "tools" in body or "functions" in body:
        prompt += _TOOLS_PROMPT_TOKENS
    ctx.prompt_tokens_bound = prompt
    endpoint = ctx.endpoint
    if endpoint == Endpoint.CHAT:
        ctx.outputs_bound = _count_param(body.get("n"))
    elif endpoint == Endpoint.COMPLETIONS:
        # max(n, best_of) completions are generated (and billed) for each prompt of a batch (a
        # list of strings or of token lists; a list of ints is one prompt).
        prompts = body.get("prompt")
        batch = 1
        if isinstance(prompts, list) and prompts and not isinstance(prompts[0], int):
            batch = len(prompts)
        choices = max(_count_param(body.get("n")), _count_param(body.get("best_of")))
        ctx.outputs_bound = choices * batch
    elif endpoint in _IMAGE_ENDPOINTS:
        ctx.images_bound = _count_param(body.get("n"))
    elif endpoint == Endpoint.AUDIO_SPEECH:
        ctx.characters_bound = speech_characters(body)
    elif endpoint in _AUDIO_INPUT_ENDPOINTS:
        ctx.audio_seconds_bound = -(-inbound.size // _AUDIO_BYTES_PER_SECOND)


def speech_characters(body: dict[str, Any]) -> int:
    """The characters a speech request is billed for."""
    return len(str(body.get("input") or ""))


def _count_param(value: Any) -> int:
    """A count such as `n` as an upstream may read it, never below 1: a bad value must not lower
    the reservation (validating it is the body check's job)."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return max(value, 1)
    if isinstance(value, float) and math.isfinite(value):
        return max(math.ceil(value), 1)
    if isinstance(value, str):
        try:
            return max(math.ceil(float(value)), 1)
        except (ValueError, OverflowError):
            return 1
    return 1


def _worst_case(ctx: RequestContext, price: Price | None) -> Decimal:
    """The most the request can cost on whichever deployment the router (or a fallback) picks."""
    prices = {id(price): price}
    for deployment in ctx.candidates:
        candidate = price_resolve(
            model=deployment.upstream_model, provider=deployment.provider, deployment=deployment
        )
        prices[id(candidate)] = candidate  # deployments of one model usually share a price
    return max(
        cost_worst_case(
            price=candidate,
            prompt_tokens=ctx.prompt_tokens_bound,
            max_tokens=ctx.max_tokens,
            outputs=ctx.outputs_bound,
            images=ctx.images_bound,
            characters=ctx.characters_bound,
            audio_seconds=ctx.audio_seconds_bound,
        )
        for candidate in prices.values()
    )


def _token_estimate(ctx: RequestContext) -> int:
    tokens = ctx.estimated_prompt_tokens
    if ctx.endpoint in _OUTPUT_ENDPOINTS:
        tokens += ctx.max_tokens or hot_settings().OGEM_TPM_OUTPUT_RESERVE
    return max(tokens, 1)


# One rule of a caller's plan (`_rule_plan`): kind, key, limit, name, budget audit mode, budget
# seed, then `when` (a budget's reset time in ms since the epoch, 0 for none; a parallel slot's
# lifetime) and whether the request's token estimate is its amount (a tpm window). A budget's
# amount is the request's worst case, any other rule's 1.
_Part = tuple[str, str, int, str, bool, int, int, bool]


@dataclass(slots=True)
class _RulePlan:
    """The rules of one caller, model and endpoint under one set of budget snapshots, less what
    each request brings (its token estimate, its worst case, the time left to a budget's reset):
    built on the first request and kept while the Caller (the key resolver's object) and the
    settings stay the same objects and the snapshots the same or equal ones, so that a request
    does not name its limits' Redis keys again."""

    caller: Caller
    snapshots: tuple[BudgetSnapshot | None, ...]
    settings: Any
    parts: list[_Part]
    budgets: bool  # a budget rule is among them: the worst case is its amount
    # The admission command's fixed part for these rules (gateway/limits.py), on first use.
    packing: AdmitPacking | None = None
    # The same for a free cache hit's rules (`_hit_rules`).
    hit_packing: AdmitPacking | None = None
    # A free cache hit's rules, the same for every hit (nothing changes a Rule once built).
    hit_rules: tuple[Rule, ...] | None = None
    # The last free cache hit's usage event, with what it was built from besides the plan's
    # caller, model and endpoint (`_hit_event`).
    hit_event: tuple[tuple[Any, ...], UsageEvent] | None = None
    # The most a lease of its free hits' request allowance may hold (`_HitLease`), on first use
    # (0: none, its hits are admitted by Redis one by one), and this second's lease.
    hit_lease_max: int | None = None
    hit_lease: _HitLease | None = None


# A lease holds at most this many requests, and at most a 64th of the smallest limit it counts
# against: a limit below 64 a minute is checked request by request.
_HIT_LEASE_MAX = 16
_HIT_LEASE_SHARE = 64


@dataclass(slots=True)
class _HitLease:
    """Request allowance a worker took from Redis for the free cache hits of one rule plan, to
    admit them without a round trip each (`_hit_leased`). The admission script counts the units
    in the current second's bucket of each of the plan's request windows as it admits a hit
    (gateway/limits.py), so a unit spent in that same second is counted where a request of its
    own would have been, and the 60 s windows hold exactly; the lease is void once the second
    has passed (what it had left stays counted: the slack, docs/caching.md). A lease asks for no
    more than the hits of the plan this second so far, or those of the second before still to
    come: a worker that sees one hit a second leases nothing."""

    second: int  # the unix second whose buckets hold the units
    before: int = 0  # free hits of the plan in the second before
    served: int = 0  # free hits of the plan this second (leased or not)
    left: int = 0  # units not yet spent
    asking: bool = False  # an admission asking for units is on its way
    # The last admission's view of the rules, its time, and the units spent since (negative: what
    # an earlier lease of the second still had, counted in that view already).
    states: list[RuleState] = field(default_factory=list)
    at: int = 0
    spent: int = 0


_rule_plans: dict[tuple[int, str, Endpoint], _RulePlan] = {}
_RULE_PLANS_MAX = 4096


def _window_parts(
    *,
    tenant: str,
    entity: str,
    label: str,
    rpm: int | None,
    tpm: int | None,
    parallel: int | None,
) -> list[_Part]:
    parts: list[_Part] = []
    if rpm is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="rpm")
        parts.append(("w", key, rpm, f"{label}:rpm", False, 0, 0, False))
    if tpm is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="tpm")
        parts.append(("w", key, tpm, f"{label}:tpm", False, 0, 0, True))
    if parallel is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="parallel")
        ttl = hot_settings().OGEM_PARALLEL_SLOT_TTL * 1000
        parts.append(("p", key, parallel, f"{label}:parallel", False, 0, ttl, False))
    return parts


def _rules(
    ctx: RequestContext,
    snapshots: dict[SnapshotKey, BudgetSnapshot | None],
    *,
    worst_case: Decimal,
    now: int,
) -> list[Rule]:
    return _plan_rules(ctx, _rule_plan(ctx, snapshots), worst_case=worst_case, now=now)


def _plan_rules(
    ctx: RequestContext, plan: _RulePlan, *, worst_case: Decimal, now: int
) -> list[Rule]:
    """A plan's rules with this request's amounts."""
    tokens = _token_estimate(ctx)
    amount = 0
    if plan.budgets:
        amount = min(usd_to_units(worst_case, round_up=True), _RESERVATION_MAX_UNITS)
    rules = []
    for kind, key, limit, name, audit, seed, when, per_token in plan.parts:
        # Positional: a dataclass called with keywords builds a dict of them first.
        if kind == "b":
            reset_in = max(when - now, 1) if when else 0
            rules.append(Rule(kind, key, limit, amount, name, audit, seed, reset_in))
        else:
            rules.append(Rule(kind, key, limit, tokens if per_token else 1, name, False, 0, when))
    return rules


def _hit_rules(plan: _RulePlan) -> list[Rule]:
    """A free cache hit's rules (`Admission.rest`): no budget, a token window's amount 0. Built
    once per plan; a new list each time (an admission may add the proxy's rules to it)."""
    rules = plan.hit_rules
    if rules is None:
        rules = plan.hit_rules = tuple(
            Rule(kind, key, limit, 0 if per_token else 1, name, False, 0, when)
            for kind, key, limit, name, _, _, when, per_token in plan.parts
            if kind != "b"
        )
    return list(rules)


def _hit_free_known(ctx: RequestContext) -> bool:
    """The request has an L1 entry (gateway/cache.py) whose hit would cost nothing."""
    plan = ctx.cache
    return plan is not None and plan.local is not None and not plan.policy.charge


def _hit_event(ctx: RequestContext, plan: _RulePlan) -> bytes | None:
    """The usage event of a free hit whose answer is built before its admission (an L1 entry
    found fresh, gateway/relay.py), as its settle would record it: the admission script records
    it once it admits, so that the hit has no settle, a script and a round trip less after its
    answer (docs/benchmark.md). None for any other request (and a batch line, settled once).
    The plan's last one renewed when made from the same values: the same caller (a frozen
    Caller), model and endpoint (the plan's), the same usage (the cache policy's `hit_usage`
    object) and the same request fields below; built afresh otherwise."""
    cache = ctx.cache
    if cache.usage is None or ctx.batch_id:
        return None
    source = cache.usage_source
    if source is None or ctx.guard is not None or ctx.first_token_seconds is not None:
        return usage_event_encode(cache_hit_shown(ctx, lambda: _hit_event_build(ctx)))
    shape = (
        source,
        ctx.end_customer,
        ctx.status_code,
        ctx.stream,
        ctx.cancelled,
        ctx.deployment,
        ctx.cache_saved_latency_ms,
        *ctx.tags,
    )
    held = plan.hit_event
    if held is not None and held[0] == shape:
        return usage_event_encode(usage_event_renew(held[1], ctx))
    event = cache_hit_shown(ctx, lambda: _hit_event_build(ctx))
    plan.hit_event = (shape, event)
    return usage_event_encode(event)


def _hit_lease(plan: _RulePlan, rules: list[Rule], now: int) -> _HitLease | None:
    """This second's lease of a plan's free hits (counting this hit), None when they take none:
    a parallel slot to check or a request window under 64 a minute (`_HIT_LEASE_SHARE`)."""
    most = plan.hit_lease_max
    if most is None:
        limits = [rule.limit for rule in rules if rule.amount]
        if all(rule.kind == "w" for rule in rules) and limits:
            smallest = min(limit for limit in limits if limit >= 0) if max(limits) >= 0 else None
            most = _HIT_LEASE_MAX if smallest is None else smallest // _HIT_LEASE_SHARE
            most = min(most, _HIT_LEASE_MAX)
        else:
            most = 0
        plan.hit_lease_max = most
    if not most:
        return None
    second = now // 1000
    lease = plan.hit_lease
    if lease is None or lease.second != second:
        before = lease.served if lease is not None and lease.second == second - 1 else 0
        lease = plan.hit_lease = _HitLease(second, before)
    lease.served += 1
    return lease


def _hit_leased(
    ctx: RequestContext,
    admission: Admission,
    rules: list[Rule],
    lease: _HitLease,
    *,
    now: int,
    event: bytes,
) -> None:
    """Admit a free hit on its plan's lease: no Redis command. Its headers say what the lease's
    last admission saw, less the units spent since; its usage event goes to the usage stream in
    the background (gateway/spool.py `usage_event_later`)."""
    lease.left -= 1
    spent = lease.spent = lease.spent + 1
    elapsed = now - lease.at
    states = [
        RuleState(
            state.limit,
            state.remaining - spent if rule.amount and state.limit >= 0 else state.remaining,
            state.reset_ms - elapsed if state.reset_ms > elapsed else 0,
        )
        for rule, state in zip(rules, lease.states, strict=True)
    ]
    admission.headers = _headers(rules, states)
    admission.reservation = Reservation(rules, lease.second, None, settled=True)
    ctx.cost = _ZERO
    usage_event_later(ctx.request_id, event)


def _hit_event_build(ctx: RequestContext) -> UsageEvent:
    return usage_event_build(ctx, cost=_ZERO, provider="", model=ctx.model)


def _rule_plan(
    ctx: RequestContext, snapshots: dict[SnapshotKey, BudgetSnapshot | None]
) -> _RulePlan:
    caller = ctx.caller
    called = ctx.recorded_as or ctx.endpoint
    memo = (id(caller), ctx.model, called)
    held = tuple(snapshots.values())
    current = hot_settings()  # `override_settings` makes another: the keys may change with it
    plan = _rule_plans.get(memo)
    if (
        plan is not None
        and plan.caller is caller
        and plan.settings is current
        and plan.snapshots == held  # the same objects, or equal ones (a refresh of the same row)
    ):
        return plan
    parts = _rule_parts(ctx, snapshots, called=called)
    plan = _RulePlan(
        caller=caller,
        snapshots=held,
        settings=current,
        parts=parts,
        budgets=any(part[0] == "b" for part in parts),
    )
    if len(_rule_plans) >= _RULE_PLANS_MAX:
        _rule_plans.clear()
    _rule_plans[memo] = plan
    return plan


def _rule_parts(
    ctx: RequestContext,
    snapshots: dict[SnapshotKey, BudgetSnapshot | None],
    *,
    called: Endpoint,
) -> list[_Part]:
    caller = ctx.caller
    org_tenant = f"o:{caller.organization_id if caller.organization_id is not None else '-'}"
    parts: list[_Part] = []
    # A key's limits can be set on the key and on its budget row: one rule per metric, the
    # stricter limit (two rules on one counter would count every request twice).
    own = snapshots.get((_KEY, caller.key_id)) if caller.key_id is not None else None
    if caller.key_id is not None:
        parts += _window_parts(
            tenant=org_tenant,
            entity=f"key:{caller.key_id}",
            label="key",
            rpm=_stricter(caller.rpm_limit, own.rpm_limit if own else None),
            tpm=_stricter(caller.tpm_limit, own.tpm_limit if own else None),
            parallel=_stricter(
                caller.max_parallel_requests, own.max_parallel_requests if own else None
            ),
        )
        model_rpm = (caller.metadata.get("model_rpm_limit") or {}).get(ctx.model)
        model_tpm = (caller.metadata.get("model_tpm_limit") or {}).get(ctx.model)
        if model_rpm is not None or model_tpm is not None:
            parts += _window_parts(
                tenant=org_tenant,
                entity=f"key:{caller.key_id}:model:{ctx.model}",
                label="model",
                rpm=int(model_rpm) if model_rpm is not None else None,
                tpm=int(model_tpm) if model_tpm is not None else None,
                parallel=None,
            )
        if caller.endpoint_limits:
            endpoint = caller.endpoint_limits.get(called.value)
            if endpoint:
                rpm, tpm = endpoint.get("rpm"), endpoint.get("tpm")
                parts += _window_parts(
                    tenant=org_tenant,
                    entity=f"key:{caller.key_id}:endpoint:{called.value}",
                    label=f"/v1/{called.value}",
                    rpm=int(rpm) if rpm is not None else None,
                    tpm=int(tpm) if tpm is not None else None,
                    parallel=None,
                )
    for snapshot in snapshots.values():
        if snapshot is None or snapshot is own:
            continue
        tenant = f"u:{snapshot.target_id}" if snapshot.scope == _USER else org_tenant
        parts += _window_parts(
            tenant=tenant,
            entity=f"{snapshot.scope}:{snapshot.target_id}",
            label=snapshot.scope,
            rpm=snapshot.rpm_limit,
            tpm=snapshot.tpm_limit,
            parallel=snapshot.max_parallel_requests,
        )
    # A deployment's own rpm/tpm are counted when the router picks it (gateway/capacity.py).
    for snapshot in snapshots.values():
        if snapshot is None or (snapshot.max_budget is None and snapshot.soft_budget is None):
            continue
        budget = _budget_fixed(snapshot)
        parts.append(
            (
                "b",
                budget.key,
                budget.limit,
                budget.name,
                budget.audit,
                budget.seed,
                budget.reset_at_ms,
                False,
            )
        )
    return parts


def _proxy_rules() -> list[Rule]:
    """`global_max_parallel_requests`: one slot per request in flight on the whole proxy, every
    worker counted (general_settings, LiteLLM's meaning); none when it is not set."""
    limit = config_current().general.get("global_max_parallel_requests")
    if not limit:
        return []
    key = rule_key(tenant="g", entity="proxy", metric="parallel")
    ttl = settings.OGEM_PARALLEL_SLOT_TTL * 1000
    return [Rule("p", key, int(limit), 1, "proxy:parallel", ttl_ms=ttl)]


def _stricter(first: int | None, second: int | None) -> int | None:
    if first is None:
        return second
    return first if second is None else min(first, second)


@dataclass(frozen=True, slots=True)
class _BudgetFixed:
    """What a budget rule takes from its snapshot, the same for every request until it changes."""

    key: str
    limit: int
    seed: int
    reset_at_ms: int  # 0: never resets
    audit: bool
    name: str


_budgets_fixed: dict[int, tuple[BudgetSnapshot, _BudgetFixed]] = {}


def _budget_fixed(snapshot: BudgetSnapshot) -> _BudgetFixed:
    # Keyed by identity: a refreshed snapshot is a new object. The entry holds the snapshot, so
    # its id cannot be reused while cached.
    hit = _budgets_fixed.get(id(snapshot))
    if hit is not None and hit[0] is snapshot:
        return hit[1]
    fixed = _BudgetFixed(
        key=budget_counter_key(snapshot=snapshot),
        limit=usd_to_units(snapshot.max_budget) if snapshot.max_budget is not None else UNLIMITED,
        seed=usd_to_units(snapshot.spend),
        reset_at_ms=int(snapshot.reset_at.timestamp() * 1000) if snapshot.reset_at else 0,
        audit=snapshot.mode == _AUDIT,
        name=f"{snapshot.scope}:budget",
    )
    if len(_budgets_fixed) >= 10_000:
        _budgets_fixed.clear()
    _budgets_fixed[id(snapshot)] = (snapshot, fixed)
    return fixed


# The names, not formatted per request.
_REQUEST_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
_TOKEN_HEADERS = (
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def _duration(ms: int) -> str:
    """OpenAI's reset format: "20ms", "1s", "6m0s"."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    seconds = math.ceil(ms / 1000)
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60}s"


def _headers(rules: list[Rule], states: list[RuleState]) -> PlainHeaders:
    # Per metric, the rule with the least room left speaks for the request (the first on a tie).
    requests = tokens = None
    for rule, state in zip(rules, states, strict=True):
        name = rule.name
        if name.endswith(":rpm"):
            if requests is None or state.remaining < requests.remaining:
                requests = state
        elif name.endswith(":tpm") and (tokens is None or state.remaining < tokens.remaining):
            tokens = state
    headers = PlainHeaders()  # lowercase names, digits and a duration's letters
    for names, state in ((_REQUEST_HEADERS, requests), (_TOKEN_HEADERS, tokens)):
        if state is not None:
            limit, remaining, reset = names
            headers[limit] = str(state.limit)
            headers[remaining] = str(max(state.remaining, 0))
            headers[reset] = _duration(state.reset_ms)
    return headers


def _refusal(rule: Rule, decision: Decision, headers: dict[str, str]) -> RateLimitError:
    retry_ms = max(decision.retry_after_ms, 1)
    headers = {
        **headers,
        "Retry-After": str(math.ceil(retry_ms / 1000)),
        "retry-after-ms": str(retry_ms),
    }
    scope, _, metric = rule.name.partition(":")
    refusal_record(reason="budget" if rule.kind == "b" else "rate_limit", rule=rule.name)
    if rule.kind == "b":
        # LiteLLM's opening words: clients migrating from it match on them.
        return BudgetExceededError(
            f"Budget has been exceeded! The {scope.replace('_', ' ')} budget of "
            f"${units_to_usd(rule.limit)} has no room for this request.",
            headers=headers,
        )
    what = {
        "rpm": "requests per minute",
        "tpm": "tokens per minute",
        SESSIONS_METRIC: "concurrent Realtime sessions",
    }.get(metric, "requests in parallel")
    return RateLimitError(
        f"Rate limit reached for {scope.replace('_', ' ')}: {rule.limit} {what}.",
        headers=headers,
    )


_period_tasks: set[asyncio.Task[None]] = set()


def _periods_reset_if_due(snapshots: dict[SnapshotKey, BudgetSnapshot | None], *, now: int) -> None:
    """Without Redis there is no Celery beat: reset ended budget periods here, in the background."""
    if hot_settings().REDIS_URL:
        return
    loop = asyncio.get_running_loop()
    # One reset at a time per event loop; a task left by a loop that ended (its done callback
    # never ran) must not stop this one's.
    if any(task.get_loop() is loop and not task.done() for task in _period_tasks):
        return
    due = any(
        s is not None and s.reset_at is not None and s.reset_at.timestamp() * 1000 <= now
        for s in snapshots.values()
    )
    if not due:
        return
    task = loop.create_task(sync_to_async(_periods_reset_in_thread, thread_sensitive=False)())
    _period_tasks.difference_update([ended for ended in _period_tasks if ended.done()])
    _period_tasks.add(task)
    task.add_done_callback(_period_tasks.discard)


def _periods_reset_in_thread() -> None:
    from django.db import connections

    from billing.services import budget_periods_reset

    try:
        budget_periods_reset()
    finally:
        connections.close_all()


# ---- the hooks ---------------------------------------------------------------------------------


async def governance_admit(ctx: RequestContext) -> Admission:
    """Check rate limits and budgets; raise RateLimitError/BudgetExceededError to refuse."""
    admission = await governance_admit_start(ctx)
    await admission_confirm(ctx, admission)
    return admission


async def governance_admit_start(ctx: RequestContext) -> Admission:
    """`governance_admit`, except that with Redis it returns once the admission script is
    written, its decision still pending (`admission.pending`): the router chooses a deployment
    meanwhile and calls `admission_confirm` before it takes anything from it or calls it, so the
    reservation is still made before the upstream call and the routing work overlaps the round
    trip. A refusal known at once (no Redis) is raised here."""
    if not hot_settings().OGEM_GOVERNANCE_ENABLED:
        return Admission()
    await price_overrides_ensure()
    proxy = _proxy_rules()
    now = clock_ms()
    packing = None
    rest = None
    event = None
    hits = None
    if ctx.caller.is_master:
        if not proxy:
            return Admission(reservation=Reservation(rules=[], bucket=0, price=None))
        rules, price = proxy, None  # the proxy-wide cap holds for the master key too
    else:
        snapshots = await _snapshots_get(_entity_keys(ctx))
        plan = _rule_plan(ctx, snapshots)
        if _hit_free_known(ctx):
            # No worst case, price or token estimate: a free hit reserves none of them.
            rules, price = _hit_rules(plan), None
            if plan.budgets or any(part[7] for part in plan.parts):
                rest = plan
            event = _hit_event(ctx, plan)
            if not proxy:
                if event is not None and settle_deferred.get() is not None:
                    # Served by a web worker's lean handler, whose event loop lives on: the
                    # hit's event may wait there for its batch (a lease, `_HitLease`).
                    hits = plan
                packing = plan.hit_packing
                if packing is None or packing.size != len(rules):
                    packing = plan.hit_packing = AdmitPacking(rules)
        else:
            _, _, price = _price_for(ctx)
            worst_case = Decimal(0)
            if any(s is not None and s.max_budget is not None for s in snapshots.values()):
                worst_case = _worst_case(ctx, price)
            rules = _plan_rules(ctx, plan, worst_case=worst_case, now=now)
            if not proxy:
                packing = plan.packing
                if packing is None:
                    packing = plan.packing = AdmitPacking(rules)
        if proxy:
            rules += proxy
        if not rules:
            admission = Admission(reservation=Reservation(rules=[], bucket=0, price=price))
            admission.rest = rest
            return admission
        _periods_reset_if_due(snapshots, now=now)
    admission = await _admission_start(
        ctx, rules, price, now=now, packing=packing, event=event, hits=hits
    )
    admission.rest = rest
    return admission


async def _admission_start(
    ctx: RequestContext,
    rules: list[Rule],
    price: Price | None,
    *,
    now: int,
    packing: AdmitPacking | None,
    event: bytes | None = None,
    hits: _RulePlan | None = None,
) -> Admission:
    """`event`: the request's usage event when its admission may record it (`_hit_event`);
    only the pipelined Redis connection's does, else it is settled as any request. `hits`: the
    rule plan of such a free hit, whose rules are `rules`: it may be admitted on the plan's lease
    (`_HitLease`), or ask for one."""
    admission = Admission()
    store = limiter()
    if store is local_limiter:  # no Redis
        _decided(
            ctx,
            admission,
            rules,
            price,
            store.admit_now(rules, now_ms=now, request_id=ctx.request_id),
        )
        return admission
    if redis_outage.down:
        redis_outage_watch()
        _admit_without_redis(ctx, admission, rules, price, now=now)
        return admission
    lease = None
    units = 0
    if hits is not None and event is not None:
        lease = _hit_lease(hits, rules, now)
        if lease is not None:
            if lease.left:
                _hit_leased(ctx, admission, rules, lease, now=now, event=event)
                return admission
            if not lease.asking:
                served = lease.served
                units = min(hits.hit_lease_max or 0, max(served - 1, lease.before - served))
    try:
        fetch = ctx.fetch_key
        issued = await store.admit_issue(
            rules,
            now_ms=now,
            request_id=ctx.request_id,
            fetch=fetch,
            packing=packing,
            event=event,
            lease_units=units,
        )
        if issued is not None:
            if lease is not None and units:
                lease.asking = True
                admission.pending = _Pending(issued, rules, price, True, lease, now)
            else:
                admission.pending = _Pending(issued, rules, price, event is not None)
            ctx.fetch_taken = fetch is not None
            return admission
        decision = await store.admit(rules, now_ms=now, request_id=ctx.request_id)
    except Exception as exc:
        _redis_failed(ctx, exc, what="limits")
        _admit_without_redis(ctx, admission, rules, price, now=now)
        return admission
    _decided(ctx, admission, rules, price, decision)
    return admission


async def admission_confirm(ctx: RequestContext, admission: Admission) -> None:
    """Wait for a pending admission's decision; raise its refusal. Once only."""
    pending = admission.pending
    if pending is None:
        return
    try:
        decision = await pending.decision
    except Exception as exc:
        if pending.lease is not None:
            pending.lease.asking = False
        admission.pending = None
        ctx.fetch_taken = False  # the response cache reads its entry itself (and fails)
        _redis_failed(ctx, exc, what="limits")
        _admit_without_redis(ctx, admission, pending.rules, pending.price, now=clock_ms())
        return
    admission.pending = None
    ctx.fetched = decision.fetched
    lease = pending.lease
    if lease is not None:
        lease.asking = False
        if decision.leased:
            lease.spent = -lease.left  # counted in this view already
            lease.left += decision.leased
            lease.states = decision.states
            lease.at = pending.now
    _decided(ctx, admission, pending.rules, pending.price, decision)
    if pending.settles:  # its usage event is recorded: nothing left to settle
        admission.reservation.settled = True  # type: ignore[union-attr]
        ctx.cost = _ZERO


async def admission_complete(ctx: RequestContext, admission: Admission) -> None:
    """`admission_confirm`, then, for a request admitted as a free cache hit that goes upstream
    after all (`Admission.rest`), the rest of its rules: its budgets' worst case and its token
    estimate, reserved before the upstream call as for any request. The router awaits it."""
    await admission_confirm(ctx, admission)
    plan = admission.rest
    if plan is None:
        return
    admission.rest = None
    held = admission.reservation
    if not isinstance(held, Reservation):
        return
    now = clock_ms()
    _, _, price = _price_for(ctx)
    worst_case = Decimal(0)
    if any(s is not None and s.max_budget is not None for s in plan.snapshots):
        worst_case = _worst_case(ctx, price)
    rules = [
        rule
        for rule in _plan_rules(ctx, plan, worst_case=worst_case, now=now)
        if rule.kind == "b" or rule.name.endswith(":tpm")
    ]
    if not rules:
        return
    fetch = ctx.fetch_key
    ctx.fetch_key = None  # the entry was read already
    try:
        extra = await _admission_start(ctx, rules, price, now=now, packing=None)
        await admission_confirm(ctx, extra)
    except GatewayError:
        # Refused as a whole, as one admission would have been: the hit's rules given back.
        admission.refused = True
        hold = SessionHold(rules=held.rules, bucket=held.bucket, local=held.local)
        await _hold_release(ctx, hold, held.rules)
        raise
    finally:
        ctx.fetch_key = fetch
    reservation = extra.reservation
    assert isinstance(reservation, Reservation)
    # The token windows' zero amounts give way to the estimate's rules (settled once).
    held.rules = [rule for rule in held.rules if not rule.name.endswith(":tpm")]
    held.rules += reservation.rules
    held.bucket = reservation.bucket
    held.price = price
    held.local = held.local or reservation.local
    admission.headers.update(extra.headers)


def _decided(
    ctx: RequestContext,
    admission: Admission,
    rules: list[Rule],
    price: Price | None,
    decision: Decision,
    *,
    local: bool = False,
) -> None:
    headers = _headers(rules, decision.states)
    for index in decision.audit_exceeded:
        logger.warning(
            "budget %s (audit mode) would have refused request %s: worst case %s, left %s",
            rules[index].key,
            ctx.request_id,
            units_to_usd(rules[index].amount),
            units_to_usd(max(decision.available[index], 0)),
        )
    if decision.refused is not None:
        admission.refused = True
        raise _refusal(rules[decision.refused], decision, headers)
    admission.headers = headers
    admission.reservation = Reservation(
        rules=rules, bucket=decision.bucket, price=price, local=local
    )


def _redis_failed(ctx: RequestContext, exc: Exception, *, what: str) -> None:
    if redis_unreachable(exc):
        redis_failed(exc, what=what)  # logged once for the whole outage
    else:
        logger.exception("Redis refused request %s's %s script", ctx.request_id, what)


def _admit_without_redis(
    ctx: RequestContext,
    admission: Admission,
    rules: list[Rule],
    price: Price | None,
    *,
    now: int,
) -> None:
    """Redis could not decide: count in this process (policy open) or refuse with a 503."""
    if settings.OGEM_REDIS_FAILURE_POLICY == "closed":
        admission.refused = True
        raise GatewayError(
            "Redis is unavailable, so rate limits and budgets cannot be checked; retry shortly.",
            status=503,
            code="governance_unavailable",
            headers={"Retry-After": "1"},
        )
    decision = outage_limiter.admit_now(rules, now_ms=now, request_id=ctx.request_id)
    _decided(ctx, admission, rules, price, decision, local=True)


# Set by the lean /v1 handler (gateway/asgi.py) while a request's view runs, to a list it awaits
# once the response is sent: a settle then returns as soon as its script is written to Redis (in
# one send with the other settles and admissions of the same event-loop turn) and leaves the wait
# for Redis's reply in that list. The client no longer waits that round trip, and the usage still
# reaches Redis before the answer leaves Ogem. Streams settle while they are sent: not deferred.
# A response cache hit leaves its whole settle there (a coroutine, run once the answer is sent:
# gateway/relay.py), since it waits on no upstream whose time would hide it.
settle_deferred: ContextVar[list[Awaitable[None]] | None] = ContextVar(
    "ogem_settle_deferred", default=None
)


async def governance_settle(ctx: RequestContext, admission: Admission) -> None:
    """Settle reservations with the real usage in ctx and record the usage event once."""
    if ctx.capacity_takes:
        await capacity_settle(ctx)  # the deployments' own tpm (routing, with or without governance)
    if not hot_settings().OGEM_GOVERNANCE_ENABLED:
        return
    if admission.pending is not None:  # the request ended before the router confirmed it
        try:
            await admission_confirm(ctx, admission)
        except GatewayError:
            return
    if admission.refused:
        return  # nothing was reserved, and a refused request is not a served one
    reservation = admission.reservation
    if not isinstance(reservation, Reservation):
        reservation = Reservation(rules=[], bucket=0, price=None)
    if reservation.settled:
        return
    reservation.settled = True
    usage = ctx.usage
    tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    if ctx.cache_free and ctx.deployment is None:
        # A response cache hit: no upstream call, so nothing against budgets or tpm windows
        # (gateway/cache.py; `charge_hits` makes it cost its price like any other request), and
        # no price to look up (`_price_for`'s provider and model for a hit).
        provider, model, price = "", ctx.model, None
    else:
        await price_overrides_ensure()
        provider, model, price = _price_for(ctx)
    if ctx.cache_free:
        cost = Decimal(0)
        tokens = 0
    elif price is None:
        unpriced_record(provider=provider, model=model)
        cost = Decimal(0)
    else:
        cost = cost_from_price(price=price, usage=ctx.usage)
    if ctx.batch_id:
        # Providers charge batch requests less; Ogem's own batches are priced the same way.
        cost *= settings.OGEM_BATCH_PRICE_FACTOR
    ctx.cost = cost
    cost_units = usd_to_units(cost)
    settlements = []
    for rule in reservation.rules:
        if rule.kind == "b":
            settlements.append(Settlement(rule, cost_units))
        elif rule.kind == "p":
            settlements.append(Settlement(rule, 0))
        elif tokens != rule.amount and rule.name.endswith(":tpm"):  # else nothing to apply
            settlements.append(Settlement(rule, tokens))
    event = usage_event_encode(usage_event_build(ctx, cost=cost, provider=provider, model=model))
    store = limiter()
    request_id = ctx.request_id
    if store is local_limiter:  # no Redis
        await store.settle(
            settlements, request_id=request_id, bucket=reservation.bucket, event=event
        )
        return
    mode = ""
    if reservation.local:
        # Admitted while Redis was away: its windows and slots were this process's; its spend
        # and usage go to Redis, once (a marked settle).
        outage_limiter.settle_now(settlements, request_id=request_id, bucket=reservation.bucket)
        settlements = [item for item in settlements if item.rule.kind == "b"]
        mode = "m"
    keys, args = settle_script(
        settlements, request_id=request_id, bucket=reservation.bucket, event=event, mode=mode
    )
    if ctx.batch_id:
        # A batch line keeps its request id when a resumed batch runs it again: its spend and
        # usage event are applied once (the marker), whichever run settles first.
        keys, args = settle_marked(keys, args)
    if redis_outage.down:
        redis_outage_watch()
        usage_spool_append(keys, args)
        return
    deferred = settle_deferred.get()
    # A cancelled request's handler is gone and awaits nothing: it waits here, as without Redis.
    if deferred is not None and not ctx.cancelled:
        write = ctx.settle_write
        wrote = write is not None and not mode and not ctx.batch_id
        if wrote:
            # The response cache's entry rides along (not into the spool: only the settle is
            # kept for a replay).
            ctx.settle_write = None
            settle_write(keys, args, key=write[0], entry=write[3])
        try:
            reply = await store.settle_issue(keys, args, wrote)
        except Exception as exc:
            if wrote:
                keys, args = settle_unwrite(keys, args)
                cache_redis_error_record(operation="set")
            _redis_failed(ctx, exc, what="usage")
            usage_spool_append(keys, args)
            return
        if reply is not None:
            deferred.append(asyncio.ensure_future(_settle_awaited(ctx, reply, keys, args, wrote)))
            return
        if wrote:  # not sent: the cache writes it itself
            keys, args = settle_unwrite(keys, args)
            ctx.settle_write = write
    await _settle_awaited(ctx, store.settle_run(keys, args), keys, args, False)


async def request_cost(ctx: RequestContext) -> Decimal:
    """What a request costs, as the settle computes it, for a request the settle did not price
    (governance off, a refusal): the callbacks' event (gateway/callbacks/)."""
    if ctx.cost is not None:
        return ctx.cost
    if ctx.deployment is None or ctx.cache_free:
        return Decimal(0)
    await price_overrides_ensure()
    _, _, price = _price_for(ctx)
    if price is None:
        return Decimal(0)
    cost = cost_from_price(price=price, usage=ctx.usage)
    if ctx.batch_id:
        cost *= settings.OGEM_BATCH_PRICE_FACTOR
    return cost


async def _settle_awaited(
    ctx: RequestContext,
    reply: Awaitable[Any],
    keys: list[str],
    args: list[Any],
    wrote: bool,
) -> None:
    """`wrote`: the settle carries a response cache entry (`settle_write`)."""
    try:
        done = await reply
    except Exception as exc:
        if wrote:
            keys, args = settle_unwrite(keys, args)
            cache_redis_error_record(operation="set")
        # The usage must not be lost with Redis: the spool keeps it until Redis is back.
        _redis_failed(ctx, exc, what="usage")
        usage_spool_append(keys, args)
        return
    if wrote and done == SETTLE_WRITE_FAILED:
        cache_redis_error_record(operation="set")


# ---- Realtime sessions (gateway/realtime/) -------------------------------------------------------


@dataclass(slots=True)
class SessionHold:
    """The concurrent-session slots an open Realtime session holds, released when it ends."""

    rules: list[Rule]
    bucket: int
    local: bool = False
    released: bool = False


def session_rules(
    *, ctx: RequestContext, limits: list[tuple[str, int | str, int]], lifetime_seconds: int
) -> list[Rule]:
    """One parallel rule per (scope, id, limit) of `limits` ("key", "team", "organization"): a
    slot lasts at most `lifetime_seconds` even if its worker never releases it."""
    org_tenant = (
        f"o:{ctx.caller.organization_id if ctx.caller.organization_id is not None else '-'}"
    )
    return [
        Rule(
            "p",
            rule_key(tenant=org_tenant, entity=f"{scope}:{target}", metric=SESSIONS_METRIC),
            limit,
            1,
            f"{scope}:{SESSIONS_METRIC}",
            ttl_ms=lifetime_seconds * 1000,
        )
        for scope, target, limit in limits
    ]


async def session_admit(ctx: RequestContext, *, slots: list[Rule]) -> SessionHold:
    """Admit a Realtime session: take its concurrent-session slots and check that every budget
    of the caller still has room (a reservation of the smallest unit, released at once). Raises
    RateLimitError or BudgetExceededError (or a 503 under the closed Redis policy)."""
    if not settings.OGEM_GOVERNANCE_ENABLED or ctx.caller.is_master:
        return SessionHold(rules=[], bucket=0)
    await price_overrides_ensure()
    now = clock_ms()
    snapshots = await _snapshots_get(_entity_keys(ctx))
    budgets = [
        rule
        for rule in _rules(ctx, snapshots, worst_case=Decimal("0.00000001"), now=now)
        if rule.kind == "b" and rule.limit != UNLIMITED
    ]
    rules = slots + budgets
    if not rules:
        return SessionHold(rules=[], bucket=0)
    admission = Admission()
    store = limiter()
    if store is local_limiter:
        decision = store.admit_now(rules, now_ms=now, request_id=ctx.request_id)
        _decided(ctx, admission, rules, None, decision)
    elif redis_outage.down:
        redis_outage_watch()
        _admit_without_redis(ctx, admission, rules, None, now=now)
    else:
        try:
            decision = await store.admit(rules, now_ms=now, request_id=ctx.request_id)
        except Exception as exc:
            _redis_failed(ctx, exc, what="limits")
            _admit_without_redis(ctx, admission, rules, None, now=now)
        else:
            _decided(ctx, admission, rules, None, decision)
    reservation = admission.reservation
    assert isinstance(reservation, Reservation)
    hold = SessionHold(rules=rules, bucket=reservation.bucket, local=reservation.local)
    if budgets:  # the check is done: give the budgets' smallest unit back now
        await _hold_release(ctx, hold, budgets)
    hold.rules = slots
    return hold


async def session_release(ctx: RequestContext, hold: SessionHold) -> None:
    """Free an ended session's slots (once)."""
    if hold.released or not hold.rules:
        return
    hold.released = True
    await _hold_release(ctx, hold, hold.rules)


async def _hold_release(ctx: RequestContext, hold: SessionHold, rules: list[Rule]) -> None:
    settlements = [Settlement(rule, 0) for rule in rules]
    store = limiter()
    if store is local_limiter:
        store.settle_now(settlements, request_id=ctx.request_id, bucket=hold.bucket)
        return
    if hold.local:
        outage_limiter.settle_now(settlements, request_id=ctx.request_id, bucket=hold.bucket)
        return
    keys, args = settle_script(
        settlements, request_id=ctx.request_id, bucket=hold.bucket, event=b""
    )
    if redis_outage.down:
        usage_spool_append(keys, args)
        return
    try:
        await store.settle_run(keys, args)
    except Exception as exc:
        _redis_failed(ctx, exc, what="limits")
        usage_spool_append(keys, args)


# ---- usage learned after the fact (batches passed through to a provider) -------------------------


@dataclass(frozen=True, slots=True)
class Charge:
    """One request's usage that Ogem learned only after the fact: its id, tokens and cost."""

    request_id: str
    tokens: int
    cost: Decimal  # USD
    end_customer: str | None = None  # the request's `user`: its end customer's budget too


async def _caller_rules(
    *,
    caller: Caller,
    model: str,
    endpoint: Endpoint,
    request_id: str,
    now: int,
    end_customer: str | None = None,
) -> list[Rule]:
    """The budget and tpm rules a live request of `caller` to `model` would be admitted by."""
    from gateway.context import RequestContext

    ctx = RequestContext(
        request_id=request_id,
        endpoint=endpoint,
        caller=caller,
        model=model,
        end_customer=end_customer,
    )
    snapshots = await _snapshots_get(_entity_keys(ctx))
    return [
        rule
        for rule in _rules(ctx, snapshots, worst_case=Decimal(0), now=now)
        if rule.kind == "b" or rule.name.endswith(":tpm")
    ]


async def governance_budget_check(*, caller: Caller, model: str, endpoint: Endpoint) -> None:
    """Raise BudgetExceededError (as a live request gets it) when a budget of `caller` has no
    room left at all; reserve nothing. Redis away: admitted under policy `open`, else a 503."""
    if not settings.OGEM_GOVERNANCE_ENABLED or caller.is_master:
        return
    now = clock_ms()
    request_id = f"check-{uuid.uuid4().hex}"
    rules = await _caller_rules(
        caller=caller, model=model, endpoint=endpoint, request_id=request_id, now=now
    )
    rules = [rule for rule in rules if rule.kind == "b"]
    if not rules:
        return
    for rule in rules:
        rule.amount = 1  # the smallest spend: refused once nothing is left
    release = [Settlement(rule, 0) for rule in rules]
    store = limiter()
    if store is local_limiter:
        decision = store.admit_now(rules, now_ms=now, request_id=request_id)
        if decision.refused is None:
            store.settle_now(release, request_id=request_id, bucket=decision.bucket)
    else:
        try:
            if redis_outage.down:
                raise ConnectionError("Redis is away")
            decision = await store.admit(rules, now_ms=now, request_id=request_id)
            if decision.refused is None:
                await store.settle(
                    release, request_id=request_id, bucket=decision.bucket, event=b""
                )
        except Exception as exc:
            if settings.OGEM_REDIS_FAILURE_POLICY == "closed":
                raise GatewayError(
                    "Redis is unavailable, so budgets cannot be checked; retry shortly.",
                    status=503,
                    code="governance_unavailable",
                    headers={"Retry-After": "1"},
                ) from exc
            logger.warning("budget check of %s skipped: %s", caller.key_id, exc)
            return
    if decision.refused is not None:
        raise _refusal(rules[decision.refused], decision, {})


async def governance_charge(
    *, caller: Caller, model: str, endpoint: Endpoint, charges: list[Charge]
) -> None:
    """Apply usage learned after the fact to `caller`'s budget counters and tpm windows (and
    each charge's end customer's), as a live request's settle would: once per request id however
    often it is applied again (the marked settle of gateway/limits.py). The usage events are the
    caller's to record (RequestLog, unique on the request id)."""
    if not settings.OGEM_GOVERNANCE_ENABLED or caller.is_master or not charges:
        return
    groups: dict[str | None, list[Charge]] = {}
    for charge in charges:
        groups.setdefault(charge.end_customer, []).append(charge)
    for end_customer, group in groups.items():
        await _charges_apply(
            caller=caller, model=model, endpoint=endpoint, end_customer=end_customer, charges=group
        )


async def _charges_apply(
    *,
    caller: Caller,
    model: str,
    endpoint: Endpoint,
    end_customer: str | None,
    charges: list[Charge],
) -> None:
    now = clock_ms()
    request_id = f"charge-{uuid.uuid4().hex}"
    rules = await _caller_rules(
        caller=caller,
        model=model,
        endpoint=endpoint,
        request_id=request_id,
        now=now,
        end_customer=end_customer,
    )
    if not rules:
        return
    for rule in rules:
        # Count only: what the provider already served cannot be refused.
        rule.limit, rule.amount, rule.audit = UNLIMITED, 0, False

    def settlements(charge: Charge) -> list[Settlement]:
        units = usd_to_units(charge.cost)
        return [Settlement(rule, units if rule.kind == "b" else charge.tokens) for rule in rules]

    # An admission that takes nothing starts what a settle adds to: a new period's budget
    # counter (seeded from the durable spend) and this second's tpm bucket.
    store = limiter()
    if store is local_limiter:
        decision = store.admit_now(rules, now_ms=now, request_id=request_id)
        for charge in charges:
            store.settle_once(
                settlements(charge), request_id=charge.request_id, bucket=decision.bucket
            )
        return
    bucket = now // 1000
    admitted = False
    if not redis_outage.down:
        try:
            bucket = (await store.admit(rules, now_ms=now, request_id=request_id)).bucket
            admitted = True
        except Exception as exc:
            logger.warning("usage of %d requests goes to the spool: %s", len(charges), exc)
    scripts = [
        settle_script(
            settlements(charge), request_id=charge.request_id, bucket=bucket, event=b"", mode="m"
        )
        for charge in charges
    ]
    if admitted:
        # Release the admission's (empty) reservation notes.
        scripts.append(
            settle_script(
                [Settlement(rule, 0) for rule in rules],
                request_id=request_id,
                bucket=bucket,
                event=b"",
            )
        )

    async def run(keys: list[str], args: list[Any]) -> None:
        if not admitted:
            usage_spool_append(keys, args)
            return
        try:
            await store.settle_run(keys, args)
        except Exception as exc:
            logger.warning("a settle goes to the spool: %s", exc)
            usage_spool_append(keys, args)

    for start in range(0, len(scripts), _CHARGE_CONCURRENCY):
        await asyncio.gather(*(run(k, a) for k, a in scripts[start : start + _CHARGE_CONCURRENCY]))


# Settles of one charge in flight at once (each its own script: its own marker).
_CHARGE_CONCURRENCY = 64

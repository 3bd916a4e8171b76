from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.alerts import budget_alert_email, budget_alert_webhook
from billing.counters import (
    budget_counter_key,
    budget_counter_spend,
    budget_counters_spend,
    units_to_usd,
)
from billing.models import (
    SCOPE_FIELDS,
    Budget,
    BudgetDuration,
    BudgetMode,
    BudgetScope,
    BudgetTemplate,
    GuardrailDecision,
    RequestLog,
    UnpricedUsage,
)
from billing.pricing import price_overrides_flush
from billing.usage import (
    USAGE_GROUP,
    usage_buffer_return,
    usage_buffer_take,
    usage_consumer_name,
    usage_dead_stream,
    usage_event_decode,
    usage_stream_key,
)
from keys.budgets import KeyBudget
from keys.models import VirtualKey
from ogem_site.broadcast import GOVERNANCE, PRICES, broadcast_publish
from ogem_site.live import LiveEvent, live_publish_many
from ogem_site.redis import redis_client_sync

logger = logging.getLogger(__name__)

_DURATION_DAYS = {BudgetDuration.DAILY: 1, BudgetDuration.WEEKLY: 7, BudgetDuration.MONTHLY: 30}


@dataclass(frozen=True, slots=True)
class EntityLimits:
    """The rate limits an organization, team, user, key or end customer has on its budget row
    (None: no limit of that kind)."""

    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None


def budget_upsert(
    *,
    scope: str,
    target: Any,
    max_budget: Decimal | None = None,
    soft_budget: Decimal | None = None,
    duration: str = BudgetDuration.NONE,
    mode: str = BudgetMode.ENFORCE,
    limits: EntityLimits | None = None,
) -> Budget:
    """Create or update the budget of one organization, team, user, key or end customer, and
    with `limits` its entity's rate limits (None leaves them as they are): one save, one
    broadcast."""
    scope = BudgetScope(scope)
    if duration not in BudgetDuration.values:
        raise ValueError(f"budget duration must be one of {BudgetDuration.values}")
    field = SCOPE_FIELDS[scope]
    budget, _ = Budget.objects.get_or_create(scope=scope, **{field: target})
    budget.max_budget = max_budget
    budget.soft_budget = soft_budget
    budget.mode = mode
    if budget.duration != duration or budget.period_started_at is None:
        budget.duration = duration
        _budget_start_period(budget=budget)
    if limits is not None:
        budget.rpm_limit = limits.rpm_limit
        budget.tpm_limit = limits.tpm_limit
        budget.max_parallel_requests = limits.max_parallel_requests
    budget.save()
    budget_changes_broadcast()
    return budget


def budget_period_restore(
    *,
    budget: Budget,
    spend: Decimal,
    reset_at: datetime | None,
) -> Budget:
    """Continue a period another gateway started (an import): its spend so far and its end. The
    period's start is its end less the duration, so the live counter starts a period of its own,
    seeded with that spend."""
    budget.spend = max(spend, Decimal("0")).quantize(Decimal("0.00000001"))
    days = _DURATION_DAYS.get(BudgetDuration(budget.duration))
    if reset_at is not None and days:
        budget.reset_at = reset_at
        budget.period_started_at = reset_at - timedelta(days=days)
    budget.save(update_fields=["spend", "reset_at", "period_started_at", "updated_at"])
    budget_changes_broadcast()
    return budget


def key_budget_set(key: VirtualKey, budget: KeyBudget) -> None:
    """The key's own budget, as keys writes it (keys.budgets' store)."""
    budget_upsert(
        scope=BudgetScope.KEY,
        target=key,
        max_budget=budget.max_budget,
        soft_budget=budget.soft_budget,
        duration=budget.duration,
    )


def budget_delete(*, budget: Budget) -> None:
    budget.delete()
    budget_changes_broadcast()


def model_price_changed() -> None:
    """Every worker (and this process) forgets its ModelPrice rows once this transaction commits,
    rather than after OGEM_PRICE_OVERRIDE_TTL."""

    def forget() -> None:
        price_overrides_flush()
        broadcast_publish(topic=PRICES)

    price_overrides_flush()  # this process's readers at once, in this transaction
    transaction.on_commit(forget)  # and once more after commit: a read meanwhile saw old rows


def budget_changes_broadcast() -> None:
    """Every worker forgets its budget and limit snapshots once this transaction commits."""
    transaction.on_commit(lambda: broadcast_publish(topic=GOVERNANCE))


def budget_reset(*, budget: Budget) -> Budget:
    _budget_reset(budget=budget)
    budget_changes_broadcast()
    return budget


def _budget_reset(*, budget: Budget) -> None:
    budget.spend = Decimal("0")
    budget.soft_alert_sent_for = None
    _budget_start_period(budget=budget)
    budget.save()


def _budget_start_period(*, budget: Budget) -> None:
    now = timezone.now()
    budget.period_started_at = now
    days = _DURATION_DAYS.get(BudgetDuration(budget.duration))
    budget.reset_at = now + timedelta(days=days) if days else None


# ---- Usage recording: events -> RequestLog, exactly once ---------------------------------------


def usage_events_record(*, events: list[dict[str, Any]]) -> int:
    """Write one batch of usage events as ONE multi-row insert, idempotent on ``request_id``.

    Rows whose request id is already stored are skipped (ON CONFLICT DO NOTHING), so a batch
    delivered twice (a drain that died before acknowledging it) leaves the table unchanged.
    Returns how many events the batch carried after removing duplicates within it. Successes
    recorded at zero cost are also counted in ``UnpricedUsage`` for admin's warning.
    """
    unique: dict[str, dict[str, Any]] = {}
    for event in events:
        unique.setdefault(str(event["request_id"]), event)
    return _request_logs_insert(
        rows=[_request_log_from(event=event) for event in unique.values()],
        decisions=[d for event in unique.values() for d in _guardrail_decisions_from(event=event)],
    )


def _request_logs_insert(
    *, rows: list[RequestLog], decisions: list[GuardrailDecision] | None = None
) -> int:
    if rows:
        unpriced = _unpriced_usage_rows(logs=rows)
        RequestLog.objects.bulk_create(rows, ignore_conflicts=True, batch_size=len(rows))
        if unpriced:
            UnpricedUsage.objects.bulk_create(unpriced)
        usage = _key_usage_deltas(rows=rows)
        transaction.on_commit(lambda: _key_usage_publish(usage=usage))
    if decisions:
        GuardrailDecision.objects.bulk_create(decisions, ignore_conflicts=True)
    return len(rows)


def _guardrail_decisions_from(*, event: dict[str, Any]) -> list[GuardrailDecision]:
    """The guardrail decisions an event carries (docs/guardrails.md); most carry none."""
    items = event.get("guardrails")
    if not items:
        return []
    created = datetime.fromtimestamp(float(event["ts"]), tz=UTC)
    return [
        GuardrailDecision(
            request_id=str(event["request_id"])[:64],
            created_at=created,
            organization_id=event.get("organization_id"),
            team_id=event.get("team_id"),
            key_id=event.get("key_id"),
            endpoint=str(event.get("endpoint", ""))[:64],
            model=str(event.get("model", ""))[:200],
            guardrail=str(item["guardrail"])[:100],
            phase=str(item["phase"])[:16],
            action=str(item["action"])[:8],
            category=str(item["category"])[:64],
            count=max(int(item.get("count", 1)), 1),
            confidence=float(item.get("confidence", 1.0)),
        )
        for item in items
    ]


def _key_usage_deltas(*, rows: list[RequestLog]) -> list[dict[str, Any]]:
    """What these rows add to each key's usage, for the portal's live updates."""
    keys: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.key_id is None:
            continue
        entry = keys.setdefault(
            row.key_id,
            {
                "key_id": row.key_id,
                "organization_id": row.organization_id,
                "team_id": row.team_id,
                "user_id": row.user_id,
                "requests": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost": Decimal(0),
            },
        )
        entry["requests"] += 1
        entry["prompt_tokens"] += row.prompt_tokens or 0
        entry["completion_tokens"] += row.completion_tokens or 0
        entry["cost"] += row.cost or Decimal(0)
    return list(keys.values())


def _key_usage_publish(*, usage: list[dict[str, Any]]) -> None:
    live_publish_many(
        events=[
            LiveEvent(
                event={
                    "type": "key.usage",
                    "key_id": entry["key_id"],
                    "requests": entry["requests"],
                    "prompt_tokens": entry["prompt_tokens"],
                    "completion_tokens": entry["completion_tokens"],
                    "cost": str(entry["cost"]),
                },
                organization_id=entry["organization_id"],
                team_id=entry["team_id"],
                user_id=entry["user_id"],
            )
            for entry in usage
        ]
    )


@dataclass(frozen=True, slots=True)
class DeadEvent:
    """A usage event the drain cannot record: its payload as it came, and why."""

    payload: bytes
    error: str
    source_id: str = ""


def usage_payloads_record(*, payloads: list[tuple[str, bytes]]) -> tuple[int, list[DeadEvent]]:
    """Record encoded events (source id, payload) in the caller's transaction; return how many
    were written and the poison ones: unreadable, or refused by the database (a constraint, a
    value out of range). A poison event never blocks the rest of its batch: the batch is one
    insert, and when the database refuses it, each event is inserted in its own savepoint.
    A database that is down still raises (the batch stays undrained and is retried)."""
    dead: list[DeadEvent] = []
    rows: dict[str, tuple[str, bytes, RequestLog, list[GuardrailDecision]]] = {}
    for source_id, payload in payloads:
        try:
            event = usage_event_decode(payload)
            row = _request_log_from(event=event)
            decisions = _guardrail_decisions_from(event=event)
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, OSError) as exc:
            dead.append(DeadEvent(payload, f"unreadable: {exc!r}"[:500], source_id))
            continue
        rows.setdefault(row.request_id, (source_id, payload, row, decisions))
    try:
        with transaction.atomic():
            written = _request_logs_insert(
                rows=[row for _, _, row, _ in rows.values()],
                decisions=[d for _, _, _, found in rows.values() for d in found],
            )
            return written, dead
    except (IntegrityError, DataError):
        pass
    written = 0
    for source_id, payload, row, decisions in rows.values():
        try:
            with transaction.atomic():
                written += _request_logs_insert(rows=[row], decisions=decisions)
        except (IntegrityError, DataError) as exc:
            error = f"refused by the database: {exc}".strip()[:500]
            dead.append(DeadEvent(payload, error, source_id))
    return written, dead


def _usage_dead_report(*, dead: list[DeadEvent], place: str) -> None:
    from ogem_site.metrics import USAGE_DEAD_LETTERS

    for event in dead:
        USAGE_DEAD_LETTERS.inc()
        logger.error(
            "usage event %s not recorded (%s); moved to %s: %r",
            event.source_id or "(buffered)",
            event.error,
            place,
            event.payload[:2000],
        )


def _unpriced_usage_rows(*, logs: list[RequestLog]) -> list[UnpricedUsage]:
    """The batch's successes at zero cost not logged already (a redelivered batch counts once),
    one row per (day, organization, provider, model, deployment)."""
    candidates = [log for log in logs if log.cost == 0 and log.status_code < 400]
    if not candidates:
        return []
    times = [log.created_at for log in candidates]
    stored = set(
        RequestLog.objects.filter(
            request_id__in=[log.request_id for log in candidates],
            created_at__gte=min(times),
            created_at__lte=max(times),
        ).values_list("request_id", flat=True)
    )
    counts: dict[tuple[Any, ...], int] = {}
    for log in candidates:
        if log.request_id not in stored:
            day = log.created_at.astimezone(UTC).date()
            group = (day, log.organization_id, log.provider, log.model, log.deployment)
            counts[group] = counts.get(group, 0) + 1
    return [
        UnpricedUsage(
            day=day,
            organization_id=organization_id,
            provider=provider,
            model=model,
            deployment=deployment,
            requests=requests,
        )
        for (day, organization_id, provider, model, deployment), requests in counts.items()
    ]


def _decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else max(int(value), 0)


def _request_log_from(*, event: dict[str, Any]) -> RequestLog:
    return RequestLog(
        request_id=str(event["request_id"])[:64],
        created_at=datetime.fromtimestamp(float(event["ts"]), tz=UTC),
        organization_id=event.get("organization_id"),
        team_id=event.get("team_id"),
        key_id=event.get("key_id"),
        user_id=event.get("user_id"),
        end_customer=(event.get("end_customer") or "")[:255],
        endpoint=str(event.get("endpoint", ""))[:64],
        model=str(event.get("model", ""))[:200],
        provider=str(event.get("provider", ""))[:50],
        deployment=str(event.get("deployment", ""))[:200],
        status_code=int(event.get("status_code", 0)),
        prompt_tokens=int(event.get("prompt_tokens", 0)),
        completion_tokens=int(event.get("completion_tokens", 0)),
        total_tokens=int(event.get("total_tokens", 0)),
        cost=Decimal(str(event.get("cost", "0"))),
        latency_ms=int(event.get("latency_ms", 0)),
        ttft_ms=_int_or_none(event.get("ttft_ms")),
        stream=bool(event.get("stream", False)),
        cancelled=bool(event.get("cancelled", False)),
        usage_estimated=bool(event.get("usage_estimated", False)),
        cache_hit=bool(event.get("cache_hit", False)),
        cache_result=str(event.get("cache_result") or "")[:16],
        cache_saved_cost=_decimal_or_none(event.get("cache_saved_cost")),
        cache_saved_tokens=_int_or_none(event.get("cache_saved_tokens")),
        cache_saved_latency_ms=_int_or_none(event.get("cache_saved_latency_ms")),
        tags=list(event.get("tags") or []),
        batch_id=str(event.get("batch_id") or "")[:64],
    )


def usage_buffer_flush(*, batch_size: int | None = None) -> int:
    """Write the in-process usage buffer (the embedded default, no Redis) in batches. Without
    Redis the dead-letter place is the log: a poison event is logged at ERROR with its payload."""
    size = batch_size or settings.OGEM_USAGE_BATCH_SIZE
    written = 0
    while True:
        raw = usage_buffer_take(limit=size)
        if not raw:
            return written
        try:
            with transaction.atomic():
                count, dead = usage_payloads_record(payloads=[("", item) for item in raw])
        except Exception:
            usage_buffer_return(raw)
            raise
        written += count
        _usage_dead_report(dead=dead, place="the log")


def usage_drain(
    *,
    batch_size: int | None = None,
    consumer: str | None = None,
    claim_idle_ms: int | None = None,
    max_batches: int = 100,
) -> int:
    """Move usage events into RequestLog; returns how many events were written.

    With Redis: first claims entries a dead consumer read but never acknowledged (XAUTOCLAIM,
    idle longer than ``claim_idle_ms``), then reads new ones (XREADGROUP). Each batch is one insert
    and is acknowledged (XACK, then XDEL) only after it committed, so a drain killed at any point
    loses nothing, and a batch written twice counts once. Without Redis: the in-process buffer.
    """
    if not settings.REDIS_URL:
        return usage_buffer_flush(batch_size=batch_size)
    client = redis_client_sync()
    stream = usage_stream_key()
    size = batch_size or settings.OGEM_USAGE_BATCH_SIZE
    idle = settings.OGEM_USAGE_CLAIM_IDLE_MS if claim_idle_ms is None else claim_idle_ms
    name = consumer or usage_consumer_name()
    _usage_group_ensure(client=client, stream=stream)
    written = 0
    start: bytes | str = "0-0"
    for _ in range(max_batches):
        reply = client.xautoclaim(stream, USAGE_GROUP, name, idle, start_id=start, count=size)
        start, entries = reply[0], reply[1]
        if entries:
            written += _usage_batch_write(client=client, stream=stream, entries=entries)
        if start in (b"0-0", "0-0"):
            break
    for _ in range(max_batches):
        reply = client.xreadgroup(USAGE_GROUP, name, {stream: ">"}, count=size)
        entries = reply[0][1] if reply else []
        if not entries:
            break
        written += _usage_batch_write(client=client, stream=stream, entries=entries)
    return written


def _usage_group_ensure(*, client: Any, stream: str) -> None:
    try:
        client.xgroup_create(stream, USAGE_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _usage_batch_write(*, client: Any, stream: str, entries: list[Any]) -> int:
    """Record one batch, then in one MULTI move its poison events to the dead-letter stream and
    acknowledge and delete all of it: nothing is retried forever, nothing is lost."""
    ids = []
    names = []
    payloads: list[tuple[str, bytes]] = []
    dead: list[DeadEvent] = []
    for entry_id, fields in entries:
        ids.append(entry_id)
        name = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        names.append(name)
        payload = (fields or {}).get(b"e") or (fields or {}).get("e")
        if payload is None:
            dead.append(DeadEvent(b"", "the entry has no event field", name))
            continue
        payloads.append((name, payload if isinstance(payload, bytes) else payload.encode()))
    with transaction.atomic():
        written, refused = usage_payloads_record(payloads=payloads)
    position = {name: index for index, name in enumerate(names)}
    dead = sorted([*dead, *refused], key=lambda event: position[event.source_id])
    dead_stream = usage_dead_stream()
    pipe = client.pipeline(transaction=True)
    for event in dead:
        pipe.xadd(dead_stream, {"e": event.payload, "error": event.error, "id": event.source_id})
    pipe.xack(stream, USAGE_GROUP, *ids)
    pipe.xdel(stream, *ids)
    pipe.execute()
    _usage_dead_report(dead=dead, place=dead_stream)
    return written


# ---- Budget periods --------------------------------------------------------------------------


def budget_live_spend(*, budget: Budget) -> Decimal | None:
    """The spend of the budget's current period from the live counter (None: no counter)."""
    from billing.selectors import budget_snapshot_from

    units = budget_counter_spend(
        key=budget_counter_key(snapshot=budget_snapshot_from(budget=budget))
    )
    return None if units is None else units_to_usd(units)


def key_period_spend_map(*, key_ids: list[int]) -> dict[int, Decimal]:
    """The current period's spend of each given key's own budget (keys with a limited budget
    only): the live counter's, which settles every request, else the persisted spend while the
    counter is unreadable (Redis away) or not started. One query and one round trip."""
    from billing.selectors import budget_snapshot_from

    budgets = list(
        Budget.objects.select_related("key")
        .filter(scope=BudgetScope.KEY, key_id__in=key_ids)
        .filter(Q(max_budget__isnull=False) | Q(soft_budget__isnull=False))
    )
    persisted = {budget.key_id: budget.spend for budget in budgets}
    counters = [
        budget_counter_key(snapshot=budget_snapshot_from(budget=budget)) for budget in budgets
    ]
    try:
        live = budget_counters_spend(keys=counters)
    except redis.exceptions.RedisError:
        logger.warning("key spend: the live budget counters are unreadable; persisted spend shown")
        return persisted
    for budget, units in zip(budgets, live, strict=True):
        if units is not None:
            persisted[budget.key_id] = units_to_usd(units)
    return persisted


def budget_periods_reset(*, now: datetime | None = None) -> int:
    """Persist every budget's live spend; start a new period where the old one ended.

    Returns how many periods were reset. The live counter of a new period is a new key (it is
    named by the period's start), so a reset never races with requests settling in the old one.
    While Redis is away the live spend cannot be read: the persisted spend stays as it is.
    """
    now = now or timezone.now()
    reset = 0
    budgets = Budget.objects.select_related("team", "key", "end_customer").filter(
        Q(max_budget__isnull=False) | Q(soft_budget__isnull=False)
    )
    for budget in budgets:
        try:
            live = budget_live_spend(budget=budget)
        except redis.exceptions.RedisError:
            logger.warning("budget %s: live spend unreadable (Redis away); kept", budget.pk)
            live = None
        if live is not None and live != budget.spend:
            budget.spend = live
            budget.save(update_fields=["spend", "updated_at"])
        if budget.soft_budget is not None and budget.spend >= budget.soft_budget:
            budget_soft_alert_enqueue(budget=budget)
        if budget.reset_at is not None and budget.reset_at <= now:
            _budget_reset(budget=budget)
            reset += 1
    if reset:
        # The web workers must count in the new periods at once, not a snapshot TTL later: one
        # broadcast for the whole run, not one per budget.
        broadcast_publish(topic=GOVERNANCE)
    return reset


def budget_soft_alert_enqueue(*, budget: Budget) -> bool:
    """Enqueue the soft-limit alert of the budget's current period, unless it went out already.

    The period is claimed with one conditional UPDATE, so concurrent beat runs (or workers)
    alert once; the tasks are enqueued only when the claim commits.
    """
    period = budget.period_started_at or budget.created_at
    claimed = (
        Budget.objects.filter(pk=budget.pk)
        .exclude(soft_alert_sent_for=period)
        .update(soft_alert_sent_for=period)
    )
    if not claimed:
        return False
    budget.soft_alert_sent_for = period
    arguments = {"budget_id": budget.pk, "spend": str(budget.spend)}
    transaction.on_commit(lambda: budget_alert_webhook.delay(**arguments))
    transaction.on_commit(lambda: budget_alert_email.delay(**arguments))
    return True


# LiteLLM's budget table (`/budget/*`): templates of limits, not budgets of an entity.
BUDGET_TEMPLATE_FIELDS = (
    "max_budget",
    "soft_budget",
    "duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
)


def budget_template_create(
    *, budget_id: str, created_by: str, values: dict[str, Any]
) -> BudgetTemplate:
    """Raises IntegrityError when the id is taken (the caller's transaction stays usable)."""
    with transaction.atomic():
        return BudgetTemplate.objects.create(
            budget_id=budget_id,
            created_by=created_by,
            **{k: v for k, v in values.items() if k in BUDGET_TEMPLATE_FIELDS},
        )


def budget_template_update(*, template: BudgetTemplate, values: dict[str, Any]) -> BudgetTemplate:
    for name, value in values.items():
        if name in BUDGET_TEMPLATE_FIELDS:
            setattr(template, name, value)
    template.save()
    return template


def budget_template_delete(*, template: BudgetTemplate) -> None:
    template.delete()

"""The guard stage of the /v1 pipeline (docs/guardrails.md, docs/architecture.md).

    guard_plan     which guardrails this request runs: the configuration's default_on ones
                   (less those its tenant switched off, unless enforced), its organization's,
                   team's and key's, its model group's, and those it asked for by name where
                   policy allows; None when there are none (the stage then costs nothing)
    guard_input    pre_call: block, mask (stable placeholders) or warn, before the call
    guard_during   during_call: the input checks run beside the upstream call, cancelled when
                   a check blocks
    guard_answer   post_call on a JSON answer, then the placeholders restored
    guard_chunks   the same on a stream: placeholders restored through a bounded hold-back
                   window, post_call checks before the finishing chunk; a block ends the stream
                   with an error event

Every decision is counted in Prometheus and recorded with the request's usage event (never the
matched text), which the usage drain writes as `billing.GuardrailDecision` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.config.types import GuardrailSettings, GuardrailSpec
from gateway.context import Caller, RequestContext
from gateway.errors import (
    GatewayError,
    GuardrailBlockedError,
    InvalidRequestError,
    PermissionDeniedError,
)
from gateway.guardrails.checks import DetectorCheck, check_for
from gateway.guardrails.masking import Masker, StreamRestorer, redact, spans_disjoint
from gateway.guardrails.pipeline import guard_caller_as, guard_inside
from gateway.guardrails.text import answer_slots, request_slots
from gateway.guardrails.types import BLOCK, DURING_CALL, MASK, POST_CALL, PRE_CALL, WARN, Finding
from ogem_site.metrics import guardrail_decision_record, refusal_record
from providers.base import Endpoint

logger = logging.getLogger(__name__)

FAILED = "CHECK_FAILED"  # the category of a check that failed or timed out
REALTIME_TEXT_PARTS = ("input_text", "text")  # a Realtime item's text content parts


@dataclass(slots=True)
class GuardPlan:
    pre: tuple[GuardrailSpec, ...] = ()
    during: tuple[GuardrailSpec, ...] = ()
    post: tuple[GuardrailSpec, ...] = ()
    caller: Caller | None = None  # on whose behalf checks that call a model group call it
    masker: Masker | None = None  # set once pre_call masked something
    restore: bool = False  # put the masked values back in the answer
    during_task: asyncio.Task[None] | None = None
    # (guardrail, phase, action, category) -> [count, highest confidence]
    decisions: dict[tuple[str, str, str, str], list[float]] = field(default_factory=dict)

    def decisions_list(self) -> list[dict[str, Any]]:
        return [
            {
                "guardrail": guardrail,
                "phase": phase,
                "action": action,
                "category": category,
                "count": int(count),
                "confidence": round(confidence, 3),
            }
            for (guardrail, phase, action, category), (count, confidence) in self.decisions.items()
        ]


def _requested(body: dict[str, Any]) -> tuple[list[str], dict[str, Any] | None]:
    """The guardrails a request asks for (`guardrails` in the body or in `metadata`), and the
    body without them (None when it had none): they are Ogem's, never sent upstream."""
    names: list[str] = []
    cleaned: dict[str, Any] | None = None
    if "guardrails" in body:
        names.extend(_names(body["guardrails"]))
        cleaned = {k: v for k, v in body.items() if k != "guardrails"}
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "guardrails" in metadata:
        names.extend(_names(metadata["guardrails"]))
        cleaned = dict(cleaned if cleaned is not None else body)
        rest = {k: v for k, v in metadata.items() if k != "guardrails"}
        if rest:
            cleaned["metadata"] = rest
        else:
            cleaned.pop("metadata", None)
    return names, cleaned


def _names(value: Any) -> list[str]:
    # A list of names, or LiteLLM's {"name": true} form.
    if isinstance(value, dict):
        return [str(name) for name, on in value.items() if on]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidRequestError("`guardrails` must be a list of guardrail names.", param="guardrails")


def guard_plan(
    ctx: RequestContext, *, settings: GuardrailSettings | None, body: dict[str, Any]
) -> tuple[GuardPlan | None, dict[str, Any]]:
    """The request's guardrails, and its body without Ogem's `guardrails` fields."""
    requested, cleaned = _requested(body)
    if guard_inside():  # a guardrail's own model call is not guarded again
        return None, cleaned if cleaned is not None else body
    tenant = ctx.caller.guardrails
    specs = settings.guardrails if settings is not None else {}
    organization_id = ctx.caller.organization_id

    def visible(spec: GuardrailSpec | None) -> bool:
        # An organization's own guardrail (admin-defined) exists for its requests only.
        return spec is not None and spec.organization_id in (None, organization_id)

    chosen: dict[str, GuardrailSpec] = {}
    if settings is not None:
        off = set(tenant.get("off") or ())
        for name in settings.default_on:
            spec = specs[name]
            if (spec.enforced or name not in off) and visible(spec):
                chosen[name] = spec
        for name in settings.model_groups.get(ctx.model, ()):
            if visible(specs[name]):
                chosen[name] = specs[name]
    for name in tenant.get("on") or ():
        spec = specs.get(name)
        if spec is None or not visible(spec):  # fail closed: a tenant's guardrail not configured
            logger.error("guardrail %r attached to a tenant is not configured", name)
            raise GatewayError(f"The guardrail '{name}' this key requires is not configured.")
        chosen[name] = spec
    optional = set(tenant.get("optional") or ())
    for name in requested:
        spec = specs.get(name)
        if spec is None or not visible(spec):
            raise InvalidRequestError(f"No guardrail named '{name}'.", param="guardrails")
        if not spec.requestable and name not in optional:
            raise PermissionDeniedError(
                f"This key may not request the guardrail '{name}'.", param="guardrails"
            )
        chosen[name] = spec
    body = cleaned if cleaned is not None else body
    if not chosen:
        return None, body
    plan = GuardPlan(
        pre=tuple(s for s in chosen.values() if PRE_CALL in s.modes),
        during=tuple(s for s in chosen.values() if DURING_CALL in s.modes),
        post=tuple(s for s in chosen.values() if POST_CALL in s.modes),
        caller=ctx.caller,
    )
    return plan, body


# ---- running checks ------------------------------------------------------------------------------


async def _scan(spec: GuardrailSpec, texts: Sequence[str], phase: str) -> list[Finding]:
    check = check_for(spec)
    if isinstance(check, DetectorCheck):
        return check.find(texts)  # built-in: microseconds, no task nor timeout needed
    try:
        async with asyncio.timeout(spec.timeout):
            return await check.scan(texts, phase=phase)
    except (Exception, TimeoutError) as exc:
        if isinstance(exc, GatewayError):
            raise
        logger.warning("guardrail %s failed (%s)", spec.name, type(exc).__name__)
        return [] if spec.fail_open else [Finding(FAILED, 1.0, action=BLOCK)]


async def _scan_all(
    plan: GuardPlan, specs: Sequence[GuardrailSpec], texts: Sequence[str], phase: str
) -> list[tuple[GuardrailSpec, list[Finding]]]:
    with guard_caller_as(plan.caller or Caller()):
        if len(specs) == 1:
            return [(specs[0], await _scan(specs[0], texts, phase))]
        results = await asyncio.gather(*(_scan(spec, texts, phase) for spec in specs))
        return list(zip(specs, results, strict=True))


def _record(
    plan: GuardPlan, spec: GuardrailSpec, phase: str, action: str, finding: Finding
) -> None:
    key = (spec.name, phase, action, finding.category)
    entry = plan.decisions.get(key)
    if entry is None:
        plan.decisions[key] = [1, finding.confidence]
        guardrail_decision_record(
            guardrail=spec.name, phase=phase, action=action, category=finding.category
        )
    else:
        entry[0] += 1
        entry[1] = max(entry[1], finding.confidence)


def _blocked(
    spec: GuardrailSpec, finding: Finding, *, answer: bool = False
) -> GuardrailBlockedError:
    what = "answer" if answer else "request"
    refusal_record(reason="guardrail", rule=spec.name)
    return GuardrailBlockedError(
        f"The {what} was blocked by the guardrail '{spec.name}' (category: {finding.category})."
    )


def _decide(
    plan: GuardPlan,
    results: Iterable[tuple[GuardrailSpec, list[Finding]]],
    phase: str,
    *,
    can_mask: bool,
    answer: bool = False,
) -> dict[int, list[Finding]]:
    """Record every finding's decision; raise on the first block; return the located findings
    to mask, by text. A finding that should mask but cannot (no span, or a phase that cannot
    change the text) blocks: a guardrail never lets through what it was told to hide."""
    block: tuple[GuardrailSpec, Finding] | None = None
    masks: dict[int, list[Finding]] = {}
    for spec, findings in results:
        for finding in findings:
            action = finding.action or spec.action
            if action == MASK and not (can_mask and finding.located):
                action = BLOCK
            _record(plan, spec, phase, action, finding)
            if action == BLOCK and block is None:
                block = (spec, finding)
            elif action == MASK:
                masks.setdefault(finding.text, []).append(finding)
    if block is not None:
        raise _blocked(*block, answer=answer)
    return masks


async def guard_input(ctx: RequestContext, plan: GuardPlan, body: dict[str, Any]) -> dict[str, Any]:
    """pre_call: the body to send (masked when a guardrail masked), or GuardrailBlockedError.
    Also starts the during_call checks (guard_during awaits them)."""
    slots = request_slots(ctx.endpoint, body)
    if not slots:
        return body
    texts = [container[key] for container, key in slots]
    if plan.during:
        plan.during_task = asyncio.ensure_future(_during(plan, texts))
    if not plan.pre:
        return body
    masks = _decide(plan, await _scan_all(plan, plan.pre, texts, PRE_CALL), PRE_CALL, can_mask=True)
    if not masks:
        return body
    masked = orjson.loads(orjson.dumps(body))  # the client's body stays as it came
    masked_slots = request_slots(ctx.endpoint, masked)
    plan.masker = Masker()
    plan.restore = any(spec.restore for spec in plan.pre)
    for index, findings in masks.items():
        container, key = masked_slots[index]
        container[key] = plan.masker.mask(container[key], spans_disjoint(findings))
    return masked


async def _during(plan: GuardPlan, texts: list[str]) -> None:
    _decide(
        plan, await _scan_all(plan, plan.during, texts, DURING_CALL), DURING_CALL, can_mask=False
    )


async def guard_during(ctx: RequestContext, plan: GuardPlan, call: Awaitable[Any]) -> Any:
    """Run `call` (the upstream attempt) beside the during_call checks: a block cancels the
    call; a call that ends first waits for the checks (a stream's first chunk waits in
    guard_chunks, so a stream is never answered before its checks passed)."""
    check = plan.during_task
    upstream = asyncio.ensure_future(call)
    if check is None:
        return await upstream
    try:
        await asyncio.wait({upstream, check}, return_when=asyncio.FIRST_COMPLETED)
        if check.done() and check.exception() is not None:
            upstream.cancel()
            with contextlib.suppress(BaseException):
                await upstream
            raise check.exception()  # type: ignore[misc]
        result = await upstream
        await check
        return result
    finally:
        for task in (upstream, check):
            if not task.done():
                task.cancel()


# ---- answers ---------------------------------------------------------------------------------


async def guard_answer(ctx: RequestContext, plan: GuardPlan, answer: dict[str, Any]) -> None:
    """post_call on a JSON answer (in place): block, redact or warn, then restore the request's
    placeholders for the caller."""
    slots = answer_slots(ctx.endpoint, answer)
    if not slots:
        return
    if plan.post:
        texts = [container[key] for container, key in slots]
        results = await _scan_all(plan, plan.post, texts, POST_CALL)
        masks = _decide(plan, results, POST_CALL, can_mask=True, answer=True)
        for index, findings in masks.items():
            container, key = slots[index]
            container[key] = redact(container[key], spans_disjoint(findings))
    if plan.masker is not None and plan.restore:
        for container, key in slots:
            container[key] = plan.masker.restore(container[key])


def _chunk_slot(choice: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return delta, "content"
    if "text" in choice:
        return choice, "text"
    return None


async def guard_chunks(
    ctx: RequestContext, plan: GuardPlan, upstream: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """A chat or completions stream through the guard: the first chunk waits for the
    during_call checks; text is restored through the hold-back window; post_call checks read the
    whole answer before its finishing chunk passes (a block raises GuardrailBlockedError, which
    sse_relay sends as an error event)."""
    restorer = StreamRestorer(plan.masker) if plan.masker is not None and plan.restore else None
    texts: dict[int, list[str]] = {}
    checked = False
    last: dict[str, Any] | None = None
    try:
        async for chunk in upstream:
            if last is None and plan.during_task is not None:
                await plan.during_task
            last = chunk
            finishing = False
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                index = choice.get("index", 0)
                slot = _chunk_slot(choice)
                text = slot[0].get(slot[1]) if slot is not None else None
                if isinstance(text, str) and text:
                    if plan.post:
                        texts.setdefault(index, []).append(text)
                    if restorer is not None:
                        slot[0][slot[1]] = restorer.feed(index, text)  # type: ignore[index]
                if choice.get("finish_reason"):
                    finishing = True
                    if restorer is not None and slot is not None and index in restorer.pending:
                        # What the window still holds goes out after this chunk's own text.
                        holder, key = slot
                        holder[key] = (holder.get(key) or "") + restorer.flush(index)
            if finishing and plan.post and not checked:
                checked = True
                await _stream_post(plan, texts)
            yield chunk
        if plan.post and not checked:
            await _stream_post(plan, texts)
        if restorer is not None and restorer.pending and last is not None:
            yield _tail_chunk(last, restorer, chat=ctx.endpoint != Endpoint.COMPLETIONS)
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


async def _stream_post(plan: GuardPlan, texts: dict[int, list[str]]) -> None:
    whole = ["".join(parts) for _, parts in sorted(texts.items())]
    # The text is on its way already: a mask can only be recorded (as a warning), not applied.
    results = [
        (spec, [f if (f.action or spec.action) != MASK else _as_warn(f) for f in found])
        for spec, found in await _scan_all(plan, plan.post, whole, POST_CALL)
    ]
    _decide(plan, results, POST_CALL, can_mask=False, answer=True)


def _as_warn(finding: Finding) -> Finding:
    return Finding(
        finding.category, finding.confidence, finding.text, finding.start, finding.end, WARN
    )


def _tail_chunk(last: dict[str, Any], restorer: StreamRestorer, *, chat: bool) -> dict[str, Any]:
    """What the hold-back window still keeps when a stream ends without a finishing chunk."""
    chunk = {name: last[name] for name in ("id", "object", "created", "model") if name in last}
    choices = []
    for index in sorted(restorer.pending):
        text = restorer.flush(index)
        choices.append(
            {"index": index, "delta": {"content": text}, "finish_reason": None}
            if chat
            else {"index": index, "text": text, "finish_reason": None}
        )
    chunk["choices"] = choices
    return chunk


# ---- Realtime ------------------------------------------------------------------------------------


def _realtime_slots(event: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    item = event.get("item")
    if not isinstance(item, dict):
        return []
    return [
        (part, "text")
        for part in item.get("content") or ()
        if isinstance(part, dict)
        and part.get("type") in REALTIME_TEXT_PARTS
        and isinstance(part.get("text"), str)
    ]


async def guard_realtime_item(plan: GuardPlan, event: dict[str, Any]) -> dict[str, Any]:
    """The pre_call and during_call checks on the text a Realtime client adds to the conversation
    (`conversation.item.create`'s text parts): the event to forward (masked when a guardrail
    masked; Realtime answers are not restored), or GuardrailBlockedError. An item goes upstream
    only once its checks passed, so during_call checks run as pre_call ones here."""
    specs = tuple({spec.name: spec for spec in (*plan.pre, *plan.during)}.values())
    slots = _realtime_slots(event)
    if not specs or not slots:
        return event
    texts = [container[key] for container, key in slots]
    results = await _scan_all(plan, specs, texts, PRE_CALL)
    masks = _decide(plan, results, PRE_CALL, can_mask=True)
    if not masks:
        return event
    masked = orjson.loads(orjson.dumps(event))
    masked_slots = _realtime_slots(masked)
    if plan.masker is None:
        plan.masker = Masker()  # one per session: a value keeps its placeholder across items
    for index, findings in masks.items():
        container, key = masked_slots[index]
        container[key] = plan.masker.mask(container[key], spans_disjoint(findings))
    return masked


def guard_decisions_take(plan: GuardPlan) -> GuardPlan | None:
    """A Realtime session's decisions so far, moved to a plan of their own (recorded with the
    session's next response), or None."""
    if not plan.decisions:
        return None
    taken = GuardPlan(decisions=plan.decisions)
    plan.decisions = {}
    return taken


def guard_decisions(ctx: RequestContext) -> list[dict[str, Any]]:
    """The request's decisions, for its usage event ([] without any)."""
    plan = ctx.guard
    return plan.decisions_list() if plan is not None and plan.decisions else []

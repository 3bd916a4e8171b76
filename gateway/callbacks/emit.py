"""The callback event of a finished /v1 request, and which sinks it goes to.

The relay (gateway/relay.py) asks `callbacks_plan` once per request; None (no callback configured,
no team or key `logging`) means the request does nothing more for callbacks. Otherwise, when the
request has settled (a stream: when it ended), `callbacks_emit` reads the request's event off its
context (a tuple of raw facts) and hands it to this process's dispatcher, whose delivery process
makes the `CallbackEvent` and delivers it (dispatcher.py, deliver.py).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from gateway.callbacks.base import CallbackError, EventValues
from gateway.callbacks.dispatcher import dispatcher_submit
from gateway.callbacks.registry import SINKS
from gateway.callbacks.settings import CallbackSettings, SinkSpec

if TYPE_CHECKING:
    from gateway.context import Caller, RequestContext

logger = logging.getLogger(__name__)

# LiteLLM's callback_type values of a team's `logging` entry.
_TYPES = {"success": (True, False), "failure": (False, True), "success_and_failure": (True, True)}
ENV_PREFIX = "os.environ/"


@dataclass(frozen=True, slots=True)
class CallbackPlan:
    """Where one request's event goes: sinks for a success, sinks for a failure."""

    success: tuple[SinkSpec, ...]
    failure: tuple[SinkSpec, ...]
    message_logging: bool
    settings: CallbackSettings | None


# The last configuration's plan for callers without `logging` (most): (settings, plan).
_last: tuple[CallbackSettings | None, CallbackPlan | None] = (None, None)


def callbacks_plan(*, settings: CallbackSettings | None, caller: Caller) -> CallbackPlan | None:
    global _last
    if not caller.logging:
        last = _last
        if settings is last[0]:  # the same configuration as the last request's
            return last[1]
        plan = None if settings is None or not settings.active else _global_plan(settings)
        _last = (settings, plan)
        return plan
    try:
        key = orjson.dumps(caller.logging, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _global_plan(settings) if settings is not None and settings.active else None
    return _team_plan(settings, key)


@functools.lru_cache(maxsize=8)
def _global_plan(settings: CallbackSettings) -> CallbackPlan:
    return CallbackPlan(
        success=tuple(settings.sinks[name] for name in settings.success if name in settings.sinks),
        failure=tuple(settings.sinks[name] for name in settings.failure if name in settings.sinks),
        message_logging=settings.message_logging,
        settings=settings,
    )


@functools.lru_cache(maxsize=1024)
def _team_plan(settings: CallbackSettings | None, key: bytes) -> CallbackPlan | None:
    """The configuration's sinks, with a team's or key's `logging` entries added; an entry named
    like a configured sink replaces it (the team's events go to its own Langfuse project)."""
    success: dict[str, SinkSpec] = {}
    failure: dict[str, SinkSpec] = {}
    if settings is not None:
        base = _global_plan(settings)
        success.update((spec.name, spec) for spec in base.success)
        failure.update((spec.name, spec) for spec in base.failure)
    for entry in orjson.loads(key):
        name = entry.get("callback_name")
        if not isinstance(name, str) or name not in SINKS:
            continue
        on_success, on_failure = _TYPES.get(str(entry.get("callback_type") or ""), (True, True))
        spec = SinkSpec(
            name=name, kind=name, settings=_vars(entry.get("callback_vars")), untrusted=True
        )
        for wanted, into in ((on_success, success), (on_failure, failure)):
            into.pop(name, None)
            if wanted:
                into[name] = spec
    if not success and not failure:
        return None
    return CallbackPlan(
        success=tuple(success.values()),
        failure=tuple(failure.values()),
        message_logging=settings.message_logging if settings is not None else True,
        settings=settings,
    )


def _vars(value: Any) -> dict[str, str]:
    """callback_vars: strings, `os.environ/NAME` read from Ogem's environment (LiteLLM's
    meaning: an operator puts a team's keys in the environment and names them)."""
    import os

    settings: dict[str, str] = {}
    if not isinstance(value, dict):
        return settings
    for name, item in value.items():
        if item is None:
            continue
        text = str(item)
        if text.startswith(ENV_PREFIX):
            text = os.environ.get(text.removeprefix(ENV_PREFIX), "")
            if not text:
                continue
        settings[str(name).lower()] = text
    return settings


def callbacks_emit(
    ctx: RequestContext, plan: CallbackPlan, *, body: dict[str, Any] | None, cost: Decimal
) -> None:
    """Build the request's event and queue it for its sinks; never raises, never waits."""
    failed = ctx.error is not None or ctx.status_code >= 400 or ctx.cancelled
    sinks = plan.failure if failed else plan.success
    if not sinks:
        return
    try:
        event = _event(ctx, cost, body if plan.message_logging else None)
    except Exception:
        logger.exception("callback event of request %s not built", ctx.request_id)
        return
    dispatcher_submit(event, sinks, plan.settings)


def _error_of(ctx: RequestContext) -> CallbackError | None:
    error = ctx.error
    if error is None:
        if ctx.cancelled:  # a stream whose client left (nginx's 499: client closed request)
            return {"type": "cancelled", "message": "the client went away", "status": 499}
        if ctx.status_code < 400:
            return None
        return {"type": "api_error", "message": "", "status": ctx.status_code}
    status = int(getattr(error, "status", 0) or ctx.status_code or 500)
    kind = getattr(error, "error_type", None) or getattr(error, "type", None)
    if not isinstance(kind, str):
        kind = "cancelled" if ctx.cancelled else type(error).__name__
    return {"type": kind, "message": str(error)[:1000], "status": status}


def event_build(ctx: RequestContext, *, cost: Decimal, body: dict[str, Any] | None) -> EventValues:
    """The request's event as the delivery process takes it (base.EVENT_FIELDS' order): the raw
    facts, read off the context; the process makes the `CallbackEvent` (`event_from_values`)."""
    return _event(ctx, cost, body)


def _event(ctx: RequestContext, cost: Decimal, body: dict[str, Any] | None) -> EventValues:
    """`event_build`'s, its arguments positional (the request path's: a cheaper call)."""
    usage = ctx.usage
    caller = ctx.caller
    deployment = ctx.deployment
    # A success needs no _error_of call (most requests)
    if ctx.error is None and not ctx.cancelled and ctx.status_code < 400:
        error = None
    else:
        error = _error_of(ctx)
    now = time.time()
    latency = max(time.perf_counter() - ctx.started_at, 0.0)
    output = ctx.callback_output
    if type(output) is StreamText:
        output = output.result()
    if body is None:
        metadata = None
        logged_input = logged_output = ...
    else:
        metadata = body.get("metadata")
        # _input_of's first name inline: a chat's
        logged_input = body["messages"] if "messages" in body else _input_of(body)
        if output is None:
            logged_output = ...
        elif ctx.guard is None and type(output) is dict:  # _output_of's, with nothing to remask
            logged_output = output.get("choices", output.get("data"))
        else:
            logged_output = _output_of(ctx, output)
    return (
        "failure" if error is not None else "success",
        ctx.request_id,
        ctx.trace_id,
        ctx.span_id,
        now - latency,
        now,
        str(ctx.recorded_as or ctx.endpoint),
        ctx.model,
        str(output.get("model") or "") if isinstance(output, dict) else "",
        deployment.provider if deployment is not None else "",
        deployment.id if deployment is not None else "",
        error["status"] if error is not None else ctx.status_code,
        ctx.stream,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        usage.cached_tokens,
        str(cost),
        int(latency * 1000),
        None if ctx.first_token_seconds is None else max(int(ctx.first_token_seconds * 1000), 0),
        ctx.cache_status in ("hit", "semantic-hit"),
        caller.organization_id,
        caller.team_id,
        caller.key_id,
        caller.key_name,
        caller.user_id,
        ctx.end_customer or "",
        (caller.tags, ctx.tags) if caller.tags or ctx.tags else (),
        dict(metadata) if isinstance(metadata, dict) else {},
        error,
        logged_input,
        logged_output,
    )


def _input_of(body: dict[str, Any]) -> Any:
    for name in ("messages", "prompt", "input", "query"):
        if name in body:
            return body[name]
    return None


def _output_of(ctx: RequestContext, output: Any) -> Any:
    """The answer's choices (or data); masked values masked again (the caller saw them restored,
    the sinks see the placeholders that went upstream)."""
    if isinstance(output, dict):
        output = output.get("choices", output.get("data"))
    masker = getattr(ctx.guard, "masker", None) if ctx.guard is not None else None
    if masker is not None and masker.by_value:
        output = _remask(output, masker.by_value)
    return output


def _remask(value: Any, by_value: dict[tuple[str, str], str]) -> Any:
    if isinstance(value, str):
        for (_, original), placeholder in by_value.items():
            if original in value:
                value = value.replace(original, f"<{placeholder}>")
        return value
    if isinstance(value, list):
        return [_remask(item, by_value) for item in value]
    if isinstance(value, dict):
        return {key: _remask(item, by_value) for key, item in value.items()}
    return value


class StreamText:
    """A stream observer (gateway.streaming.ChunkObserver) that keeps what the sinks log of a
    streamed answer: each choice's text and finish reason, the model. It is the request's
    `callback_output` until the event is built."""

    __slots__ = ("_choices", "_model")

    def __init__(self, ctx: RequestContext) -> None:
        self._choices: dict[int, dict[str, Any]] = {}
        self._model = ""
        ctx.callback_output = self

    def add(self, chunk: dict[str, Any], usage: dict[str, Any] | None) -> None:
        if not self._model and isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            kept = self._choices.get(index)
            if kept is None:
                kept = self._choices[index] = {
                    "index": index,
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                }
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str):
                kept["message"]["content"] += text
            if choice.get("finish_reason") is not None:
                kept["finish_reason"] = choice["finish_reason"]

    def finish(self) -> None:
        pass

    def result(self) -> dict[str, Any]:
        return {"model": self._model, "choices": list(self._choices.values())}

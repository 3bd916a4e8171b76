"""Guardrails that ask a model group configured in Ogem (`openai_moderation`, `llm_judge`) call it
through Ogem's own /v1 pipeline on the caller's behalf, as the semantic cache embeds: the caller's
routing, limits and budgets apply and the call is the caller's (its cost, its RequestLog).

The pipeline runs the guard stage, so it cannot be imported here: gateway/internal.py hands its
`internal_call` over with `guard_pipeline_set`. The caller is carried by a context variable the
stage sets around its checks, and a request a guardrail makes runs no guardrail itself (a
`default_on` judge would otherwise judge its own prompt, forever).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from gateway.context import Caller
from gateway.semantic import embedding_caller
from providers.base import Endpoint

InternalCall = Callable[..., Awaitable[Any]]  # gateway.internal.internal_call

_call: InternalCall | None = None
_caller: ContextVar[Caller | None] = ContextVar("ogem_guard_caller", default=None)
_inside: ContextVar[bool] = ContextVar("ogem_guard_inside", default=False)


class PipelineError(Exception):
    """The model group answered an error (its status and OpenAI error code), or there is none."""


def guard_pipeline_set(call: InternalCall) -> None:
    global _call
    _call = call


def guard_inside() -> bool:
    """True in a request a guardrail made: it runs no guardrail."""
    return _inside.get()


@contextlib.contextmanager
def guard_caller_as(caller: Caller) -> Iterator[None]:
    """The caller whose checks run inside (their model calls are made on its behalf)."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


async def pipeline_call(*, endpoint: Endpoint, model: str, body: Mapping[str, Any]) -> Any:
    """`body` sent to the model group `model` as the current caller; its JSON answer."""
    caller = _caller.get()
    if _call is None or caller is None:
        raise PipelineError("no /v1 pipeline in this process")
    token = _inside.set(True)
    try:
        answer = await _call(
            caller=embedding_caller(caller, model),
            endpoint=endpoint,
            body={**body, "model": model},
        )
    finally:
        _inside.reset(token)
    if not answer.ok:
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        raise PipelineError(f"model group {model!r} answered {answer.status} ({code})")
    return answer.body

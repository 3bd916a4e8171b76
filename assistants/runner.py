"""Advancing a run: the thread's messages (and the run's tool calls so far) as one chat
completion through Ogem's /v1 pipeline as the run's caller (`gateway.internal.internal_call`:
routing, limits, budgets, accounting), its answer written back as a message or a tool-call step.

`run_advance` yields OpenAI's stream events as it goes (a streaming request sends them; a Celery
task drops them). It is idempotent: it first takes the run (`run_claim`, a hold with a lease), so
a run is advanced by one worker at a time, and a run whose worker died is taken again once the
hold lapsed (beat's sweep, or the next read). Every write checks the hold is still this worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from assistants.models import Message, Run, RunStep
from assistants.records import message_write, object_id_new, run_expiry
from assistants.selectors import (
    RUN_ENDED,
    message_object,
    messages_for_run,
    run_object,
    run_step_object,
    run_steps_of,
)
from gateway.blocking import blocking_run
from gateway.context import Caller
from gateway.errors import GatewayError
from providers.base import Endpoint

logger = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]
# Model calls one advance makes at most: each file_search answer needs one more.
ROUNDS_MAX = 8
FILE_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "file_search",
        "description": "Search the files attached to this conversation for passages that answer "
        "a query.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to search for."}},
            "required": ["query"],
        },
    },
}
_ZERO = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _lease() -> timedelta:
    return timedelta(seconds=settings.OGEM_ASSISTANTS_RUN_LEASE_SECONDS)


# ---- holding the run ----------------------------------------------------------------------------


def run_claim(*, run_id: str, owner: str) -> Run | None:
    """Take the run for `owner`: a queued run starts, one in progress whose hold lapsed is
    resumed; a cancelling one no worker holds is cancelled and one past `expires_at` expired
    (returned ended, for their events). None: nothing for this worker to do."""
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(run_id=run_id).first()
        if run is None or run.status in RUN_ENDED or run.status == Run.Status.REQUIRES_ACTION:
            return None
        held = run.lease_expires_at is not None and run.lease_expires_at > now
        if run.lease_owner and run.lease_owner != owner and held:
            return None
        if run.expires_at is not None and run.expires_at <= now:
            _end(run, Run.Status.EXPIRED, now)
        elif run.status == Run.Status.CANCELLING:
            _end(run, Run.Status.CANCELLED, now)
        else:
            run.status = Run.Status.IN_PROGRESS
            run.started_at = run.started_at or now
            run.lease_owner = owner
            run.lease_expires_at = now + _lease()
            run.save(update_fields=["status", "started_at", "lease_owner", "lease_expires_at"])
    return Run.objects.select_related("thread").get(pk=run.pk)


def _end(run: Run, status: str, now: Any, **fields: Any) -> None:
    """Write an ended run (locked by the caller); its unfinished steps end with it."""
    run.status = status
    run.lease_owner = ""
    run.required_action = None
    moment = {
        Run.Status.CANCELLED: "cancelled_at",
        Run.Status.FAILED: "failed_at",
        Run.Status.COMPLETED: "completed_at",
        Run.Status.INCOMPLETE: "completed_at",
    }.get(status)
    if moment:
        setattr(run, moment, now)
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()
    step_status = {
        Run.Status.CANCELLED: ("cancelled", "cancelled_at"),
        Run.Status.EXPIRED: ("expired", "expired_at"),
        Run.Status.FAILED: ("failed", "failed_at"),
    }.get(status)
    if step_status:
        RunStep.objects.filter(run=run, status="in_progress").update(
            status=step_status[0], **{step_status[1]: now}
        )


def _locked(run_id: str, owner: str) -> Run | None:
    """The run locked for a write, when this worker still holds it."""
    run = Run.objects.select_for_update().select_related("thread").filter(run_id=run_id).first()
    if (
        run is None
        or run.lease_owner != owner
        or run.status
        not in (
            Run.Status.IN_PROGRESS,
            Run.Status.CANCELLING,
        )
    ):
        return None
    return run


def run_checkpoint(*, run_id: str, owner: str) -> Run | None:
    """Before a model call: renew the hold; a run asked to stop (or expired) ends here. None:
    the hold was lost."""
    now = timezone.now()
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return None
        if run.status == Run.Status.CANCELLING:
            _end(run, Run.Status.CANCELLED, now)
        elif run.expires_at is not None and run.expires_at <= now:
            _end(run, Run.Status.EXPIRED, now)
        else:
            run.lease_expires_at = now + _lease()
            run.save(update_fields=["lease_expires_at"])
    return run


def _usage_add(total: dict[str, Any] | None, call: dict[str, Any] | None) -> dict[str, int]:
    total = total or _ZERO
    call = call or {}
    return {
        name: int(total.get(name) or 0) + int(call.get(name) or 0)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def _call_usage(answer: dict[str, Any]) -> dict[str, int]:
    usage = answer.get("usage") or {}
    return _usage_add(None, usage if isinstance(usage, dict) else None)


# ---- the chat request ---------------------------------------------------------------------------


def _content_for_chat(message: Message) -> str | list[dict[str, Any]]:
    texts: list[str] = []
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if part.get("type") == "text":
            texts.append(part["text"]["value"])
            parts.append({"type": "text", "text": part["text"]["value"]})
        elif part.get("type") == "image_url" and message.role == "user":
            parts.append({"type": "image_url", "image_url": part["image_url"]})
        # image_file parts stay on the message; they are not sent to the model (docs).
    if all(part["type"] == "text" for part in parts):
        return "\n".join(texts)
    return parts


def chat_body_build(*, run: Run) -> dict[str, Any]:
    """The chat completion request for the run's next model call."""
    messages: list[dict[str, Any]] = []
    if run.instructions:
        messages.append({"role": "system", "content": run.instructions})
    last = (run.truncation_strategy or {}).get("last_messages")
    for message in messages_for_run(thread=run.thread, last=last):
        if message.run_id == run.run_id:
            continue
        messages.append({"role": message.role, "content": _content_for_chat(message)})
    for step in run_steps_of(run=run):
        messages.extend(step.conversation)
    body: dict[str, Any] = {"model": run.model, "messages": messages}
    tools = [tool for tool in run.tools if tool["type"] == "function"]
    if _file_search(run) is not None:
        tools.append(FILE_SEARCH_TOOL)
    if tools:
        body["tools"] = tools
        choice = run.tool_choice
        if isinstance(choice, dict) and choice.get("type") == "file_search":
            choice = {"type": "function", "function": {"name": "file_search"}}
        if choice is not None:
            body["tool_choice"] = choice
        body["parallel_tool_calls"] = run.parallel_tool_calls
    for name in ("temperature", "top_p", "response_format", "reasoning_effort"):
        value = getattr(run, name)
        if value is not None:
            body[name] = value
    if run.max_completion_tokens is not None:
        used = int((run.usage or {}).get("completion_tokens") or 0)
        body["max_completion_tokens"] = max(1, run.max_completion_tokens - used)
    return body


def _file_search(run: Run) -> dict[str, Any] | None:
    """The run's file_search options when it has the tool and vector stores to search."""
    stores = (run.tool_resources.get("file_search") or {}).get("vector_store_ids") or []
    for tool in run.tools:
        if tool["type"] == "file_search" and stores:
            return {**tool["file_search"], "vector_store_ids": stores}
    return None


async def file_search_run(
    *, caller: Caller, options: dict[str, Any], arguments: str
) -> tuple[list[dict[str, Any]], str]:
    """One file_search call: the step's results (OpenAI's shape) and the text the model reads.
    Vector stores are the `vector_stores` app's (imported on use: it is optional here)."""
    try:
        from vector_stores.search import vector_stores_search  # type: ignore[import-not-found]
    except ImportError as error:
        raise GatewayError(
            "file_search is not available on this server (no vector stores)."
        ) from error

    try:
        query = orjson.loads(arguments or "{}").get("query")
    except (orjson.JSONDecodeError, AttributeError):
        query = None
    if not isinstance(query, str) or not query.strip():
        return [], "file_search needs a non-empty `query`."
    ranking = options.get("ranking_options") or {}
    hits = await vector_stores_search(
        caller=caller,
        vector_store_ids=list(options["vector_store_ids"]),
        query=query,
        max_num_results=int(options.get("max_num_results") or 20),
        score_threshold=float(ranking.get("score_threshold") or 0.0),
    )
    results: list[dict[str, Any]] = []
    blocks: list[str] = []
    for hit in hits:
        content = [
            {"type": "text", "text": part.get("text", "")}
            for part in hit.get("content") or []
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        name = hit.get("filename") or hit.get("file_name") or ""
        results.append(
            {
                "file_id": hit.get("file_id", ""),
                "file_name": name,
                "score": float(hit.get("score") or 0.0),
                "content": content,
            }
        )
        text = "\n".join(part["text"] for part in content)
        blocks.append(f"[{name or hit.get('file_id', '')}] (score {hit.get('score')})\n{text}")
    return results, "\n\n".join(blocks) if blocks else "No results."


# ---- writing answers ----------------------------------------------------------------------------


def run_fail(
    *,
    run_id: str,
    owner: str,
    code: str,
    message: str,
    usage: dict[str, Any] | None = None,
    streamed_message: tuple[str, str, str] | None = None,
) -> tuple[Run | None, Message | None, RunStep | None]:
    """The run fails (is cancelled, when asked to stop meanwhile). `streamed_message`: (message
    id, step id, text) of a message a stream was showing, written incomplete with its completed
    step, so that the thread holds what the client saw."""
    written = step = None
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return None, None, None
        total = _usage_add(run.usage, usage) if usage else run.usage
        if streamed_message is not None:
            written, step = _shown_write(run, streamed_message, usage=usage)
        if run.status == Run.Status.CANCELLING:
            _end(run, Run.Status.CANCELLED, timezone.now(), usage=total)
        else:
            _end(
                run,
                Run.Status.FAILED,
                timezone.now(),
                last_error={"code": code, "message": message},
                usage=total,
            )
    return run, written, step


def run_incomplete(
    *,
    run_id: str,
    owner: str,
    reason: str,
    usage: dict[str, Any],
    streamed_message: tuple[str, str, str] | None = None,
) -> tuple[Run | None, Message | None, RunStep | None]:
    """The run ends incomplete (`max_prompt_tokens`; cancelled, when asked to stop meanwhile).
    `streamed_message`: as `run_fail`'s."""
    message = step = None
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return None, None, None
        status = Run.Status.CANCELLED if run.status == Run.Status.CANCELLING else None
        if streamed_message is not None:
            message, step = _shown_write(
                run, streamed_message, usage=_usage_add(None, usage), reason="max_tokens"
            )
        _end(
            run,
            status or Run.Status.INCOMPLETE,
            timezone.now(),
            usage=_usage_add(run.usage, usage),
            incomplete_details=None if status else {"reason": reason},
        )
    return run, message, step


def _message_with_step(
    *,
    run: Run,
    text: str,
    usage: dict[str, int] | None,
    incomplete: str = "",
    message_id: str = "",
    step_id: str = "",
) -> tuple[Message, RunStep]:
    """The assistant's message and its completed message_creation step (ids: the ones a stream
    announced, else new). `incomplete`: why the message stopped short, if it did."""
    now = timezone.now()
    message = message_write(
        thread=run.thread,
        role="assistant",
        content=[{"type": "text", "text": {"value": text, "annotations": []}}],
        run_id=run.run_id,
        assistant_id=run.assistant_id,
        status="incomplete" if incomplete else "completed",
        message_id=message_id,
    )
    if incomplete:
        message.incomplete_at = now
        message.incomplete_details = {"reason": incomplete}
        message.save(update_fields=["incomplete_at", "incomplete_details"])
    step = RunStep.objects.create(
        step_id=step_id or object_id_new("step"),
        run=run,
        created_at=now,
        type="message_creation",
        status="completed",
        step_details={
            "type": "message_creation",
            "message_creation": {"message_id": message.message_id},
        },
        usage=usage,
        completed_at=now,
    )
    return message, step


def _shown_write(
    run: Run,
    streamed_message: tuple[str, str, str],
    *,
    usage: dict[str, int] | None,
    reason: str = "run_failed",
) -> tuple[Message, RunStep]:
    """A message a stream showed, kept incomplete under its ids: `reason` why, unless the run
    was asked to stop (OpenAI's `run_cancelled`)."""
    message_id, step_id, text = streamed_message
    if run.status == Run.Status.CANCELLING:
        reason = "run_cancelled"
    return _message_with_step(
        run=run,
        text=text,
        usage=usage,
        incomplete=reason,
        message_id=message_id,
        step_id=step_id,
    )


def run_text_record(
    *,
    run_id: str,
    owner: str,
    text: str,
    usage: dict[str, int],
    truncated: bool,
    message_id: str = "",
    step_id: str = "",
) -> tuple[Run | None, Message | None, RunStep | None]:
    """The model answered in text: the assistant's message, its message_creation step, and the
    run ends (completed; incomplete when it stopped at `max_completion_tokens`). `message_id`,
    `step_id`: the ids a streamed run announced. A run asked to stop meanwhile is cancelled: its
    answer is dropped, unless a stream showed it (then kept incomplete)."""
    now = timezone.now()
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return None, None, None
        total = _usage_add(run.usage, usage)
        if run.status == Run.Status.CANCELLING:
            message = step = None
            if message_id:
                message, step = _shown_write(run, (message_id, step_id, text), usage=usage)
            _end(run, Run.Status.CANCELLED, now, usage=total)
            return run, message, step
        message, step = _message_with_step(
            run=run,
            text=text,
            usage=usage,
            incomplete="max_tokens" if truncated else "",
            message_id=message_id,
            step_id=step_id,
        )
        if truncated and run.max_completion_tokens is not None:
            _end(
                run,
                Run.Status.INCOMPLETE,
                now,
                usage=total,
                incomplete_details={"reason": "max_completion_tokens"},
            )
        else:
            _end(run, Run.Status.COMPLETED, now, usage=total)
    return run, message, step


def run_tools_record(
    *,
    run_id: str,
    owner: str,
    calls: list[dict[str, Any]],
    searched: dict[str, tuple[list[dict[str, Any]], str]],
    file_search_options: dict[str, Any] | None,
    content: str | None,
    usage: dict[str, int],
    step_id: str = "",
    streamed_message: tuple[str, str] | None = None,
) -> tuple[Run | None, RunStep | None]:
    """The model called tools: one tool_calls step with every call. file_search calls carry
    their results already; function calls make the run `requires_action` (its step waits for
    their outputs), else the step completes and the run goes on. `step_id`: the id a streamed
    run announced; `streamed_message`: (message id, step id) of the text a stream showed before
    the calls, written as the run's message first. A run asked to stop meanwhile is cancelled:
    what a stream showed is kept as it showed it, the text completed (its stream closed it when
    the calls began) and the calls' step cancelled."""
    now = timezone.now()
    with transaction.atomic():
        run = _locked(run_id, owner)
        if run is None:
            return None, None
        total = _usage_add(run.usage, usage)
        if streamed_message is not None:
            _message_with_step(
                run=run,
                text=content or "",
                usage=None,
                message_id=streamed_message[0],
                step_id=streamed_message[1],
            )
            now = timezone.now()  # the tool step follows the message's
        if run.status == Run.Status.CANCELLING:
            cancelled = None
            if step_id:
                shown = _calls_shown(calls, searched)
                cancelled = RunStep.objects.create(
                    step_id=step_id,
                    run=run,
                    created_at=now,
                    type="tool_calls",
                    status="cancelled",
                    step_details={"type": "tool_calls", "tool_calls": shown},
                    usage=usage,
                    cancelled_at=now,
                )
            _end(run, Run.Status.CANCELLED, now, usage=total)
            return run, cancelled
        details: list[dict[str, Any]] = []
        conversation: list[dict[str, Any]] = [
            {"role": "assistant", "content": content, "tool_calls": calls}
        ]
        pending: list[dict[str, Any]] = []
        for call in calls:
            function = call.get("function") or {}
            if function.get("name") == "file_search" and call["id"] in searched:
                results, text = searched[call["id"]]
                ranking = (file_search_options or {}).get("ranking_options") or {
                    "ranker": "auto",
                    "score_threshold": 0.0,
                }
                details.append(
                    {
                        "id": call["id"],
                        "type": "file_search",
                        "file_search": {"ranking_options": ranking, "results": results},
                    }
                )
                conversation.append({"role": "tool", "tool_call_id": call["id"], "content": text})
            else:
                name, arguments = function.get("name", ""), function.get("arguments", "")
                details.append(
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": name, "arguments": arguments, "output": None},
                    }
                )
                pending.append(
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                )
        step = RunStep.objects.create(
            step_id=step_id or object_id_new("step"),
            run=run,
            created_at=now,
            type="tool_calls",
            status="in_progress" if pending else "completed",
            step_details={"type": "tool_calls", "tool_calls": details},
            conversation=conversation,
            usage=usage,
            completed_at=None if pending else now,
        )
        run.usage = total
        if pending:
            run.status = Run.Status.REQUIRES_ACTION
            run.required_action = {
                "type": "submit_tool_outputs",
                "submit_tool_outputs": {"tool_calls": pending},
            }
            run.expires_at = now + run_expiry()
            run.lease_owner = ""
            run.save()
        else:
            run.lease_expires_at = now + _lease()
            run.save(update_fields=["usage", "lease_expires_at"])
    return run, step


def _calls_shown(calls: list[dict[str, Any]], searched: Iterable[str]) -> list[dict[str, Any]]:
    """A cancelled step's calls as the stream showed them, without outputs or results."""
    shown: list[dict[str, Any]] = []
    for call in calls:
        if call["id"] in searched:
            shown.append({"id": call["id"], "type": "file_search", "file_search": {}})
            continue
        function = call.get("function") or {}
        shown.append(
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": function.get("arguments", ""),
                    "output": None,
                },
            }
        )
    return shown


# ---- the loop -----------------------------------------------------------------------------------


def _in_progress(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**data, "status": "in_progress", "completed_at": None, **changes}


def _step_events(step: RunStep, run: Run) -> list[Event]:
    final = run_step_object(step, run=run)
    events: list[Event] = [
        ("thread.run.step.created", _in_progress(final, usage=None)),
        ("thread.run.step.in_progress", _in_progress(final, usage=None)),
    ]
    if step.type == "tool_calls":
        calls = []
        for index, call in enumerate(final["step_details"]["tool_calls"]):
            calls.append({"index": index, **call})
        events.append(
            (
                "thread.run.step.delta",
                {
                    "id": step.step_id,
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": calls}},
                },
            )
        )
    if step.status != "in_progress":
        events.append((f"thread.run.step.{step.status}", final))
    return events


def _message_events(message: Message, thread_id: str) -> list[Event]:
    final = message_object(message, thread_id=thread_id)
    opened = {**final, "status": "in_progress", "content": [], "completed_at": None}
    opened["incomplete_at"] = opened["incomplete_details"] = None
    deltas = [{"index": index, **part} for index, part in enumerate(final["content"])]
    return [
        ("thread.message.created", opened),
        ("thread.message.in_progress", opened),
        (
            "thread.message.delta",
            {
                "id": message.message_id,
                "object": "thread.message.delta",
                "delta": {"content": deltas},
            },
        ),
        (f"thread.message.{message.status}", final),
    ]


def _run_event(run: Run) -> Event:
    return (f"thread.run.{run.status}", run_object(run))


class _StreamedTurn:
    """One model call streamed: its chunks become the run's events as they arrive (the message's
    text as `thread.message.delta`s, the tool calls as `thread.run.step.delta`s), and what they
    made is kept for the run's records, written under the ids the events announced."""

    def __init__(self, run: Run, file_search: bool) -> None:
        self.run = run
        self.thread_id = run.thread.thread_id
        self.file_search = file_search
        self.text = ""
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.message: Message | None = None  # unsaved: what the events show
        self.message_step: RunStep | None = None
        self.message_closed = False
        self.tool_step: RunStep | None = None

    def completion(self) -> dict[str, Any]:
        """The chat completion the chunks made (the shape `internal_call` answers)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {"choices": [choice], "usage": self.usage or {}}

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        events: list[Event] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                events.extend(self._text(text))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events.extend(self._call(call))
        return events

    def _text(self, text: str) -> list[Event]:
        self.text += text
        if self.tool_step is not None:  # text after the calls: kept for the model, not shown
            return []
        events = [] if self.message is not None else self.message_open()
        part = {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}
        events.append(
            (
                "thread.message.delta",
                {
                    "id": self.message.message_id,  # type: ignore[union-attr]
                    "object": "thread.message.delta",
                    "delta": {"content": [part]},
                },
            )
        )
        return events

    def message_open(self) -> list[Event]:
        """The message_creation step and its message, in progress."""
        now = timezone.now()
        self.message = Message(
            message_id=object_id_new("msg"),
            created_at=now,
            role="assistant",
            status="in_progress",
            content=[],
            attachments=[],
            metadata={},
            run_id=self.run.run_id,
            assistant_id=self.run.assistant_id,
        )
        self.message_step = RunStep(
            step_id=object_id_new("step"),
            created_at=now,
            type="message_creation",
            status="in_progress",
            step_details={
                "type": "message_creation",
                "message_creation": {"message_id": self.message.message_id},
            },
            metadata={},
        )
        step = run_step_object(self.message_step, run=self.run)
        message = message_object(self.message, thread_id=self.thread_id)
        return [
            ("thread.run.step.created", step),
            ("thread.run.step.in_progress", step),
            ("thread.message.created", message),
            ("thread.message.in_progress", message),
        ]

    def message_close(self, written: Message | None = None) -> list[Event]:
        """The message's and its step's end events (the written rows' when given)."""
        if self.message is None or self.message_step is None or self.message_closed:
            return []
        self.message_closed = True
        now = timezone.now()
        if written is None:
            self.message.status = "completed"
            self.message.completed_at = now
            self.message.content = [
                {"type": "text", "text": {"value": self.text, "annotations": []}}
            ]
            written = self.message
        self.message_step.status = "completed"
        self.message_step.completed_at = now
        return [
            (f"thread.message.{written.status}", message_object(written, thread_id=self.thread_id)),
            ("thread.run.step.completed", run_step_object(self.message_step, run=self.run)),
        ]

    def shown(self) -> tuple[str, str, str] | None:
        """(message id, step id, text) of the message the events show and have not closed."""
        if self.message is None or self.message_step is None or self.message_closed:
            return None
        return self.message.message_id, self.message_step.step_id, self.text

    def message_recorded(self, written: Message, step: RunStep) -> list[Event]:
        """The message's end events as the run's records wrote it, with its step."""
        self.message_step = step
        return self.message_close(written)

    def _call(self, call: dict[str, Any]) -> list[Event]:
        events = self.message_close()
        if self.tool_step is None:
            self.tool_step = RunStep(
                step_id=object_id_new("step"),
                created_at=timezone.now(),
                type="tool_calls",
                status="in_progress",
                step_details={"type": "tool_calls", "tool_calls": []},
                metadata={},
            )
            step = run_step_object(self.tool_step, run=self.run)
            events += [("thread.run.step.created", step), ("thread.run.step.in_progress", step)]
        index = call.get("index", 0) if isinstance(call.get("index"), int) else 0
        function = call.get("function") or {}
        known = self.calls.get(index)
        if known is None:
            known = self.calls[index] = {
                "id": call.get("id") or object_id_new("call"),
                "type": "function",
                "function": {"name": "", "arguments": ""},
            }
        first = not known["function"]["name"]
        known["function"]["name"] += function.get("name") or ""
        fragment = function.get("arguments") or ""
        known["function"]["arguments"] += fragment
        name = known["function"]["name"]
        shown: dict[str, Any]
        if self.file_search and name == "file_search":
            if not first:
                return events  # its query is not shown; its results come with the step
            shown = {"index": index, "id": known["id"], "type": "file_search", "file_search": {}}
        elif first:
            shown = {
                "index": index,
                "id": known["id"],
                "type": "function",
                "function": {"name": name, "arguments": fragment, "output": None},
            }
        elif fragment:
            shown = {"index": index, "type": "function", "function": {"arguments": fragment}}
        else:
            return events
        events.append(
            (
                "thread.run.step.delta",
                {
                    "id": self.tool_step.step_id,
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [shown]}},
                },
            )
        )
        return events


class _Answer:
    """A model call's answer, from `internal_call` or a streamed turn."""

    __slots__ = ("body", "ok", "status")

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.ok = status == 200
        self.body = body


async def run_advance(
    *, run_id: str, caller: Caller, owner: str | None = None, stream: bool = False
) -> AsyncIterator[Event]:
    """Advance the run as far as it goes now (completed, requires_action, failed, ...),
    yielding OpenAI's stream events from `thread.run.in_progress` on. `stream`: each model call
    is streamed through the pipeline (`internal_stream`), its text and tool calls yielded as
    deltas as they arrive; otherwise one JSON call each, shown whole."""
    # On use: they load every adapter.
    from gateway.internal import InternalStreamError, internal_call, internal_stream

    owner = owner or uuid.uuid4().hex
    run = await blocking_run(run_claim, run_id=run_id, owner=owner)
    if run is None:
        return
    yield _run_event(run)
    if run.status != Run.Status.IN_PROGRESS:
        return
    turn: _StreamedTurn | None = None
    try:
        for _ in range(ROUNDS_MAX):
            checked = await blocking_run(run_checkpoint, run_id=run_id, owner=owner)
            if checked is None:
                return
            if checked.status != Run.Status.IN_PROGRESS:
                yield _run_event(checked)
                return
            body = await blocking_run(chat_body_build, run=checked)
            turn = None
            answer: Any
            if stream:
                turn = _StreamedTurn(checked, file_search=_file_search(checked) is not None)
                try:
                    async for chunk in internal_stream(caller=caller, body=body):
                        for event in turn.feed(chunk):
                            yield event
                    answer = _Answer(200, turn.completion())
                except InternalStreamError as error:
                    answer = _Answer(error.answer.status, error.answer.body)
            else:
                answer = await internal_call(caller=caller, endpoint=Endpoint.CHAT, body=body)
            if not answer.ok:
                error = answer.body.get("error") or {}
                async for event in _failed(
                    run_id=run_id,
                    owner=owner,
                    turn=turn,
                    code="rate_limit_exceeded" if answer.status == 429 else "server_error",
                    message=str(
                        error.get("message") or f"The model call failed ({answer.status})."
                    ),
                ):
                    yield event
                return
            usage = _call_usage(answer.body)
            prompt_used = int((checked.usage or {}).get("prompt_tokens") or 0)
            if (
                checked.max_prompt_tokens is not None
                and prompt_used + usage["prompt_tokens"] > checked.max_prompt_tokens
            ):
                ended, written, step = await blocking_run(
                    run_incomplete,
                    run_id=run_id,
                    owner=owner,
                    reason="max_prompt_tokens",
                    usage=usage,
                    streamed_message=turn.shown() if turn is not None else None,
                )
                if ended is not None:
                    for event in _ended_events(ended, turn, written, step):
                        yield event
                return
            choice = (answer.body.get("choices") or [{}])[0]
            message = choice.get("message") or {}
            calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
            for call in calls:
                if not isinstance(call.get("id"), str) or not call["id"]:
                    call["id"] = object_id_new("call")
            if calls:
                options = _file_search(checked)
                searched: dict[str, tuple[list[dict[str, Any]], str]] = {}
                for call in calls:
                    function = call.get("function") or {}
                    if function.get("name") == "file_search" and options is not None:
                        searched[call["id"]] = await file_search_run(
                            caller=caller, options=options, arguments=function.get("arguments", "")
                        )
                streamed_message = None
                if turn is not None and turn.message is not None:
                    assert turn.message_step is not None
                    streamed_message = (turn.message.message_id, turn.message_step.step_id)
                recorded, step = await blocking_run(
                    run_tools_record,
                    run_id=run_id,
                    owner=owner,
                    calls=calls,
                    searched=searched,
                    file_search_options=options,
                    content=message.get("content"),
                    usage=usage,
                    step_id=turn.tool_step.step_id if turn and turn.tool_step else "",
                    streamed_message=streamed_message,
                )
                if recorded is None:
                    return
                if step is not None and step.status == "cancelled":  # the stream showed it
                    yield ("thread.run.step.cancelled", run_step_object(step, run=recorded))
                elif step is not None and turn is not None:
                    if step.status != "in_progress":  # file_search calls: run, with results
                        yield ("thread.run.step.completed", run_step_object(step, run=recorded))
                elif step is not None:
                    for event in _step_events(step, recorded):
                        yield event
                if recorded.status != Run.Status.IN_PROGRESS:
                    yield _run_event(recorded)
                    return
                continue
            text = message.get("content")
            if turn is not None and turn.message is None:
                for event in turn.message_open():  # no text came: the message is still shown
                    yield event
            recorded, written, step = await blocking_run(
                run_text_record,
                run_id=run_id,
                owner=owner,
                text=text if isinstance(text, str) else "",
                usage=usage,
                truncated=choice.get("finish_reason") == "length",
                message_id=turn.message.message_id if turn and turn.message else "",
                step_id=turn.message_step.step_id if turn and turn.message_step else "",
            )
            if recorded is None:
                return
            if turn is None and written is not None and step is not None:
                thread_id = recorded.thread.thread_id
                step_events = _step_events(step, recorded)
                for event in step_events[:2]:
                    yield event
                for event in _message_events(written, thread_id):
                    yield event
                for event in step_events[2:]:
                    yield event
            for event in _ended_events(recorded, turn, written, step):
                yield event
            return
        async for event in _failed(
            run_id=run_id,
            owner=owner,
            turn=turn,
            code="server_error",
            message=f"The run made {ROUNDS_MAX} model calls without an answer.",
        ):
            yield event
    except GatewayError as error:
        # A file_search that cannot run (a vector store not found, or no vector stores here).
        async for event in _failed(
            run_id=run_id, owner=owner, turn=turn, code="server_error", message=error.message
        ):
            yield event
    except Exception:
        # A bug must not leave the run to be retried by every sweep until it expires.
        logger.exception("run %s failed", run_id)
        async for event in _failed(
            run_id=run_id,
            owner=owner,
            turn=turn,
            code="server_error",
            message="The run stopped on a server error.",
        ):
            yield event


def _ended_events(
    run: Run, turn: _StreamedTurn | None, written: Message | None, step: RunStep | None
) -> list[Event]:
    """A run's last events: the close of the message its stream showed (as the records wrote
    it), then the run's own."""
    events: list[Event] = []
    if turn is not None and written is not None and step is not None:
        events = turn.message_recorded(written, step)
    return [*events, _run_event(run)]


async def _failed(
    *, run_id: str, owner: str, turn: _StreamedTurn | None, code: str, message: str
) -> AsyncIterator[Event]:
    """The run fails (or is cancelled, when asked to stop): a message its stream was showing
    ends incomplete before the run's last event."""
    ended, written, step = await blocking_run(
        run_fail,
        run_id=run_id,
        owner=owner,
        code=code,
        message=message,
        streamed_message=turn.shown() if turn is not None else None,
    )
    if ended is not None:
        for event in _ended_events(ended, turn, written, step):
            yield event


# ---- outside a request --------------------------------------------------------------------------


async def run_caller(run: Run) -> Caller | None:
    """Whom a worker runs the run as: its creating key (None when revoked or gone)."""
    from gateway.auth import caller_by_key_id  # on use: it loads the key cache and Redis

    if run.by_master:
        return Caller(is_master=True)
    if run.key_id is None:
        return None
    return await caller_by_key_id(key_id=run.key_id)


async def run_advance_quietly(*, run_id: str) -> str | None:
    """A worker's advance (its events go nowhere); the run's status then."""
    run = await blocking_run(lambda: Run.objects.filter(run_id=run_id).first())
    if run is None:
        return None
    caller = await run_caller(run)
    if caller is None:
        owner = uuid.uuid4().hex
        if await blocking_run(run_claim, run_id=run_id, owner=owner) is not None:
            await blocking_run(
                run_fail,
                run_id=run_id,
                owner=owner,
                code="server_error",
                message="The key that created this run is no longer active.",
            )
    else:
        async for _ in run_advance(run_id=run_id, caller=caller):
            pass
    return await blocking_run(
        lambda: Run.objects.filter(run_id=run_id).values_list("status", flat=True).first()
    )


def run_advance_blocking(*, run_id: str) -> str | None:
    """For a Celery task: the advance in an event loop of its own."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(run_advance_quietly(run_id=run_id))
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(_clients_close())
        loop.close()


async def _clients_close() -> None:
    # Imported on use: they load every adapter and the Redis client.
    from ogem_site.redis import redis_clients_close
    from providers.http import http_clients_close

    await http_clients_close()
    await redis_clients_close()

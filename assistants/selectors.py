"""Reads of assistants, threads, messages, runs and run steps: for a /v1 caller (its tenant's,
never another's), for the management API and admin (a Principal's scope), and each object in
OpenAI's shape (specs: AssistantObject, ThreadObject, MessageObject, RunObject, RunStepObject)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from assistants.models import Assistant, Message, Run, RunStep, Thread
from gateway.context import Caller
from gateway.errors import NotFoundError
from ogem_site.pagination import queryset_page
from tenants.principals import Principal
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids

M = TypeVar("M", bound=Model)

# A run no worker advances again.
RUN_ENDED = (
    Run.Status.CANCELLED,
    Run.Status.FAILED,
    Run.Status.COMPLETED,
    Run.Status.INCOMPLETE,
    Run.Status.EXPIRED,
)
# Seconds a queued run waits for its worker before a sweep or a read enqueues it again.
QUEUED_GRACE = 60
# A run that holds its thread: no message or other run may be added meanwhile.
RUN_ACTIVE = (
    Run.Status.QUEUED,
    Run.Status.IN_PROGRESS,
    Run.Status.REQUIRES_ACTION,
    Run.Status.CANCELLING,
)


def owned_visible(queryset: QuerySet[M], *, caller: Caller, prefix: str = "") -> QuerySet[M]:
    """Rows of `queryset` the caller may see: a team's key its team's, an organization's key
    (no team) its organization's, the master key every one, any other key its own. `prefix`:
    the path to the owning row (`thread__` for messages)."""
    if caller.is_master:
        return queryset
    if caller.team_id is not None:
        return queryset.filter(
            **{
                f"{prefix}organization_id": caller.organization_id,
                f"{prefix}team_id": caller.team_id,
            }
        )
    if caller.organization_id is not None:
        return queryset.filter(**{f"{prefix}organization_id": caller.organization_id})
    if caller.key_id is not None:
        return queryset.filter(
            **{f"{prefix}organization__isnull": True, f"{prefix}key_id": caller.key_id}
        )
    return queryset.none()


def _one(queryset: QuerySet[M], *, field: str, value: str, what: str, param: str) -> M:
    found = None
    if "\x00" not in value:
        found = queryset.filter(**{field: value}).first()
    if found is None:
        raise NotFoundError(f"No {what} found with id '{value}'.", param=param, code=None)
    return found


def assistant_get_visible(*, caller: Caller, assistant_id: str) -> Assistant:
    return _one(
        owned_visible(Assistant.objects.all(), caller=caller),
        field="assistant_id",
        value=assistant_id,
        what="assistant",
        param="assistant_id",
    )


def thread_get_visible(*, caller: Caller, thread_id: str) -> Thread:
    return _one(
        owned_visible(Thread.objects.all(), caller=caller),
        field="thread_id",
        value=thread_id,
        what="thread",
        param="thread_id",
    )


def message_get(*, thread: Thread, message_id: str) -> Message:
    return _one(
        thread.messages.all(),
        field="message_id",
        value=message_id,
        what="message",
        param="message_id",
    )


def run_get(*, thread: Thread, run_id: str) -> Run:
    return _one(thread.runs.all(), field="run_id", value=run_id, what="run", param="run_id")


def run_step_get(*, run: Run, step_id: str) -> RunStep:
    return _one(run.steps.all(), field="step_id", value=step_id, what="run step", param="step_id")


def run_active(*, thread: Thread) -> Run | None:
    return thread.runs.filter(status__in=RUN_ACTIVE).order_by("-created_at", "-pk").first()


def object_page(
    queryset: QuerySet[M],
    *,
    id_field: str,
    order: str,
    after: str | None,
    before: str | None,
    limit: int,
) -> tuple[list[M], bool]:
    """One page in OpenAI's cursor pagination: ordered by creation (`asc` or `desc`), the rows
    after the `after` id and before the `before` id (ids of this list; an unknown one is 400),
    and whether more follow."""
    from gateway.errors import InvalidRequestError

    cursors: dict[str, M | None] = {}
    for name, cursor_id in (("after", after), ("before", before)):
        cursor = None
        if cursor_id is not None:
            if "\x00" not in cursor_id:
                cursor = queryset.filter(**{id_field: cursor_id}).first()
            if cursor is None:
                raise InvalidRequestError(f"No object found with id '{cursor_id}'.", param=name)
        cursors[name] = cursor
    return queryset_page(
        queryset,
        after=cursors["after"],
        before=cursors["before"],
        limit=limit,
        descending=order == "desc",
    )


def assistants_visible(*, caller: Caller) -> QuerySet[Assistant]:
    return owned_visible(Assistant.objects.all(), caller=caller)


def messages_of(*, thread: Thread, run_id: str | None = None) -> QuerySet[Message]:
    messages = thread.messages.all()
    return messages.filter(run_id=run_id) if run_id is not None else messages


def messages_for_run(*, thread: Thread, last: int | None) -> list[Message]:
    """The thread's messages a run reads, oldest first: every one, or the last `last`."""
    if last is None:
        return list(thread.messages.order_by("created_at", "pk"))
    rows = list(thread.messages.order_by("-created_at", "-pk")[:last])
    return rows[::-1]


def run_steps_of(*, run: Run) -> list[RunStep]:
    return list(run.steps.order_by("created_at", "pk"))


def runs_resumable(*, now: datetime) -> QuerySet[Run]:
    """Runs a worker should advance: in progress (or cancelling) with a lapsed hold, or queued
    for a while (a run just queued is on its way to a worker already)."""
    lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    waiting = Q(status=Run.Status.QUEUED, created_at__lt=now - timedelta(seconds=QUEUED_GRACE))
    moving = Q(status__in=(Run.Status.IN_PROGRESS, Run.Status.CANCELLING))
    return Run.objects.filter(lapsed & (waiting | moving))


def runs_past_expiry(*, now: datetime) -> QuerySet[Run]:
    return Run.objects.filter(status__in=RUN_ACTIVE, expires_at__lt=now)


def tenant_objects_count(*, organization_id: int | None, key_id: int | None) -> int:
    """What a tenant stores in the Assistants API: its assistants, threads and their messages
    together (the tenant: the organization; a key without one, its own objects)."""
    if organization_id is not None:
        owned = Q(organization_id=organization_id)
    elif key_id is not None:
        owned = Q(organization__isnull=True, key_id=key_id)
    else:
        owned = Q(organization__isnull=True, key__isnull=True)
    threads = Thread.objects.filter(owned)
    return (
        Assistant.objects.filter(owned).count()
        + threads.count()
        + Message.objects.filter(thread__in=threads).count()
    )


def _principal_scope(queryset: QuerySet[M], *, principal: Principal) -> QuerySet[M]:
    if principal.is_proxy_admin:
        return queryset
    return queryset.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal, field="key__user_id")
    )


def assistant_list(*, principal: Principal) -> QuerySet[Assistant]:
    """Assistants for the management API and admin: a proxy admin's every one; else those of
    the organizations and teams the principal may read, and those its own keys created."""
    queryset = Assistant.objects.select_related("organization", "team", "key")
    return _principal_scope(queryset, principal=principal)


def thread_list(*, principal: Principal) -> QuerySet[Thread]:
    queryset = Thread.objects.select_related("organization", "team", "key")
    return _principal_scope(queryset, principal=principal)


def run_list(*, principal: Principal) -> QuerySet[Run]:
    queryset = Run.objects.select_related("organization", "team", "key", "thread")
    return _principal_scope(queryset, principal=principal)


# ---- OpenAI's shapes ---------------------------------------------------------------------------


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def assistant_object(assistant: Assistant) -> dict[str, Any]:
    return {
        "id": assistant.assistant_id,
        "object": "assistant",
        "created_at": unix(assistant.created_at),
        "name": assistant.name,
        "description": assistant.description,
        "model": assistant.model,
        "instructions": assistant.instructions,
        "tools": assistant.tools,
        "tool_resources": assistant.tool_resources,
        "metadata": assistant.metadata,
        "temperature": assistant.temperature,
        "top_p": assistant.top_p,
        "response_format": assistant.response_format or "auto",
        "reasoning_effort": assistant.reasoning_effort,
    }


def thread_object(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.thread_id,
        "object": "thread",
        "created_at": unix(thread.created_at),
        "tool_resources": thread.tool_resources,
        "metadata": thread.metadata,
    }


def message_object(message: Message, *, thread_id: str | None = None) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "object": "thread.message",
        "created_at": unix(message.created_at),
        "thread_id": thread_id or message.thread.thread_id,
        "status": message.status,
        "incomplete_details": message.incomplete_details,
        "completed_at": unix(message.completed_at),
        "incomplete_at": unix(message.incomplete_at),
        "role": message.role,
        "content": message.content,
        "assistant_id": message.assistant_id or None,
        "run_id": message.run_id or None,
        "attachments": message.attachments,
        "metadata": message.metadata,
    }


def run_object(run: Run, *, thread_id: str | None = None) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "object": "thread.run",
        "created_at": unix(run.created_at),
        "thread_id": thread_id or run.thread.thread_id,
        "assistant_id": run.assistant_id,
        "status": run.status,
        "required_action": run.required_action,
        "last_error": run.last_error,
        "expires_at": unix(run.expires_at) if run.status in RUN_ACTIVE else None,
        "started_at": unix(run.started_at),
        "cancelled_at": unix(run.cancelled_at),
        "failed_at": unix(run.failed_at),
        "completed_at": unix(run.completed_at),
        "incomplete_details": run.incomplete_details,
        "model": run.model,
        "instructions": run.instructions,
        "tools": run.tools,
        "metadata": run.metadata,
        "usage": run.usage,
        "temperature": run.temperature,
        "top_p": run.top_p,
        "max_prompt_tokens": run.max_prompt_tokens,
        "max_completion_tokens": run.max_completion_tokens,
        "truncation_strategy": run.truncation_strategy,
        "tool_choice": run.tool_choice if run.tool_choice is not None else "auto",
        "parallel_tool_calls": run.parallel_tool_calls,
        "response_format": run.response_format or "auto",
        "reasoning_effort": run.reasoning_effort,
    }


def run_step_object(step: RunStep, *, run: Run | None = None) -> dict[str, Any]:
    owner = run or step.run
    return {
        "id": step.step_id,
        "object": "thread.run.step",
        "created_at": unix(step.created_at),
        "assistant_id": owner.assistant_id,
        "thread_id": owner.thread.thread_id,
        "run_id": owner.run_id,
        "type": step.type,
        "status": step.status,
        "step_details": step.step_details,
        "last_error": step.last_error,
        "expired_at": unix(step.expired_at),
        "cancelled_at": unix(step.cancelled_at),
        "failed_at": unix(step.failed_at),
        "completed_at": unix(step.completed_at),
        "metadata": step.metadata,
        "usage": step.usage,
    }

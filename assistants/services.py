"""Writes of the Assistants API: assistants, threads and messages made and changed by clients,
runs created, cancelled and given tool outputs. Advancing a run (the model calls) is
assistants/runner.py's, from a Celery task (assistants/tasks.py) or a streaming request."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from assistants.models import Assistant, Message, Run, RunStep, Thread
from assistants.records import message_write, object_id_new, run_expiry
from assistants.selectors import RUN_ENDED, run_active, tenant_objects_count
from assistants.tasks import run_advance_enqueue
from gateway.context import Caller
from gateway.errors import GatewayError, InvalidRequestError


def _owner(caller: Caller) -> dict[str, Any]:
    return {
        "organization_id": caller.organization_id,
        "team_id": caller.team_id,
        "key_id": caller.key_id,
        "by_master": caller.is_master,
    }


# ---- the tenant's storage bound -----------------------------------------------------------------


class StorageQuotaError(GatewayError):
    """OpenAI's answer to an exhausted quota: 429 `insufficient_quota`."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


def storage_check(*, organization_id: int | None, key_id: int | None, adding: int) -> None:
    """Refuse `adding` more objects (assistants, threads, messages) past the tenant's bound
    (OGEM_ASSISTANTS_MAX_OBJECTS). Checked when a client adds them; a run's own answer is
    always written (a run started under the bound finishes)."""
    limit = settings.OGEM_ASSISTANTS_MAX_OBJECTS
    if adding <= 0:
        return
    used = tenant_objects_count(organization_id=organization_id, key_id=key_id)
    if used + adding > limit:
        raise StorageQuotaError(
            f"You exceeded your storage quota for the Assistants API: {used} of {limit} "
            "assistants, threads and messages are stored. Delete some, or ask your "
            "administrator to raise OGEM_ASSISTANTS_MAX_OBJECTS."
        )


def _caller_storage_check(caller: Caller, adding: int) -> None:
    storage_check(organization_id=caller.organization_id, key_id=caller.key_id, adding=adding)


# ---- assistants ---------------------------------------------------------------------------------


def assistant_create(*, caller: Caller, fields: dict[str, Any]) -> Assistant:
    """`fields`: the checked body (model, name, description, instructions, tools,
    tool_resources, metadata, temperature, top_p, response_format)."""
    _caller_storage_check(caller, 1)
    return Assistant.objects.create(
        assistant_id=object_id_new("asst"), created_at=timezone.now(), **_owner(caller), **fields
    )


def assistant_update(*, assistant: Assistant, changes: dict[str, Any]) -> Assistant:
    for name, value in changes.items():
        setattr(assistant, name, value)
    if changes:
        assistant.save(update_fields=list(changes))
    return assistant


def assistant_delete(*, assistant: Assistant) -> None:
    # Its runs keep their copy of what it was (model, instructions, tools), as OpenAI's do.
    assistant.delete()


# ---- threads and messages -----------------------------------------------------------------------


def thread_create(
    *,
    caller: Caller,
    messages: list[dict[str, Any]],
    tool_resources: dict[str, Any],
    metadata: dict[str, str],
) -> Thread:
    _caller_storage_check(caller, 1 + len(messages))
    with transaction.atomic():
        thread = Thread.objects.create(
            thread_id=object_id_new("thread"),
            created_at=timezone.now(),
            tool_resources=tool_resources,
            metadata=metadata,
            **_owner(caller),
        )
        for message in messages:
            message_write(thread=thread, **message)
    return thread


def thread_update(*, thread: Thread, changes: dict[str, Any]) -> Thread:
    for name, value in changes.items():
        setattr(thread, name, value)
    if changes:
        thread.save(update_fields=list(changes))
    return thread


def thread_delete(*, thread: Thread) -> None:
    thread.delete()  # its messages, runs and steps with it


def message_create(
    *,
    thread: Thread,
    role: str,
    content: list[dict[str, Any]],
    attachments: list[dict[str, Any]],
    metadata: dict[str, str],
) -> Message:
    """A client's message; refused while a run holds the thread (OpenAI's 400), and past the
    tenant's storage bound (429)."""
    storage_check(organization_id=thread.organization_id, key_id=thread.key_id, adding=1)
    with transaction.atomic():
        Thread.objects.select_for_update().filter(pk=thread.pk).first()
        active = run_active(thread=thread)
        if active is not None:
            raise InvalidRequestError(
                f"Can't add messages to {thread.thread_id} while a run {active.run_id} is active.",
                param=None,
            )
        return message_write(
            thread=thread, role=role, content=content, attachments=attachments, metadata=metadata
        )


def message_update(*, message: Message, metadata: dict[str, str]) -> Message:
    message.metadata = metadata
    message.save(update_fields=["metadata"])
    return message


def message_delete(*, message: Message) -> None:
    message.delete()


# ---- runs ---------------------------------------------------------------------------------------


def run_create(
    *,
    caller: Caller,
    thread: Thread,
    assistant: Assistant,
    fields: dict[str, Any],
    additional_messages: list[dict[str, Any]],
    enqueue: bool,
) -> Run:
    """A queued run of `assistant` on `thread`; `fields`: the run's settings (model,
    instructions, tools, ...) as the request and the assistant give them. `enqueue`: hand it to
    a worker once committed (a streaming request advances it itself)."""
    now = timezone.now()
    _caller_storage_check(caller, len(additional_messages))
    with transaction.atomic():
        Thread.objects.select_for_update().filter(pk=thread.pk).first()
        active = run_active(thread=thread)
        if active is not None:
            raise InvalidRequestError(
                f"Thread {thread.thread_id} already has an active run {active.run_id}.",
                param=None,
            )
        for message in additional_messages:
            message_write(thread=thread, **message)
        resources = tool_resources_merge(assistant.tool_resources, thread.tool_resources)
        run = Run.objects.create(
            run_id=object_id_new("run"),
            thread=thread,
            assistant_id=assistant.assistant_id,
            created_at=now,
            expires_at=now + run_expiry(),
            tool_resources=resources,
            **_owner(caller),
            **fields,
        )
        if enqueue:
            run_id = run.run_id
            transaction.on_commit(lambda: run_advance_enqueue(run_id=run_id))
    return run


def tool_resources_merge(*sources: dict[str, Any]) -> dict[str, Any]:
    """A run's tool resources: the vector stores of the assistant and of the thread (and of a
    create-and-run request), all of them searched, as OpenAI does."""
    stores: list[str] = []
    for source in sources:
        for store in (source.get("file_search") or {}).get("vector_store_ids") or []:
            if store not in stores:
                stores.append(store)
    return {"file_search": {"vector_store_ids": stores}} if stores else {}


def run_update(*, run: Run, metadata: dict[str, str]) -> Run:
    run.metadata = metadata
    run.save(update_fields=["metadata"])
    return run


def run_cancel(*, run: Run) -> Run:
    """Stop a run: a queued one or one waiting for tool outputs is cancelled at once; one in
    progress is `cancelling` until its worker sees it (before and after each model call). A run
    that ended cannot be cancelled (OpenAI's 400)."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().select_related("thread").get(pk=run.pk)
        if locked.status in RUN_ENDED or locked.status == Run.Status.CANCELLING:
            raise InvalidRequestError(
                f"Cannot cancel run with status '{locked.status}'.", param=None
            )
        now = timezone.now()
        if locked.status == Run.Status.IN_PROGRESS:
            locked.status = Run.Status.CANCELLING
            locked.save(update_fields=["status"])
        else:
            locked.status = Run.Status.CANCELLED
            locked.cancelled_at = now
            locked.required_action = None
            locked.save(update_fields=["status", "cancelled_at", "required_action"])
            RunStep.objects.filter(run=locked, status="in_progress").update(
                status="cancelled", cancelled_at=now
            )
    return locked


def run_tool_outputs_submit(
    *, run: Run, tool_outputs: list[dict[str, Any]], enqueue: bool
) -> tuple[Run, RunStep]:
    """The outputs of the run's pending function calls: its tool step completes and the run is
    queued again. Refused unless the run requires exactly these calls' outputs (400)."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().select_related("thread").get(pk=run.pk)
        if locked.status != Run.Status.REQUIRES_ACTION:
            raise InvalidRequestError(
                f'Runs in status "{locked.status}" do not accept tool outputs.', param=None
            )
        if locked.expires_at is not None and locked.expires_at <= timezone.now():
            raise InvalidRequestError(
                f"Run {locked.run_id} has expired and can no longer accept tool outputs.",
                param=None,
            )
        pending = (
            (locked.required_action or {}).get("submit_tool_outputs", {}).get("tool_calls", [])
        )
        expected = {call["id"] for call in pending}
        given: dict[str, str] = {}
        for index, item in enumerate(tool_outputs):
            call_id = item.get("tool_call_id") if isinstance(item, dict) else None
            if call_id not in expected:
                raise InvalidRequestError(
                    f"Invalid 'tool_outputs[{index}].tool_call_id': no pending tool call "
                    f"'{call_id}' on run {locked.run_id}.",
                    param=f"tool_outputs[{index}].tool_call_id",
                )
            output = item.get("output", "")
            if not isinstance(output, str):
                raise InvalidRequestError(
                    f"Invalid type for 'tool_outputs[{index}].output': expected a string.",
                    param=f"tool_outputs[{index}].output",
                )
            given[call_id] = output
        missing = sorted(expected - set(given))
        if missing:
            raise InvalidRequestError(
                f"Expected tool outputs for call_ids {sorted(expected)}, got {sorted(given)}.",
                param="tool_outputs",
            )
        step = locked.steps.filter(type="tool_calls", status="in_progress").order_by("-pk").first()
        now = timezone.now()
        if step is not None:
            details = step.step_details
            for call in details.get("tool_calls", []):
                if call.get("type") == "function" and call["id"] in given:
                    call["function"]["output"] = given[call["id"]]
            step.conversation = [
                *step.conversation,
                *(
                    {"role": "tool", "tool_call_id": call_id, "content": output}
                    for call_id, output in given.items()
                ),
            ]
            step.status = "completed"
            step.completed_at = now
            step.save(update_fields=["step_details", "conversation", "status", "completed_at"])
        locked.status = Run.Status.QUEUED
        locked.required_action = None
        locked.save(update_fields=["status", "required_action"])
        if enqueue:
            run_id = locked.run_id
            transaction.on_commit(lambda: run_advance_enqueue(run_id=run_id))
    return locked, step  # type: ignore[return-value]

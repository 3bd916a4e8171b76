"""Running a batch: its lines through the /v1 pipeline as the key that created it, then its output
and error files. Called by Celery (batches/tasks.py) or, in the embedded default, by a thread.

Exactly once, whatever dies when:
- a worker holds a batch by a lease (`lease_owner`, `lease_expires_at`) that it renews while it
  runs; another worker takes the batch over only once the lease lapsed (beat's sweep);
- a line's answer is one `BatchLine` row, unique on (batch, custom_id) and (batch, line): a line
  with its row is never run again, and a second answer to one line is never kept;
- a line's request id is derived from the batch and line, so a line run again after a crash (it
  was in flight, its row not written) settles under the same id: its spend and its usage event
  are applied once (gateway/governance.py), and RequestLog is unique on the request id.

Memory is bounded: the input is read as a stream, `OGEM_BATCH_CONCURRENCY` lines at a time, and
the output files are written from the rows as a stream. A chunk's answers are kept when it ends,
or every PROGRESS_SECONDS while it runs longer: `request_counts` follows the answers.

Live traffic first: a line waits behind live requests in the routing queue
(`OGEM_BATCH_QUEUE_PRIORITY`), and for the CPU while other processes keep the worker's CPUs busy
(`OGEM_BATCH_YIELD_CPU`, batches/cpu_yield.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import OperationalError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from batches.cpu_yield import LinePacer, line_pacer, process_cpu_seconds
from batches.live import batch_progress_publish
from batches.models import Batch, BatchLine
from batches.selectors import ENDED, batch_lines_answered, batch_lines_ordered, batches_resumable
from files.batch_input import BATCH_ENDPOINTS, BatchInputError, batch_line_parse
from files.models import File
from files.selectors import file_lines
from files.services import file_create
from gateway.context import Caller
from gateway.queueing import queue_priority
from ogem_site.metrics import batch_ended_record, batch_lines_record
from tenants.models import Organization

logger = logging.getLogger(__name__)

# Attempts of the embedded default's thread at a batch whose database was busy.
THREAD_ATTEMPTS = 100
# How often a running batch checks that its key is still active (revoked, expired, deleted).
CALLER_RECHECK_SECONDS = 2.0
# A line refused by a rate limit waits this long at most before it tries again.
RATE_LIMIT_WAIT_MAX = 30.0
# A chunk still running after this long keeps the answers it has so far, and again as often:
# `request_counts` then grows while lines start at the pacer's minimum pace or an upstream is
# slow, and a chunk that ends sooner (full speed) is still kept in one write.
PROGRESS_SECONDS = 1.0


@dataclass(slots=True)
class LineResult:
    line: int
    custom_id: str
    request_id: str
    status_code: int
    body: dict[str, Any]


def line_request_id(*, batch_id: str, line: int) -> str:
    """The request id of a batch line: the same on every run of that line."""
    return hashlib.sha256(f"{batch_id}:{line}".encode()).hexdigest()[:32]


# ---- Holding a batch ----------------------------------------------------------------------------


def batch_lease_take(*, batch_id: str, owner: str) -> Batch | None:
    """Hold the batch for this worker, unless it ended, another live worker holds it, or its
    organization already runs `OGEM_BATCH_TENANT_RUNNING` batches run by Ogem (then the sweep
    retries)."""
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(batch_id=batch_id).first()
        if batch is None or batch.status in ENDED:
            return None
        held = batch.lease_owner and batch.lease_owner != owner
        if held and batch.lease_expires_at and batch.lease_expires_at > now:
            return None
        if batch.organization_id is not None and batch.mode == Batch.Mode.OGEM:
            # One taker at a time per organization, so that the count below holds. A
            # pass-through batch's step is a few upstream calls: it neither waits for nor
            # counts against the organization's running batches.
            Organization.objects.select_for_update().filter(pk=batch.organization_id).first()
            running = (
                Batch.objects.filter(
                    organization_id=batch.organization_id,
                    lease_expires_at__gt=now,
                    mode=Batch.Mode.OGEM,
                )
                .exclude(status__in=ENDED)
                .exclude(pk=batch.pk)
                .count()
            )
            if running >= settings.OGEM_BATCH_TENANT_RUNNING:
                return None
        batch.lease_owner = owner
        batch.lease_expires_at = now + timedelta(seconds=settings.OGEM_BATCH_LEASE_SECONDS)
        if batch.status == Batch.Status.VALIDATING:
            batch.status = Batch.Status.IN_PROGRESS
            batch.in_progress_at = now
            batch_progress_publish(batch_pk=batch.pk)
        batch.save(update_fields=["lease_owner", "lease_expires_at", "status", "in_progress_at"])
        return batch


def batch_lease_renew(*, batch: Batch, owner: str) -> str | None:
    """Extend the hold; the batch's status now (its `expires_at` refreshed too), or None when
    the hold was lost."""
    until = timezone.now() + timedelta(seconds=settings.OGEM_BATCH_LEASE_SECONDS)
    held = Batch.objects.filter(pk=batch.pk, lease_owner=owner).update(lease_expires_at=until)
    if not held:
        return None
    row = Batch.objects.filter(pk=batch.pk).values_list("status", "expires_at").first()
    if row is None:
        return None
    batch.expires_at = row[1]
    return row[0]


def batch_lease_release(*, batch: Batch, owner: str) -> None:
    Batch.objects.filter(pk=batch.pk, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )


# ---- Running ------------------------------------------------------------------------------------


def batch_run(*, batch_id: str, owner: str | None = None) -> str | None:
    """Run (or resume, or finish) one batch as far as it goes; its status then, or None when
    this worker may not hold it now. Idempotent: a batch that ended is left as it is. `owner`:
    the hold's token, when a caller retries with the hold it may still have."""
    owner = owner or uuid.uuid4().hex
    batch = batch_lease_take(batch_id=batch_id, owner=owner)
    if batch is None:
        return None
    loop = asyncio.new_event_loop()
    try:
        return _run_held(batch, owner=owner, loop=loop)
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(_clients_close())
        loop.close()
        batch_lease_release(batch=batch, owner=owner)


async def _clients_close() -> None:
    # Imported on use: they load every adapter and the Redis client.
    from ogem_site.redis import redis_clients_close
    from providers.http import http_clients_close

    await http_clients_close()
    await redis_clients_close()


def _run_held(batch: Batch, *, owner: str, loop: asyncio.AbstractEventLoop) -> str:
    if batch.status == Batch.Status.IN_PROGRESS and timezone.now() < batch.expires_at:
        caller = loop.run_until_complete(_batch_caller(batch))
        if caller is None or not _lines_run(batch, caller=caller, owner=owner, loop=loop):
            # The key was revoked, expired or deleted: the batch fails with what it answered.
            return batch_finish(
                batch,
                caller=batch_owner_of(batch),
                status=Batch.Status.FAILED,
                errors=[
                    {
                        "code": "invalid_api_key",
                        "message": "The key that created this batch is no longer active.",
                        "param": None,
                        "line": None,
                    }
                ],
            )
        batch.refresh_from_db()
    else:
        caller = loop.run_until_complete(_batch_caller(batch)) or batch_owner_of(batch)
    if batch.status == Batch.Status.CANCELLING:
        return batch_finish(batch, caller=caller, status=Batch.Status.CANCELLED)
    if timezone.now() >= batch.expires_at and batch.status != Batch.Status.FINALIZING:
        return batch_finish(batch, caller=caller, status=Batch.Status.EXPIRED)
    if batch.status in (Batch.Status.IN_PROGRESS, Batch.Status.FINALIZING):
        if batch_lease_renew(batch=batch, owner=owner) is None:
            return batch.status  # another worker took over meanwhile: it finishes
        return batch_finish(batch, caller=caller, status=Batch.Status.COMPLETED)
    return batch.status


def batch_owner_of(batch: Batch) -> Caller:
    """Whom the output files belong to when the key is gone: the batch's tenant."""
    return Caller(
        is_master=batch.by_master,
        key_id=batch.key_id,
        organization_id=batch.organization_id,
        team_id=batch.team_id,
    )


async def _batch_caller(batch: Batch) -> Caller | None:
    """The Caller the lines run as: the creating key's, queued behind live traffic."""
    from gateway.auth import caller_by_key_id  # on use: it loads the key cache and Redis

    if batch.by_master:
        caller: Caller | None = Caller(is_master=True)
    elif batch.key_id is None:
        return None
    else:
        caller = await caller_by_key_id(key_id=batch.key_id)
    if caller is None:
        return None
    return replace(
        caller, priority=max(queue_priority(caller=caller), settings.OGEM_BATCH_QUEUE_PRIORITY)
    )


def _chunks(lines: Iterable[tuple[int, bytes]], size: int) -> Iterator[list[tuple[int, bytes]]]:
    iterator = iter(lines)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _lines_run(
    batch: Batch, *, caller: Caller, owner: str, loop: asyncio.AbstractEventLoop
) -> bool:
    """Answer every line that has no answer yet, a chunk at a time, until done, cancelled,
    expired, or the hold lost; False when the key stopped being active meanwhile (checked
    every CALLER_RECHECK_SECONDS, as a revoked key is refused on /v1)."""
    input_file = File.objects.filter(file_id=batch.input_file_id).first()
    if input_file is None:
        Batch.objects.filter(pk=batch.pk).update(
            status=Batch.Status.FAILED,
            failed_at=timezone.now(),
            errors=[
                {
                    "code": "invalid_file",
                    "message": f"The input file {batch.input_file_id} no longer exists.",
                    "param": "input_file_id",
                    "line": None,
                }
            ],
        )
        return True
    stop = asyncio.Event()
    checked = time.monotonic()
    pacer = line_pacer(
        concurrency=settings.OGEM_BATCH_CONCURRENCY,
        threshold=settings.OGEM_BATCH_YIELD_CPU,
        pace=settings.OGEM_BATCH_YIELD_PACE,
        # In the embedded default the server's live requests share this process: only the
        # batch's thread is its own.
        own_seconds=time.thread_time
        if settings.OGEM_BATCH_RUNNER == "thread"
        else process_cpu_seconds,
    )
    try:
        for chunk in _chunks(file_lines(file=input_file), settings.OGEM_BATCH_CONCURRENCY):
            status = batch_lease_renew(batch=batch, owner=owner)
            if status != Batch.Status.IN_PROGRESS or timezone.now() >= batch.expires_at:
                return True
            if time.monotonic() - checked >= CALLER_RECHECK_SECONDS:
                checked = time.monotonic()
                fresh = loop.run_until_complete(_batch_caller(batch))
                if fresh is None:
                    return False
                caller = fresh
            answered = batch_lines_answered(batch=batch, numbers=[number for number, _ in chunk])
            todo = [(number, line) for number, line in chunk if number not in answered]
            if not todo:
                continue
            _chunk_run(batch, caller, owner, todo, stop, pacer, loop=loop)
            if stop.is_set():
                return True
        return True
    finally:
        if pacer is not None and pacer.busy_samples:
            logger.info(
                "batch %s yielded the CPU to other processes in %d samples; %d lines started "
                "at the minimum pace",
                batch.batch_id,
                pacer.busy_samples,
                pacer.paced_starts,
            )


def _chunk_run(
    batch: Batch,
    caller: Caller,
    owner: str,
    todo: list[tuple[int, bytes]],
    stop: asyncio.Event,
    pacer: LinePacer | None,
    *,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Run a chunk's lines and keep their answers: all at once when the chunk ends within
    PROGRESS_SECONDS (at full speed, one write a chunk), else those answered so far every
    PROGRESS_SECONDS while the rest run (lines started at the pacer's minimum pace, a slow
    upstream), so that `request_counts` grows as lines are answered."""
    lines = [
        loop.create_task(_line_paced(batch, caller, number, line, stop, pacer))
        for number, line in todo
    ]
    keeper = loop.create_task(_lease_keep(batch, owner, stop))
    pending: set[asyncio.Task[LineResult | None]] = set(lines)
    try:
        while pending:
            done, pending = loop.run_until_complete(asyncio.wait(pending, timeout=PROGRESS_SECONDS))
            # Written between two waits of the loop (the lines in flight pause meanwhile); each
            # line is in one `done` only, so its answer is kept once, as ever.
            results = [task.result() for task in done if task.exception() is None]
            _results_record(batch, [result for result in results if result is not None])
            if any(result is not None for result in results):
                batch_progress_publish(batch_pk=batch.pk)
            for task in done:
                if (error := task.exception()) is not None:
                    raise error
    finally:
        for task in (*pending, keeper):
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, keeper, return_exceptions=True))


async def _lease_keep(batch: Batch, owner: str, stop: asyncio.Event) -> None:
    """Renew the hold while a chunk runs (a slow upstream can take minutes); a cancel or a lost
    hold stops the lines still waiting to start."""
    renew = sync_to_async(_renew_in_thread, thread_sensitive=False)
    while True:
        await asyncio.sleep(settings.OGEM_BATCH_LEASE_SECONDS / 3)
        status = await renew(batch, owner)
        if status != Batch.Status.IN_PROGRESS:
            stop.set()
            return


def _renew_in_thread(batch: Batch, owner: str) -> str | None:
    close_old_connections()
    try:
        return batch_lease_renew(batch=batch, owner=owner)
    finally:
        connection.close()


async def _line_paced(
    batch: Batch,
    caller: Caller,
    number: int,
    line: bytes,
    stop: asyncio.Event,
    pacer: LinePacer | None,
) -> LineResult | None:
    """One line's answer, once the pacer lets it start (None: the batch stopped first)."""
    if pacer is None:
        return await _line_run(batch, caller, number, line, stop)
    if not await pacer.acquire(stop):
        return None
    try:
        return await _line_run(batch, caller, number, line, stop)
    finally:
        pacer.release()


async def _line_run(
    batch: Batch, caller: Caller, number: int, line: bytes, stop: asyncio.Event
) -> LineResult | None:
    """One line's answer, or None when the batch stopped before it was sent."""
    from gateway.internal import internal_call  # on use: it loads every adapter

    request_id = line_request_id(batch_id=batch.batch_id, line=number)
    try:
        custom_id, url, body = batch_line_parse(number=number, line=line)
    except BatchInputError as error:
        # Validated on upload; a line that is not (an older file) is answered as a 400.
        return LineResult(number, f"line-{number}", request_id, 400, error.to_body())
    endpoint = BATCH_ENDPOINTS[url]
    while True:
        if stop.is_set() or timezone.now() >= batch.expires_at:
            return None
        answer = await internal_call(
            caller=caller,
            endpoint=endpoint,
            body=body,
            request_id=request_id,
            batch_id=batch.batch_id,
        )
        error = answer.body.get("error") if answer.status == 429 else None
        if isinstance(error, dict) and error.get("code") == "rate_limit_exceeded":
            # Rate limits hold batch lines back, they do not fail them: wait and try again.
            try:
                wait = float(answer.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=min(max(wait, 0.1), RATE_LIMIT_WAIT_MAX)
                )
            continue
        return LineResult(number, custom_id, request_id, answer.status, answer.body)


def _usage_of(body: dict[str, Any]) -> dict[str, int]:
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    prompt = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
    completion = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input": prompt,
        "cached": int(prompt_details.get("cached_tokens") or 0),
        "output": completion,
        "reasoning": int(completion_details.get("reasoning_tokens") or 0),
        "total": int(usage.get("total_tokens") or prompt + completion),
    }


def _results_record(batch: Batch, results: list[LineResult]) -> None:
    """Keep answers of a chunk, all or those so far (a line answered already keeps its first
    answer), and count them."""
    if not results:
        return
    answered = batch_lines_answered(batch=batch, numbers=[result.line for result in results])
    fresh = [result for result in results if result.line not in answered]
    with transaction.atomic():
        BatchLine.objects.bulk_create(
            [
                BatchLine(
                    batch=batch,
                    line=result.line,
                    custom_id=result.custom_id,
                    request_id=result.request_id,
                    status_code=result.status_code,
                    body=result.body,
                )
                for result in fresh
            ],
            ignore_conflicts=True,
        )
        ok = [result for result in fresh if result.status_code == 200]
        totals = {"input": 0, "cached": 0, "output": 0, "reasoning": 0, "total": 0}
        for result in ok:
            for name, value in _usage_of(result.body).items():
                totals[name] += value
        Batch.objects.filter(pk=batch.pk).update(
            request_completed=F("request_completed") + len(ok),
            request_failed=F("request_failed") + len(fresh) - len(ok),
            input_tokens=F("input_tokens") + totals["input"],
            cached_tokens=F("cached_tokens") + totals["cached"],
            output_tokens=F("output_tokens") + totals["output"],
            reasoning_tokens=F("reasoning_tokens") + totals["reasoning"],
            total_tokens=F("total_tokens") + totals["total"],
        )
    batch_lines_record(endpoint=batch.endpoint, ok=len(ok), failed=len(fresh) - len(ok))


# ---- Finishing ----------------------------------------------------------------------------------


def _output_line(row: BatchLine) -> bytes:
    """OpenAI's batch output line."""
    return (
        orjson.dumps(
            {
                "id": f"batch_req_{row.request_id}",
                "custom_id": row.custom_id,
                "response": {
                    "status_code": row.status_code,
                    "request_id": row.request_id,
                    "body": row.body,
                },
                "error": None,
            }
        )
        + b"\n"
    )


def _expired_lines(batch: Batch, input_file: File | None) -> Iterator[tuple[int, bytes]]:
    """OpenAI's error lines for the requests the window closed on, with their line numbers."""
    if input_file is None:
        return
    answered = batch_lines_ordered_numbers(batch)
    next_answered = next(answered, None)
    for number, line in file_lines(file=input_file):
        while next_answered is not None and next_answered < number:
            next_answered = next(answered, None)
        if next_answered == number:
            continue
        try:
            custom_id, _, _ = batch_line_parse(number=number, line=line)
        except BatchInputError:
            custom_id = f"line-{number}"
        yield (
            number,
            orjson.dumps(
                {
                    "id": f"batch_req_{line_request_id(batch_id=batch.batch_id, line=number)}",
                    "custom_id": custom_id,
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion "
                        "window expired.",
                    },
                }
            )
            + b"\n",
        )


def batch_lines_ordered_numbers(batch: Batch) -> Iterator[int]:
    return (
        BatchLine.objects.filter(batch=batch)
        .order_by("line")
        .values_list("line", flat=True)
        .iterator(chunk_size=2000)
    )


def _error_stream(batch: Batch, expired: Iterator[tuple[int, bytes]]) -> Iterator[bytes]:
    """The answered lines that failed and the expired ones, merged in input order."""
    failed = ((row.line, _output_line(row)) for row in batch_lines_ordered(batch=batch, ok=False))
    pending_failed = next(failed, None)
    pending_expired = next(expired, None)
    while pending_failed is not None or pending_expired is not None:
        if pending_expired is None or (
            pending_failed is not None and pending_failed[0] < pending_expired[0]
        ):
            assert pending_failed is not None
            yield pending_failed[1]
            pending_failed = next(failed, None)
        else:
            yield pending_expired[1]
            pending_expired = next(expired, None)


class _Counted:
    """Passes a stream on and counts its items (the expired lines, for request_counts)."""

    def __init__(self, items: Iterator[Any]) -> None:
        self.items = items
        self.count = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self.items)
        self.count += 1
        return item


def _file_write(*, batch: Batch, caller: Caller, kind: str, chunks: Iterator[bytes]) -> str:
    """A `batch_output` file of these lines, or "" when there are none (none is written)."""
    first = next(chunks, None)
    if first is None:
        return ""

    def all_chunks() -> Iterator[bytes]:
        yield first
        yield from chunks

    created = file_create(
        caller=caller,
        chunks=all_chunks(),
        filename=f"{batch.batch_id}_{kind}.jsonl",
        purpose="batch_output",
        expires_after=batch.output_expires_after,
    )
    return created.file_id


def batch_finish(
    batch: Batch,
    *,
    caller: Caller,
    status: str,
    errors: list[dict[str, Any]] | None = None,
) -> str:
    """Write the output and error files and end the batch in `status`. A completed batch goes
    through `finalizing` first; a cancelled one stays `cancelling` until its files are written."""
    now = timezone.now()
    if status == Batch.Status.COMPLETED:
        Batch.objects.filter(pk=batch.pk, finalizing_at__isnull=True).update(finalizing_at=now)
        Batch.objects.filter(pk=batch.pk).exclude(status__in=ENDED).update(
            status=Batch.Status.FINALIZING
        )
    input_file = File.objects.filter(file_id=batch.input_file_id).first()
    output_file_id = _file_write(
        batch=batch,
        caller=caller,
        kind="output",
        chunks=(_output_line(row) for row in batch_lines_ordered(batch=batch, ok=True)),
    )
    expired = _Counted(
        _expired_lines(batch, input_file) if status == Batch.Status.EXPIRED else iter(())
    )
    error_file_id = _file_write(
        batch=batch, caller=caller, kind="error", chunks=_error_stream(batch, expired)
    )
    lines = BatchLine.objects.filter(batch=batch)
    completed = lines.filter(status_code=200).count()
    failed = lines.exclude(status_code=200).count() + expired.count
    stamp = {
        Batch.Status.COMPLETED: "completed_at",
        Batch.Status.FAILED: "failed_at",
        Batch.Status.EXPIRED: "expired_at",
        Batch.Status.CANCELLED: "cancelled_at",
    }[Batch.Status(status)]
    fields: dict[str, Any] = {
        "status": status,
        stamp: timezone.now(),
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
        "request_completed": completed,
        "request_failed": failed,
        "lease_owner": "",
        "lease_expires_at": None,
    }
    if errors is not None:
        fields["errors"] = errors
    ended = Batch.objects.filter(pk=batch.pk).exclude(status__in=ENDED).update(**fields)
    if ended:
        batch_ended_record(status=status)
        batch_progress_publish(batch_pk=batch.pk)
    return status


# ---- The sweep and the in-process runner --------------------------------------------------------


def batches_due(*, now: datetime | None = None) -> list[str]:
    """Ids of the batches to (re)start: not ended, held by no live worker."""
    moment = now or timezone.now()
    return list(batches_resumable(now=moment).values_list("batch_id", flat=True)[:1000])


def batch_run_in_thread(
    *, batch_id: str, step: Callable[..., str | None] = batch_run
) -> threading.Thread:
    """The embedded default's runner (no broker): the batch runs (`step`: as far as it goes) in a
    daemon thread of this process, so that creating it answers at once."""

    def run() -> None:
        owner = uuid.uuid4().hex
        for _ in range(THREAD_ATTEMPTS):
            close_old_connections()
            try:
                step(batch_id=batch_id, owner=owner)
                return
            except OperationalError:
                # SQLite busy past its timeout: again, with the hold this thread may still have.
                logger.warning("batch %s: database busy, trying again", batch_id, exc_info=True)
                time.sleep(0.1)
            except Exception:
                logger.exception("batch %s failed in its thread; it resumes when read", batch_id)
                return
            finally:
                connection.close()

    thread = threading.Thread(target=run, name=f"batch-{batch_id}", daemon=True)
    thread.start()
    return thread

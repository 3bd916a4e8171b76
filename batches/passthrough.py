"""Batches passed through to a provider's own batch API (docs/batches.md, "Pass-through").

A model group whose deployment says `batch_mode: passthrough` has its batches sent whole to that
deployment's provider (OpenAI, Azure OpenAI, Anthropic Message Batches, Gemini batch mode:
providers/*/batch.py). Each step, run by a worker that holds the batch's lease like a batch run by
Ogem (batches/runner.py), does what is due and returns: send the batch (once), forward a cancel,
read the provider's state into `request_counts`, and when the provider ended the batch, keep its
results as the batch's lines and request log rows and write the output and error files.
Beat's sweep (`batches_sweep`, every 15 s) is the poll: it runs a step of every open batch no
worker holds. In the embedded default (no beat), reading the batch runs a step.

Exactly once: a line's answer is its `BatchLine` row and its usage its RequestLog row (unique on
the line's request id), written in one transaction; a step repeated after a crash writes nothing
twice. Its cost and tokens then go to the key's, team's, user's and organization's budget
counters and tpm windows (`gateway.governance.governance_charge`) under the same request id, a
marked settle applied once however often a step charges it again.

Budgets: nothing is reserved up front; a batch is refused at creation when a budget of its key is
already spent, and cancelled at the provider at the poll that finds one spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from batches.models import Batch, BatchLine
from batches.runner import (
    batch_finish,
    batch_lease_release,
    batch_lease_take,
    batch_owner_of,
    line_request_id,
)
from batches.runner import batch_run as ogem_batch_run
from batches.selectors import ENDED, batch_lines_answered, batches_open_counts
from billing.pricing import Price, cost_from_price, deployment_price
from billing.services import usage_events_record
from files.batch_input import BATCH_ENDPOINTS, BatchInputError, batch_line_parse
from files.models import File
from files.selectors import file_lines
from gateway.context import Caller, Usage
from gateway.errors import BudgetExceededError, GatewayError, InvalidRequestError
from gateway.governance import Charge, governance_budget_check, governance_charge
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.streaming import usage_fill
from ogem_site.metrics import batch_lines_record, batches_open_set
from providers.base import Deployment, Endpoint
from providers.batch import BatchRequest, BatchResult, UpstreamBatch
from providers.registry import batch_api_get

logger = logging.getLogger(__name__)

# The key a line is known by upstream: its line number (custom ids need not fit a provider's
# rules, e.g. Anthropic's 64 characters of [a-zA-Z0-9_-]).
_KEY_PREFIX = "line-"
KEY_GONE = "The key that created this batch is no longer active."


def deployment_batch_mode(deployment: Deployment) -> str:
    """A deployment's `batch_mode` param: "ogem" (the default) or "passthrough"."""
    return str(deployment.params.get("batch_mode") or "ogem")


def batch_passthrough_target(
    *, caller: Caller, models: list[str], endpoint: str
) -> Deployment | None:
    """The deployment a new batch of these models is passed through to, or None when Ogem runs
    it. A model group is passed through when one of its deployments the caller may use says
    `batch_mode: passthrough` (the first by priority); such a batch must name that one model,
    and an endpoint the provider's batch API takes (400 otherwise)."""
    registry = registry_get()
    target = BATCH_ENDPOINTS.get(endpoint)
    for model in models:
        try:
            group = deployments_for(caller=caller, model=model, endpoint=target, registry=registry)
        except GatewayError:
            continue  # the lines were checked on upload; the runner answers what changed since
        chosen = sorted(
            (
                d
                for d in group
                if deployment_batch_mode(d) == "passthrough" and batch_api_get(d.provider)
            ),
            key=lambda d: (d.priority, d.id),
        )
        if not chosen:
            continue
        deployment = chosen[0]
        if len(models) > 1:
            raise InvalidRequestError(
                f"The model `{model}` passes batches through to {deployment.provider}: its "
                "batch file must name that one model.",
                param="input_file_id",
                code="invalid_batch_input",
            )
        api = batch_api_get(deployment.provider)
        if api is None or target not in api.endpoints:  # api: never None (chosen above)
            raise InvalidRequestError(
                f"The model `{model}` passes batches through to {deployment.provider}, whose "
                f"batch API does not take {endpoint}.",
                param="endpoint",
                code="invalid_endpoint",
            )
        return deployment
    return None


# ---- A step ---------------------------------------------------------------------------------


def batch_step(*, batch_id: str, owner: str | None = None) -> str | None:
    """Run what is due of a batch, whichever its mode; its status then, or None when this worker
    may not hold it now. Idempotent."""
    mode = Batch.objects.filter(batch_id=batch_id).values_list("mode", flat=True).first()
    if mode != Batch.Mode.PASSTHROUGH:
        try:
            return ogem_batch_run(batch_id=batch_id, owner=owner)
        finally:
            batches_open_set(counts=batches_open_counts())
    owner = owner or uuid.uuid4().hex
    batch = batch_lease_take(batch_id=batch_id, owner=owner)
    if batch is None:
        return None
    loop = asyncio.new_event_loop()
    try:
        return _step_held(batch, loop=loop)
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(_clients_close())
        loop.close()
        batch_lease_release(batch=batch, owner=owner)
        batches_open_set(counts=batches_open_counts())


async def _clients_close() -> None:
    from ogem_site.redis import redis_clients_close
    from providers.http import http_clients_close

    await http_clients_close()
    await redis_clients_close()


def _fail(batch: Batch, *, code: str, message: str) -> str:
    return batch_finish(
        batch,
        caller=batch_owner_of(batch),
        status=Batch.Status.FAILED,
        errors=[{"code": code, "message": message, "param": None, "line": None}],
    )


def _step_held(batch: Batch, *, loop: asyncio.AbstractEventLoop) -> str:
    deployment = registry_get().by_id.get(batch.deployment_id)
    api = batch_api_get(deployment.provider) if deployment is not None else None
    if deployment is None or api is None:
        return _fail(
            batch,
            code="model_not_found",
            message=f"The deployment {batch.deployment_id} this batch was passed through to "
            "is no longer configured.",
        )
    endpoint = BATCH_ENDPOINTS[batch.endpoint]
    # A key revoked (expired, deleted) stops its batch, as for a batch run by Ogem: the cancel
    # is forwarded, and the batch fails with what the provider answered until then.
    caller = loop.run_until_complete(_batch_caller(batch))
    revoked = caller is None
    if revoked and not batch.upstream_batch_id:
        return _fail(batch, code="invalid_api_key", message=KEY_GONE)
    if caller is not None and batch.status not in (Batch.Status.CANCELLING, *ENDED):
        _budget_stop(batch, caller=caller, endpoint=endpoint, loop=loop)
    try:
        if not batch.upstream_batch_id:
            if batch.status == Batch.Status.CANCELLING:
                return batch_finish(
                    batch, caller=batch_owner_of(batch), status=Batch.Status.CANCELLED
                )
            requests = _requests(batch)
            if requests is None:
                return _fail(
                    batch,
                    code="invalid_file",
                    message=f"The input file {batch.input_file_id} no longer exists.",
                )
            found = None
            if batch.submitted_at is not None:
                # Sent before, its id not kept (the worker died in between): look it up first.
                found = loop.run_until_complete(
                    api.find(deployment=deployment, marker=batch.batch_id)
                )
            if found is None:
                Batch.objects.filter(pk=batch.pk).update(submitted_at=timezone.now())
                found = loop.run_until_complete(
                    api.submit(
                        deployment=deployment,
                        endpoint=endpoint,
                        requests=requests,
                        marker=batch.batch_id,
                    )
                )
            upstream_id, file_id = found
            Batch.objects.filter(pk=batch.pk).update(
                upstream_batch_id=upstream_id, upstream_file_id=file_id
            )
            batch.upstream_batch_id, batch.upstream_file_id = upstream_id, file_id
        state = loop.run_until_complete(
            api.poll(deployment=deployment, batch_id=batch.upstream_batch_id)
        )
        batch.refresh_from_db(fields=["status"])
        stopping = revoked or batch.status == Batch.Status.CANCELLING
        if stopping and state.status == "in_progress":
            loop.run_until_complete(
                api.cancel(deployment=deployment, batch_id=batch.upstream_batch_id)
            )
        if state.status != "ended":
            Batch.objects.filter(pk=batch.pk).exclude(status__in=ENDED).update(
                request_completed=state.completed, request_failed=state.failed
            )
            return batch.status
        results = loop.run_until_complete(
            api.results(deployment=deployment, endpoint=endpoint, batch=state)
        )
    except GatewayError as error:
        if error.status >= 500 or error.status == 429:
            # The provider is away or busy: the next sweep tries again.
            logger.warning("batch %s: %s (next poll retries)", batch.batch_id, error.message)
            return batch.status
        return _fail(batch, code=error.code or "upstream_error", message=error.message)
    return _end(
        batch,
        deployment=deployment,
        state=state,
        results=results,
        caller=caller or batch_owner_of(batch),
        loop=loop,
        revoked=revoked,
    )


async def _batch_caller(batch: Batch) -> Caller | None:
    """The key that created the batch, as a live request of it is admitted; None once it is
    no longer active."""
    from gateway.auth import caller_by_key_id  # on use: it loads the key cache and Redis

    if batch.by_master:
        return Caller(is_master=True)
    if batch.key_id is None:
        return None
    return await caller_by_key_id(key_id=batch.key_id)


def _budget_stop(
    batch: Batch, *, caller: Caller, endpoint: Endpoint, loop: asyncio.AbstractEventLoop
) -> bool:
    """Whether a budget of the batch's key ran out: then the batch is `cancelling` (the
    provider's batch is cancelled), with the reason in its errors. Nothing was reserved for it
    (docs/batches.md), so other spend may exhaust the budget while the provider runs it."""
    try:
        loop.run_until_complete(
            governance_budget_check(caller=caller, model=batch.model, endpoint=endpoint)
        )
    except BudgetExceededError as error:
        now = timezone.now()
        Batch.objects.filter(
            pk=batch.pk, status__in=(Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS)
        ).update(
            status=Batch.Status.CANCELLING,
            cancelling_at=now,
            errors=[{"code": error.code, "message": error.message, "param": None, "line": None}],
        )
        batch.refresh_from_db(fields=["status", "cancelling_at", "errors"])
        return True
    except GatewayError as error:  # Redis away under policy `closed`: the next poll checks
        logger.warning("batch %s: %s", batch.batch_id, error.message)
    return False


def _requests(batch: Batch) -> list[BatchRequest] | None:
    """The input file's requests, keyed by line number; None when the file is gone."""
    input_file = File.objects.filter(file_id=batch.input_file_id).first()
    if input_file is None:
        return None
    requests = []
    for number, line in file_lines(file=input_file):
        try:
            _, _, body = batch_line_parse(number=number, line=line)
        except BatchInputError:
            continue  # validated on upload: an older file's bad line is not sent
        requests.append(BatchRequest(key=f"{_KEY_PREFIX}{number}", body=body))
    return requests


def _custom_ids(batch: Batch) -> tuple[dict[int, str], dict[int, str]]:
    """Each line's custom id, and the end customer (its body's `user`) of the lines naming one."""
    input_file = File.objects.filter(file_id=batch.input_file_id).first()
    found: dict[int, str] = {}
    users: dict[int, str] = {}
    for number, line in file_lines(file=input_file) if input_file is not None else ():
        try:
            found[number], _, body = batch_line_parse(number=number, line=line)
        except BatchInputError:
            found[number] = f"line-{number}"
            continue
        if isinstance(body.get("user"), str) and body["user"]:
            users[number] = body["user"]
    return found, users


def _end(
    batch: Batch,
    *,
    deployment: Deployment,
    state: UpstreamBatch,
    results: list[BatchResult],
    caller: Caller,
    loop: asyncio.AbstractEventLoop,
    revoked: bool = False,
) -> str:
    """Keep the provider's results (once), charge them to the key's budgets (once) and end the
    batch as the provider did (failed, when its key stopped being active)."""
    custom_ids, end_customers = _custom_ids(batch)
    by_line: dict[int, BatchResult] = {}
    for result in results:
        number = result.key.removeprefix(_KEY_PREFIX)
        if number.isdigit() and int(number) in custom_ids:
            by_line.setdefault(int(number), result)
    kept = batch_lines_answered(batch=batch, numbers=list(by_line))
    fresh = {number: result for number, result in by_line.items() if number not in kept}
    with transaction.atomic():
        BatchLine.objects.bulk_create(
            [
                BatchLine(
                    batch=batch,
                    line=number,
                    custom_id=custom_ids[number],
                    request_id=line_request_id(batch_id=batch.batch_id, line=number),
                    status_code=result.status_code,
                    body=result.body,
                )
                for number, result in fresh.items()
            ],
            ignore_conflicts=True,
        )
        totals = _usage_record(
            batch, deployment=deployment, results=fresh, end_customers=end_customers
        )
        if fresh:
            Batch.objects.filter(pk=batch.pk).update(
                **{name: F(name) + value for name, value in totals.items()}
            )
    # Every line answered, not only the fresh ones: a step that died after the rows were written
    # charges them now, and a charge already applied is not applied again (its request id).
    loop.run_until_complete(
        governance_charge(
            caller=caller,
            model=batch.model,
            endpoint=BATCH_ENDPOINTS[batch.endpoint],
            charges=_charges(
                batch, deployment=deployment, results=by_line, end_customers=end_customers
            ),
        )
    )
    ok = sum(1 for result in fresh.values() if result.status_code == 200)
    batch_lines_record(endpoint=batch.endpoint, ok=ok, failed=len(fresh) - ok)
    if revoked:
        return _fail(batch, code="invalid_api_key", message=KEY_GONE)
    status = {
        "completed": Batch.Status.COMPLETED,
        "cancelled": Batch.Status.CANCELLED,
        "expired": Batch.Status.EXPIRED,
    }.get(state.outcome)
    if status is None:
        return _fail(
            batch,
            code="upstream_batch_failed",
            message=state.message or f"{deployment.provider} failed the batch.",
        )
    return batch_finish(batch, caller=batch_owner_of(batch), status=status)


def _line_usage(
    result: BatchResult, *, deployment: Deployment, price: Price | None
) -> tuple[Usage, Decimal]:
    """A line's usage as the provider reported it, and its cost at the batch price factor."""
    usage = Usage()
    reported = result.body.get("usage")
    if result.status_code == 200 and isinstance(reported, dict):
        usage_fill(usage, reported, provider=deployment.provider)
    cost = Decimal(0)
    if price is not None and result.status_code == 200:
        cost = cost_from_price(price=price, usage=usage) * settings.OGEM_BATCH_PRICE_FACTOR
    return usage, cost


def _charges(
    batch: Batch,
    *,
    deployment: Deployment,
    results: dict[int, BatchResult],
    end_customers: dict[int, str],
) -> list[Charge]:
    """What each answered line spent, for the key's budgets and tpm (under its request id)."""
    price = deployment_price(deployment=deployment)
    charges = []
    for number, result in results.items():
        usage, cost = _line_usage(result, deployment=deployment, price=price)
        if cost or usage.total_tokens:
            request_id = line_request_id(batch_id=batch.batch_id, line=number)
            tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
            charges.append(
                Charge(
                    request_id=request_id,
                    tokens=tokens,
                    cost=cost,
                    end_customer=end_customers.get(number),
                )
            )
    return charges


def _usage_record(
    batch: Batch,
    *,
    deployment: Deployment,
    results: dict[int, BatchResult],
    end_customers: dict[int, str],
) -> dict[str, int]:
    """One request log row per answered line (idempotent on its request id), costed from the
    provider's usage at the batch price factor; the batch's token totals."""
    price = deployment_price(deployment=deployment)
    user_id = batch.key.user_id if batch.key_id is not None and batch.key else None
    events: list[dict[str, Any]] = []
    totals = {"input": 0, "cached": 0, "output": 0, "reasoning": 0, "total": 0}
    now = time.time()
    for number, result in results.items():
        usage, cost = _line_usage(result, deployment=deployment, price=price)
        if result.status_code == 200:
            totals["input"] += usage.prompt_tokens
            totals["cached"] += usage.cached_tokens
            totals["output"] += usage.completion_tokens
            totals["reasoning"] += usage.reasoning_tokens
            totals["total"] += usage.total_tokens
        events.append(
            {
                "request_id": line_request_id(batch_id=batch.batch_id, line=number),
                "ts": now,
                "organization_id": batch.organization_id,
                "team_id": batch.team_id,
                "key_id": batch.key_id,
                "user_id": user_id,
                "end_customer": end_customers.get(number, ""),
                "endpoint": BATCH_ENDPOINTS[batch.endpoint].value,
                "model": batch.model,
                "provider": deployment.provider,
                "deployment": deployment.id,
                "status_code": result.status_code,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "cost": str(cost),
                "batch_id": batch.batch_id,
            }
        )
    if events:
        usage_events_record(events=events)
    return {
        "input_tokens": totals["input"],
        "cached_tokens": totals["cached"],
        "output_tokens": totals["output"],
        "reasoning_tokens": totals["reasoning"],
        "total_tokens": totals["total"],
    }

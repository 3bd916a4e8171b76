"""Vertex AI's supervised tuning of Gemini models, spoken in OpenAI's fine-tuning shapes (for
fine_tuning/upstream.py; like the adapters, this knows nothing of tenants).

Vertex reads its training data from Cloud Storage: a training file in OpenAI's chat format
(JSONL, `{"messages": [...], "tools": [...]}` a line) is converted to Gemini's tuning format
(`{"systemInstruction", "contents": [{"role": "user"|"model", "parts"}], "tools"}` a line) and
uploaded with the GCS JSON API's simple upload (`POST {gcs}/upload/storage/v1/b/{bucket}/o
?uploadType=media&name=...`) to the deployment's bucket. The job is a `TuningJob`
(`POST {base}/v1/projects/{p}/locations/{l}/tuningJobs`, `GET {base}/v1/{name}`,
`POST {base}/v1/{name}:cancel`); its state maps to OpenAI's status, its tuned model's endpoint
(`projects/{p}/locations/{l}/endpoints/{id}`) is the fine-tuned model, called through the Vertex
AI adapter like any Gemini model. Deleting it undeploys the model from the endpoint
(`POST {base}/v1/{endpoint}:undeployModel`, a long-running Operation read at `GET {base}/v1/
{operation}` until done: Vertex refuses to delete a deployed model), then deletes the model
(`DELETE {base}/v1/projects/{p}/locations/{l}/models/{id}`) and the endpoint (`DELETE {base}/v1/
{endpoint}`), whose Operations Vertex finishes on its own.

Vertex has no events API: the events are the job's state changes, read from the times it
records (`createTime`, `startTime`, `endTime`), with ids derived from the job's name so that
each is stored once. Nor pause nor resume: those answer 400. Blocking httpx: this runs in
Celery or a view's worker thread, never on the /v1 event loop.

Deployment params: `gcs_bucket_name` (`bucket` or `bucket/prefix`; the environment's
`GCS_BUCKET_NAME` for an operator deployment), `gcs_api_base` (default
`https://storage.googleapis.com`), `vertex_tuning_adapter_size` (`ADAPTER_SIZE_ONE` ... `_SIXTEEN`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import orjson

from providers.base import Deployment
from providers.blocking import upstream_json_exchange
from providers.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    UpstreamTimeoutError,
)
from providers.gemini.translate import chat_request_to_gemini
from providers.vertex_ai.adapter import VertexAIAdapter
from providers.vertex_ai.auth import deployment_credentials, deployment_token_blocking

GCS_API_BASE = "https://storage.googleapis.com"
OBJECT_PREFIX = "ogem-fine-tuning"
# A converted training file is held in memory up to this size, then on disk.
SPOOL_BYTES = 8 * 1024 * 1024
UPLOAD_CHUNK = 256 * 1024
# The Gemini models Vertex tunes (supervised), by the names Ogem accepts for them: 2.0 models
# are tuned by their versioned name only.
TUNABLE = {
    "gemini-2.5-pro": "gemini-2.5-pro",
    "gemini-2.5-flash": "gemini-2.5-flash",
    "gemini-2.5-flash-lite": "gemini-2.5-flash-lite",
    "gemini-2.0-flash": "gemini-2.0-flash-001",
    "gemini-2.0-flash-001": "gemini-2.0-flash-001",
    "gemini-2.0-flash-lite": "gemini-2.0-flash-lite-001",
    "gemini-2.0-flash-lite-001": "gemini-2.0-flash-lite-001",
}
# Vertex's JobState → OpenAI's status. The states in passing (CANCELLING, UPDATING) have none:
# the status the job had stays.
STATUS = {
    "JOB_STATE_PENDING": "validating_files",
    "JOB_STATE_QUEUED": "queued",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_PAUSED": "paused",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_EXPIRED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
}
# google.rpc.Code names, for a failed job's `error.code`.
RPC_CODES = {
    2: "unknown",
    3: "invalid_argument",
    4: "deadline_exceeded",
    5: "not_found",
    7: "permission_denied",
    8: "resource_exhausted",
    9: "failed_precondition",
    13: "internal",
    14: "unavailable",
}
# What a Vertex tuning example may hold (parts: text, Cloud Storage files, function calls).
PART_KINDS = ("text", "fileData", "functionCall", "functionResponse")
# How long a model's delete waits for Vertex to undeploy it, and the longest pause between reads
# of that operation.
UNDEPLOY_WAIT_SECONDS = 120.0
UNDEPLOY_POLL_MAX_SECONDS = 5.0


def tunable_model(model: str) -> str | None:
    """The name Vertex tunes `model` as, or None when it does not tune it."""
    return TUNABLE.get(model)


def _invalid_file(param: str, message: str) -> InvalidRequestError:
    kind = param.removesuffix("_file")
    return InvalidRequestError(message, param=param, code=f"invalid_{kind}_file")


def _example_convert(example: Any, *, deployment: Deployment) -> dict[str, Any]:
    """One chat-format example → one Gemini tuning example; ValueError says what is wrong."""
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list):
        raise ValueError("has no `messages`: Vertex AI tunes on chat-format files only")
    unknown = sorted(set(example) - {"messages", "tools", "parallel_tool_calls"})
    if unknown:
        raise ValueError(f"has `{unknown[0]}`, which Vertex AI tuning does not take")
    messages = example["messages"]
    if (
        not messages
        or not isinstance(messages[-1], dict)
        or messages[-1].get("role") != "assistant"
    ):
        raise ValueError("must end with an assistant message (the answer to learn)")
    try:
        request = chat_request_to_gemini(
            body={"messages": messages, "tools": example.get("tools")}, deployment=deployment
        )
    except InvalidRequestError as exc:
        raise ValueError(exc.message) from None
    converted = {k: request[k] for k in ("systemInstruction", "contents", "tools") if k in request}
    for content in converted["contents"]:
        for part in content["parts"]:
            if not any(kind in part for kind in PART_KINDS):
                raise ValueError("has media Vertex AI tuning cannot read: use gs:// URIs")
            if "fileData" in part and not part["fileData"]["fileUri"].startswith("gs://"):
                raise ValueError("has a media URL that is not a gs:// URI")
    return converted


def dataset_convert(
    stream: IO[bytes], *, deployment: Deployment, param: str, into: IO[bytes]
) -> str:
    """An OpenAI chat-format JSONL file → Vertex's Gemini tuning JSONL, written to `into` a line
    at a time (a file may be hundreds of MB); its SHA-256. A bad line is a 400 naming the file's
    parameter and the line."""
    digest = hashlib.sha256()
    examples = 0
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _invalid_file(param, f"Line {number} of `{param}` is not JSON.") from None
        try:
            line = orjson.dumps(_example_convert(example, deployment=deployment)) + b"\n"
        except ValueError as exc:
            raise _invalid_file(param, f"Line {number} of `{param}` {exc}.") from None
        digest.update(line)
        into.write(line)
        examples += 1
    if not examples:
        raise _invalid_file(param, f"`{param}` has no examples.")
    return digest.hexdigest()


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(UPLOAD_CHUNK):
        yield chunk


def _unix(value: Any) -> int | None:
    """An RFC 3339 timestamp (Google's `Timestamp` in JSON) → Unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _count(value: Any) -> int | None:
    """An int64 (a JSON string or number) → int."""
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _event(
    name: str, kind: str, *, at: int | None, message: str, level: str = "info"
) -> dict[str, Any]:
    digest = hashlib.sha256(f"{name}|{kind}".encode()).hexdigest()[:24]
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{digest}",
        "created_at": at,
        "level": level,
        "message": message,
        "type": "message",
    }


@dataclass(slots=True)
class VertexTuning:
    """One Vertex AI project's tuning API and Cloud Storage bucket, from the deployment a job
    goes through."""

    deployment: Deployment
    # The last TuningJob read, by name: its events and checkpoints are derived from it.
    _seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def _adapter(self) -> VertexAIAdapter:
        return VertexAIAdapter()

    def bucket(self) -> tuple[str, str]:
        """(bucket, object prefix) from `gcs_bucket_name`; empty when none is configured."""
        configured = str(self.deployment.params.get("gcs_bucket_name") or "")
        if not configured and self.deployment.address_policy is None:
            configured = os.environ.get("GCS_BUCKET_NAME", "")
        bucket, _, prefix = configured.removeprefix("gs://").strip("/").partition("/")
        return bucket, prefix.strip("/")

    @property
    def account(self) -> str:
        """The bucket and identity files are forwarded to: one upload per file serves every
        job on them."""
        credential = deployment_credentials(self.deployment)
        who = (
            credential.label
            if credential is not None
            else hashlib.sha256((self.deployment.api_key or "").encode()).hexdigest()[:16]
        )
        bucket, prefix = self.bucket()
        return f"vertex_ai|gs://{bucket}/{prefix}|{who}"

    def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: Iterator[bytes] | None = None,
        length: int = 0,
        query: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {deployment_token_blocking(self.deployment)}"}
        if content is not None:
            # A known length: GCS's simple upload wants it, not a chunked body.
            headers["Content-Type"] = "application/jsonl"
            headers["Content-Length"] = str(length)
        return upstream_json_exchange(
            self.deployment,
            method,
            url,
            params=query or {},
            headers=headers,
            json=json,
            content=content,
            object_only=True,
        )

    def file_upload(self, *, filename: str, stream: IO[bytes], param: str = "training_file") -> str:
        """Convert a chat-format file and upload it to the bucket; its `gs://` URI. The object
        is named by its content's digest: the same file uploads to the same object."""
        bucket, prefix = self.bucket()
        if not bucket:
            raise GatewayError(
                f"The Vertex AI deployment {self.deployment.id} names no gcs_bucket_name.",
                status=503,
                code="deployment_unavailable",
            )
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as converted:
            digest = dataset_convert(
                stream, deployment=self.deployment, param=param, into=converted
            )
            name = "/".join(p for p in (prefix, OBJECT_PREFIX, f"{digest}.jsonl") if p)
            base = str(self.deployment.params.get("gcs_api_base") or GCS_API_BASE).rstrip("/")
            answer = self._call(
                "POST",
                f"{base}/upload/storage/v1/b/{bucket}/o",
                query={"uploadType": "media", "name": name},
                content=_chunks(converted),
                length=converted.tell(),
            )
        return f"gs://{answer.get('bucket') or bucket}/{answer.get('name') or name}"

    def job_check(self, *, body: dict[str, Any]) -> None:
        """Refuse what Vertex AI tuning cannot do before any file is uploaded for it."""
        self._hyperparameters(body)

    def _hyperparameters(self, body: dict[str, Any]) -> dict[str, Any]:
        hyperparameters = dict(body.get("hyperparameters") or {})
        method = body.get("method")
        if method:
            if method.get("type") != "supervised":
                raise InvalidRequestError(
                    "Vertex AI tunes Gemini models with `supervised` tuning only.",
                    param="method.type",
                    code="unsupported_parameter",
                )
            given = (method.get("supervised") or {}).get("hyperparameters") or {}
            hyperparameters = {**given, **hyperparameters}
        if hyperparameters.get("batch_size", "auto") != "auto":
            raise InvalidRequestError(
                "Vertex AI tuning has no batch size: leave `batch_size` out or `auto`.",
                param="hyperparameters.batch_size",
                code="unsupported_parameter",
            )
        return hyperparameters

    def job_create(self, *, body: dict[str, Any]) -> dict[str, Any]:
        hyperparameters = self._hyperparameters(body)
        tuning: dict[str, Any] = {}
        if hyperparameters.get("n_epochs", "auto") != "auto":
            tuning["epochCount"] = hyperparameters["n_epochs"]
        if hyperparameters.get("learning_rate_multiplier", "auto") != "auto":
            tuning["learningRateMultiplier"] = hyperparameters["learning_rate_multiplier"]
        if self.deployment.params.get("vertex_tuning_adapter_size"):
            tuning["adapterSize"] = str(self.deployment.params["vertex_tuning_adapter_size"])
        spec: dict[str, Any] = {"trainingDatasetUri": body["training_file"]}
        if body.get("validation_file"):
            spec["validationDatasetUri"] = body["validation_file"]
        if tuning:
            spec["hyperParameters"] = tuning
        payload: dict[str, Any] = {
            "baseModel": tunable_model(str(body["model"])) or body["model"],
            "supervisedTuningSpec": spec,
        }
        if body.get("suffix"):
            payload["tunedModelDisplayName"] = body["suffix"]
        parent = self._adapter.location_name(self.deployment)
        answer = self._call(
            "POST",
            self._adapter.resource_url(self.deployment, f"{parent}/tuningJobs"),
            json=payload,
        )
        return self._job(answer)

    def _get(self, name: str) -> dict[str, Any]:
        resource = self._call("GET", self._adapter.resource_url(self.deployment, name))
        self._seen[name] = resource
        return resource

    def job_get(self, *, job_id: str) -> dict[str, Any]:
        return self._job(self._get(job_id))

    def job_action(self, *, job_id: str, action: str) -> dict[str, Any]:
        """`cancel` (Vertex cancels asynchronously: the job as read right after);
        Vertex has no `pause` nor `resume`."""
        if action != "cancel":
            raise InvalidRequestError(
                f"Vertex AI tuning jobs cannot be {action}d.",
                param="fine_tuning_job_id",
                code="unsupported_operation",
            )
        self._call("POST", f"{self._adapter.resource_url(self.deployment, job_id)}:cancel", json={})
        return self.job_get(job_id=job_id)

    def job_events(self, *, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The job's state changes as events, newest first."""
        resource = self._seen.get(job_id) or self._get(job_id)
        state = resource.get("state")
        created, started, ended = (
            _unix(resource.get(k)) for k in ("createTime", "startTime", "endTime")
        )
        events = [_event(job_id, "created", at=created, message="Created fine-tuning job")]
        if started is not None:
            events.append(_event(job_id, "started", at=started, message="Fine-tuning job started"))
        model = (resource.get("tunedModel") or {}).get("endpoint")
        if state == "JOB_STATE_SUCCEEDED":
            events.append(
                _event(job_id, "model", at=ended, message=f"New fine-tuned model created: {model}")
            )
            events.append(
                _event(job_id, "ended", at=ended, message="The job has successfully completed")
            )
        elif state in ("JOB_STATE_FAILED", "JOB_STATE_EXPIRED"):
            reason = (resource.get("error") or {}).get("message") or "The job failed"
            events.append(_event(job_id, "ended", at=ended, message=reason, level="error"))
        elif state == "JOB_STATE_CANCELLED":
            events.append(_event(job_id, "ended", at=ended, message="Fine-tuning job cancelled"))
        return list(reversed(events))[:limit]

    def job_checkpoints(self, *, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The tuned model's checkpoints (Vertex lists them once the job succeeded; it reports
        no metrics with them)."""
        resource = self._seen.get(job_id) or self._get(job_id)
        ended = _unix(resource.get("endTime"))
        checkpoints = [
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{item['checkpointId']}",
                "created_at": ended,
                "fine_tuned_model_checkpoint": str(item.get("endpoint") or ""),
                "step_number": _count(item.get("step")) or 0,
                "metrics": {"step": _count(item.get("step")) or 0},
            }
            for item in (resource.get("tunedModel") or {}).get("checkpoints") or []
            if item.get("checkpointId")
        ]
        checkpoints.sort(key=lambda item: -item["step_number"])
        return checkpoints[:limit]

    def model_delete(self, *, model: str) -> None:
        """Delete the tuned model whose endpoint is `model`: undeploy it (awaited: Vertex
        refuses to delete a deployed model), delete it from the Model Registry, then delete
        the emptied endpoint. An endpoint already gone is NotFoundError; a delete retried after
        a failure part way (once Vertex finished what it had started) resumes from what is
        left."""
        url = self._adapter.resource_url(self.deployment, model)
        endpoint = self._call("GET", url)
        for deployed in endpoint.get("deployedModels") or []:
            undeploying = self._call(
                "POST", f"{url}:undeployModel", json={"deployedModelId": deployed.get("id")}
            )
            self._operation_wait(undeploying, what=f"undeploying {model}")
            # `projects/.../models/{id}`, maybe with `@{version}`: the model goes, every version.
            name = str(deployed.get("model") or "").partition("@")[0]
            if name:
                try:
                    self._call("DELETE", self._adapter.resource_url(self.deployment, name))
                except NotFoundError:
                    pass  # deleted already
        self._call("DELETE", url)

    def _operation_wait(self, operation: dict[str, Any], *, what: str) -> None:
        """Read a long-running Operation until it is done; its error, or a wait past
        UNDEPLOY_WAIT_SECONDS, is an UpstreamError (a later delete resumes it)."""
        deadline = time.monotonic() + UNDEPLOY_WAIT_SECONDS
        pause = 0.2
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise UpstreamTimeoutError(
                    f"Vertex AI is still {what}; delete the model again later.",
                    provider="vertex_ai",
                )
            time.sleep(pause)
            pause = min(pause * 2, UNDEPLOY_POLL_MAX_SECONDS)
            name = str(operation.get("name") or "")
            operation = self._call("GET", self._adapter.resource_url(self.deployment, name))
        error = operation.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise UpstreamError(
                f"Vertex AI failed {what}: {message or 'no reason given'}", provider="vertex_ai"
            )

    def served_params(self) -> dict[str, Any]:
        """The deployment params the fine-tuned model's deployment keeps: the same project,
        credentials and region."""
        kept = ("vertex_credentials", "vertex_project", "vertex_location", "extra_headers")
        return {k: self.deployment.params[k] for k in kept if k in self.deployment.params}

    def _job(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A TuningJob in the shape of OpenAI's fine-tuning job, as fine_tuning reads it."""
        state = resource.get("state")
        spec = resource.get("supervisedTuningSpec") or {}
        tuning = spec.get("hyperParameters") or {}
        epochs = _count(tuning.get("epochCount"))
        hyperparameters = {
            "batch_size": "auto",
            "learning_rate_multiplier": tuning.get("learningRateMultiplier", "auto"),
            "n_epochs": epochs or "auto",
        }
        answer: dict[str, Any] = {
            "id": resource.get("name"),
            "status": STATUS.get(str(state)),
            "model": resource.get("baseModel"),
            "created_at": _unix(resource.get("createTime")),
            "finished_at": _unix(resource.get("endTime")),
            "fine_tuned_model": (resource.get("tunedModel") or {}).get("endpoint"),
            "hyperparameters": hyperparameters,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        }
        stats = (resource.get("tuningDataStats") or {}).get("supervisedTuningDataStats") or {}
        tokens = _count(stats.get("totalBillableTokenCount"))
        if state == "JOB_STATE_SUCCEEDED" and tokens is not None:
            # Vertex bills the dataset's tokens once per epoch.
            answer["trained_tokens"] = tokens * (epochs or 1)
        error = resource.get("error") or {}
        if state in ("JOB_STATE_FAILED", "JOB_STATE_EXPIRED") and error.get("message"):
            answer["error"] = {
                "code": RPC_CODES.get(_count(error.get("code")) or 0, "error"),
                "message": str(error["message"]),
                "param": None,
            }
        return answer

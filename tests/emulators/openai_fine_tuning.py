"""OpenAI's fine-tuning API, for tests/emulators/openai_api.py: `/v1/fine_tuning/jobs` (create,
retrieve, cancel, pause, resume, events, checkpoints) and `DELETE /v1/models/{model}`; Azure
OpenAI's data-plane variant at `/openai/fine_tuning/jobs` (with `api-version`), whose fine-tuned
models are named `<base>.ft-<hex>`. The files it trains on are uploaded to the emulator's Files
API (tests/emulators/openai_batches.py), whose store it reads.

A job moves on with time, as the real one does, each stage lasting `step_seconds`:
validating_files -> queued -> running (`steps` training steps, each a metrics event and a
checkpoint) -> succeeded, with a `fine_tuned_model` like `ft:gpt-4o-mini-2024-07-18:org::abc123`.
A paused job's clock stops. `fail_next` makes the next job created fail its file validation.
Shapes from OpenAI's API reference (FineTuningJob, FineTuningJobEvent, FineTuningJobCheckpoint).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

# The snapshots OpenAI fine-tunes, and the bare names it accepts for them.
FINE_TUNABLE = {
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini-2024-07-18",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06": "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo-0125": "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
ENDED = ("succeeded", "failed", "cancelled")


def _error(status: int, message: str, *, code: str | None = None, param: str | None = None):  # type: ignore[no-untyped-def]
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


@dataclass
class EmulatedJob:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    created: float
    hyperparameters: dict[str, Any]
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    azure: bool
    training_tokens: int
    status: str = "validating_files"
    fail: str | None = None
    paused_at: float | None = None
    paused_total: float = 0.0
    finished_at: int | None = None
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    reached: int = 0  # milestones already recorded: 1 queued, 2 running, 2+n step n, end


class FineTuningAPI:
    def __init__(self, files: dict[str, dict[str, Any]] | None = None) -> None:
        # The Files API's store: file id -> {"object": the File, "content": its bytes}.
        self.files = {} if files is None else files
        self.step_seconds = 0.2
        self.steps = 3
        self.fail_next: str | None = None
        self.organization = "org"
        self.jobs: dict[str, EmulatedJob] = {}
        self.models_deleted: list[str] = []

    def clear(self) -> None:
        self.__init__(self.files)  # type: ignore[misc]

    # -- routing ---------------------------------------------------------------------------------
    async def route(
        self,
        request: web.Request,
        endpoint: str,
        body: dict[str, Any],
        files: dict[str, tuple[str, bytes]],
        *,
        azure: bool,
    ) -> web.Response:
        parts = endpoint.split("/")
        method = request.method
        if parts[:2] == ["fine_tuning", "jobs"]:
            if len(parts) == 2 and method == "POST":
                return self._job_create(body, azure=azure)
            if len(parts) >= 3:
                job = self.jobs.get(parts[2])
                if job is None:
                    return _error(
                        404, f"No fine-tuning job found with id '{parts[2]}'.", code="not_found"
                    )
                self._advance(job)
                action = parts[3] if len(parts) == 4 else ""
                if method == "GET" and not action:
                    return _json(self._job_object(job))
                if method == "GET" and action == "events":
                    return self._page(list(reversed(job.events)), request)
                if method == "GET" and action == "checkpoints":
                    return self._page(job.checkpoints, request)
                if method == "POST" and action in ("cancel", "pause", "resume"):
                    return self._job_action(job, action)
        if parts[0] == "models" and len(parts) >= 2 and method == "DELETE":
            return self._model_delete("/".join(parts[1:]))
        return _error(404, f"Invalid URL ({method} {request.path})")

    # -- jobs ------------------------------------------------------------------------------------
    def _job_create(self, body: dict[str, Any], *, azure: bool) -> web.Response:
        for name in ("model", "training_file"):
            if not body.get(name):
                return _error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        snapshot = FINE_TUNABLE.get(str(body["model"]))
        if snapshot is None:
            return _error(
                400,
                f"Model {body['model']} is not available for fine-tuning or does not exist.",
                param="model",
                code="model_not_available",
            )
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None:
                continue
            found = self.files.get(str(file_id))
            if found is None or found["object"]["purpose"] != "fine-tune":
                return _error(
                    400, f"invalid {name}: {file_id}", param=name, code="invalid_request_error"
                )
        content = self.files[str(body["training_file"])]["content"]
        hyper = dict(body.get("hyperparameters") or {})
        epochs = hyper.get("n_epochs", "auto")
        epochs = 3 if epochs == "auto" else int(epochs)
        hyper = {
            "batch_size": 1 if hyper.get("batch_size", "auto") == "auto" else hyper["batch_size"],
            "learning_rate_multiplier": 1.8
            if hyper.get("learning_rate_multiplier", "auto") == "auto"
            else hyper["learning_rate_multiplier"],
            "n_epochs": epochs,
        }
        job = EmulatedJob(
            id=f"ftjob-{uuid.uuid4().hex[:24]}",
            model=snapshot,
            training_file=str(body["training_file"]),
            validation_file=body.get("validation_file"),
            created=time.time(),
            hyperparameters=hyper,
            suffix=body.get("suffix"),
            seed=int(body.get("seed") or 42),
            metadata=body.get("metadata"),
            azure=azure,
            # Roughly a token a word, times the epochs: what the job is billed for.
            training_tokens=len(content.split()) * epochs,
            fail=self.fail_next,
        )
        self.fail_next = None
        self.jobs[job.id] = job
        self._event(job, f"Validating training file: {job.training_file}")
        self._event(job, "Created fine-tuning job")
        return _json(self._job_object(job))

    def _event(
        self, job: EmulatedJob, message: str, *, level: str = "info", data: Any = None
    ) -> None:
        event: dict[str, Any] = {
            "object": "fine_tuning.job.event",
            "id": f"ftevent-{uuid.uuid4().hex[:24]}",
            "created_at": int(time.time()),
            "level": level,
            "message": message,
            "type": "metrics" if data else "message",
        }
        if data:
            event["data"] = data
        job.events.append(event)

    def _elapsed(self, job: EmulatedJob) -> float:
        now = job.paused_at if job.paused_at is not None else time.time()
        return now - job.created - job.paused_total

    def _advance(self, job: EmulatedJob) -> None:
        """Record every milestone the job's clock has passed."""
        if job.status in ENDED:
            return
        stages = self._elapsed(job) / self.step_seconds
        while job.reached < stages and job.status not in ENDED:
            job.reached += 1
            if job.reached == 1:
                if job.fail:
                    job.status = "failed"
                    job.error = {
                        "code": "invalid_training_file",
                        "message": job.fail,
                        "param": "training_file",
                    }
                    job.finished_at = int(time.time())
                    self._event(job, job.fail, level="error")
                    return
                job.status = "queued"
                self._event(job, "Files validated, moving job to queued state")
            elif job.reached == 2:
                job.status = "running"
                self._event(job, "Fine-tuning job started")
            elif job.reached <= 2 + self.steps:
                step = job.reached - 2
                loss = round(1.0 / (step + 1), 4)
                metrics = {"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5}
                self._event(job, f"Step {step}/{self.steps}: training loss={loss}", data=metrics)
                job.checkpoints.insert(
                    0,
                    {
                        "object": "fine_tuning.job.checkpoint",
                        "id": f"ftckpt_{uuid.uuid4().hex[:24]}",
                        "created_at": int(time.time()),
                        "fine_tuned_model_checkpoint": f"{self._model_name(job)}:ckpt-step-{step}",
                        "step_number": step,
                        "metrics": metrics,
                        "fine_tuning_job_id": job.id,
                    },
                )
            else:
                job.status = "succeeded"
                job.fine_tuned_model = self._model_name(job)
                job.trained_tokens = job.training_tokens
                job.finished_at = int(time.time())
                self._event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
                self._event(job, "The job has successfully completed")

    def _model_name(self, job: EmulatedJob) -> str:
        tail = job.id.removeprefix("ftjob-")
        if job.azure:
            return f"{job.model}.ft-{tail}"
        return f"ft:{job.model}:{self.organization}:{job.suffix or ''}:{tail[:8]}"

    def _job_action(self, job: EmulatedJob, action: str) -> web.Response:
        if job.status in ENDED:
            return _error(400, f"Job has already completed: {job.id}", code="invalid_request_error")
        if action == "cancel":
            job.status = "cancelled"
            job.finished_at = int(time.time())
            self._event(job, "Fine-tuning job cancelled")
        elif action == "pause":
            if job.status != "running":
                return _error(400, f"Job {job.id} is not running.")
            job.status = "paused"
            job.paused_at = time.time()
            self._event(job, "Fine-tuning job paused")
        else:
            if job.status != "paused" or job.paused_at is None:
                return _error(400, f"Job {job.id} is not paused.")
            job.paused_total += time.time() - job.paused_at
            job.paused_at = None
            job.status = "running"
            self._event(job, "Fine-tuning job resumed")
        return _json(self._job_object(job))

    def _page(self, items: list[dict[str, Any]], request: web.Request) -> web.Response:
        """`items` newest first, from after the `after` id, `limit` of them (default 20)."""
        ordered = items
        after = request.query.get("after")
        if after:
            ids = [item["id"] for item in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.query.get("limit") or 20)
        page = ordered[:limit]
        answer: dict[str, Any] = {
            "object": "list",
            "data": page,
            "has_more": len(ordered) > limit,
        }
        if page and page[0]["object"].endswith("checkpoint"):
            answer["first_id"], answer["last_id"] = page[0]["id"], page[-1]["id"]
        return _json(answer)

    def _job_object(self, job: EmulatedJob) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job",
            "id": job.id,
            "model": job.model,
            "created_at": int(job.created),
            "finished_at": job.finished_at,
            "fine_tuned_model": job.fine_tuned_model,
            "organization_id": f"org-{self.organization}",
            "result_files": [],
            "status": job.status,
            "validation_file": job.validation_file,
            "training_file": job.training_file,
            "hyperparameters": job.hyperparameters,
            "trained_tokens": job.trained_tokens,
            "error": job.error,
            "integrations": [],
            "seed": job.seed,
            "estimated_finish": None,
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": job.hyperparameters},
            },
            "metadata": job.metadata,
        }

    def _model_delete(self, model: str) -> web.Response:
        owned = {job.fine_tuned_model for job in self.jobs.values() if job.fine_tuned_model}
        if model not in owned or model in self.models_deleted:
            return _error(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        self.models_deleted.append(model)
        return _json({"id": model, "object": "model", "deleted": True})

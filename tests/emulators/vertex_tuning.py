"""Vertex AI's supervised tuning of Gemini and the Cloud Storage upload it reads from, for
tests/emulators/vertex_api.py (same socket, same bearer tokens). From Google's public reference:

- GCS JSON API simple upload, `POST /upload/storage/v1/b/{bucket}/o?uploadType=media&name=...`:
  the bytes are stored under `gs://{bucket}/{name}`, answered with the Object resource; an
  unknown bucket is 404.
- `projects.locations.tuningJobs`: `create` (`POST .../tuningJobs`: a TuningJob with `baseModel`,
  `supervisedTuningSpec{trainingDatasetUri, validationDatasetUri, hyperParameters{epochCount,
  learningRateMultiplier, adapterSize}}`, `tunedModelDisplayName`; a base model Vertex does not
  tune or a dataset URI with no object is 400 INVALID_ARGUMENT), `get`, `list` (`pageSize`,
  `pageToken`), `cancel` (`POST .../tuningJobs/{id}:cancel`: asynchronous, the job is
  JOB_STATE_CANCELLING until it is next read, then JOB_STATE_CANCELLED with `error.code` 1).
- A job moves on with time, each stage lasting `step_seconds`: JOB_STATE_PENDING; then its
  datasets are validated against the Gemini tuning format (a bad one fails the job,
  JOB_STATE_FAILED with `error{code: 3, message}`, as `fail_next` does), JOB_STATE_RUNNING with
  `startTime` and `tuningDataStats`; `running_steps` stages later JOB_STATE_SUCCEEDED with
  `endTime` and `tunedModel{model, endpoint, checkpoints}` (a checkpoint per epoch).
- The tuned model's endpoint, `POST /v1/projects/{p}/locations/{l}/endpoints/{id}:generateContent`,
  answers like the base model once its job succeeded (404 before, and for any other endpoint).
- Its deletion, as `projects.locations.endpoints` and `.models` have it: `GET .../endpoints/{id}`
  (an Endpoint with its `deployedModels[{id, model}]`); `POST .../endpoints/{id}:undeployModel`
  (`{deployedModelId}`: an Operation not yet done; the model is deployed until a `GET` of the
  operation finds it done); `DELETE .../models/{id}` (400 while the model is deployed, 400 for a
  versioned name) and `DELETE .../endpoints/{id}` (400 while a model is deployed on it), each an
  Operation; a deleted resource is 404.

Resource names carry the project's number, as Vertex's do; requests may name the project by id
or number.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.gemini_api import error_response

PROJECT_NUMBER = "123456789012"
BUCKET = "ogem-tuning-test"
# What Vertex tunes (supervised), by the name it takes.
TUNABLE = (
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.0-flash-001",
    "gemini-2.0-flash-lite-001",
)
SPEC_FIELDS = {
    "trainingDatasetUri",
    "validationDatasetUri",
    "hyperParameters",
    "exportLastCheckpointOnly",
}
HYPER_FIELDS = {"epochCount", "learningRateMultiplier", "adapterSize"}
ADAPTER_SIZES = {
    "ADAPTER_SIZE_ONE",
    "ADAPTER_SIZE_TWO",
    "ADAPTER_SIZE_FOUR",
    "ADAPTER_SIZE_EIGHT",
    "ADAPTER_SIZE_SIXTEEN",
    "ADAPTER_SIZE_THIRTY_TWO",
}
JOB_FIELDS = {"baseModel", "supervisedTuningSpec", "tunedModelDisplayName", "description", "labels"}
ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
PART_KINDS = ("text", "fileData", "functionCall", "functionResponse")
DEFAULT_EPOCHS = 3


def _timestamp(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=UTC).isoformat().replace("+00:00", "Z")


def _unknown_name(name: str, where: str) -> str:
    field_at = f"Unknown name \"{name}\" at '{where}'"
    return f"Invalid JSON payload received. {field_at}: Cannot find field."


class DatasetError(Exception):
    pass


def _parts_check(parts: Any, where: str, *, text_only: bool = False) -> int:
    """The words of the parts (the emulator's tokens); DatasetError when malformed."""
    if not isinstance(parts, list) or not parts:
        raise DatasetError(f"{where}.parts: must be a non-empty list")
    words = 0
    for i, part in enumerate(parts):
        kinds = [k for k in PART_KINDS if isinstance(part, dict) and k in part]
        if len(kinds) != 1 or (text_only and kinds != ["text"]):
            raise DatasetError(f"{where}.parts[{i}]: must hold exactly one of {PART_KINDS}")
        if set(part) - {kinds[0], "thoughtSignature"}:
            raise DatasetError(f"{where}.parts[{i}]: unknown field")
        if kinds == ["text"]:
            if not isinstance(part["text"], str):
                raise DatasetError(f"{where}.parts[{i}].text: must be a string")
            words += len(part["text"].split())
        elif kinds == ["fileData"] and not str(part["fileData"].get("fileUri", "")).startswith(
            "gs://"
        ):
            raise DatasetError(f"{where}.parts[{i}].fileData.fileUri: must be a gs:// URI")
    return words


def dataset_check(content: bytes) -> tuple[int, int]:
    """(examples, tokens) of a Gemini supervised tuning dataset; DatasetError when a line is
    not one: `{"systemInstruction"?, "contents": [{"role": "user"|"model", "parts"}], "tools"?}`,
    user first, model last."""
    examples = tokens = 0
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            example = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DatasetError(f"{where}: not valid JSON") from None
        if not isinstance(example, dict):
            raise DatasetError(f"{where}: must be a JSON object")
        unknown = sorted(set(example) - {"contents", "systemInstruction", "tools"})
        if unknown:
            raise DatasetError(f'{where}: unknown field "{unknown[0]}"')
        contents = example.get("contents")
        if not isinstance(contents, list) or not contents:
            raise DatasetError(f"{where}.contents: required")
        for i, turn in enumerate(contents):
            if not isinstance(turn, dict) or turn.get("role") not in ("user", "model"):
                raise DatasetError(f"{where}.contents[{i}].role: must be user or model")
            tokens += _parts_check(turn.get("parts"), f"{where}.contents[{i}]")
        if contents[0]["role"] != "user" or contents[-1]["role"] != "model":
            raise DatasetError(f"{where}.contents: must start with user and end with model")
        system = example.get("systemInstruction")
        if system is not None:
            if not isinstance(system, dict):
                raise DatasetError(f"{where}.systemInstruction: must be a Content")
            where = f"{where}.systemInstruction"
            tokens += _parts_check(system.get("parts"), where, text_only=True)
        examples += 1
    if not examples:
        raise DatasetError("the dataset has no examples")
    return examples, tokens


@dataclass
class TuningJob:
    name: str
    region: str
    request: dict[str, Any]
    created: float
    fail: str | None = None
    state: str = "JOB_STATE_PENDING"
    reached: int = 0  # stages passed: 1 running, 1 + running_steps succeeded
    started: float | None = None
    ended: float | None = None
    updated: float = 0.0
    error: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    tuned_model: dict[str, Any] | None = None


class VertexTuningAPI:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}  # gs:// URI -> content
        self.buckets = {BUCKET}
        self.jobs: dict[str, TuningJob] = {}  # name -> job
        self.step_seconds = 0.2
        self.running_steps = 2
        self.fail_next: str | None = None
        self._ids = itertools.count(4000)
        self.undeploying: dict[str, str] = {}  # operation name -> the endpoint it empties
        self.undeployed: set[str] = set()  # endpoints whose tuned model was undeployed
        self.deleted: list[str] = []  # resource names, in the order they were deleted

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    def routes(self, app: web.Application, *, guard: Any, generate: Any) -> None:
        """`guard(request, project=..., region=...)`: the emulator's auth and resource checks,
        an error response or None; `generate(request, body, model=, stream=)`: a Gemini answer."""
        self._generate = generate

        def guarded(handler: Any) -> Any:
            async def checked(request: web.Request) -> web.StreamResponse:
                where = request.match_info
                refused = await guard(
                    request, project=where.get("project"), region=where.get("region")
                )
                return refused if refused is not None else await handler(request)

            return checked

        app.router.add_post("/upload/storage/v1/b/{bucket}/o", guarded(self._upload))
        jobs = "/v1/projects/{project}/locations/{region}/tuningJobs"
        app.router.add_post(jobs, guarded(self._create))
        app.router.add_get(jobs, guarded(self._list))
        app.router.add_get(jobs + "/{job}", guarded(self._get))
        app.router.add_post(jobs + "/{job}", guarded(self._cancel))
        endpoints = "/v1/projects/{project}/locations/{region}/endpoints/{target}"
        app.router.add_post(endpoints, guarded(self._endpoint))
        app.router.add_get(endpoints, guarded(self._endpoint_get))
        app.router.add_delete(endpoints, guarded(self._endpoint_delete))
        app.router.add_get(endpoints + "/operations/{operation}", guarded(self._operation_get))
        app.router.add_delete(
            "/v1/projects/{project}/locations/{region}/models/{model}",
            guarded(self._model_delete),
        )

    def endpoint_job(self, endpoint: str) -> TuningJob | None:
        """The succeeded job whose tuned model the endpoint serves."""
        if endpoint in self.undeployed:
            return None
        for job in self.jobs.values():
            self._advance(job)
            if job.tuned_model and job.tuned_model["endpoint"] == endpoint:
                return job
        return None

    def _endpoint_exists(self, endpoint: str) -> bool:
        if endpoint in self.deleted:
            return False
        return any(
            job.tuned_model and job.tuned_model["endpoint"] == endpoint
            for job in self.jobs.values()
        )

    # -- Cloud Storage ---------------------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.Response:
        bucket = request.match_info["bucket"]
        name = request.query.get("name", "")
        if request.query.get("uploadType") != "media":
            return error_response(400, "This emulator takes uploadType=media only.")
        if not name:
            return error_response(400, "Required parameter: name")
        if bucket not in self.buckets:
            return error_response(404, "The specified bucket does not exist.")
        content = await request.read()
        uri = f"gs://{bucket}/{name}"
        self.objects[uri] = content
        generation = str(int(time.time() * 1_000_000))
        return web.json_response(
            {
                "kind": "storage#object",
                "id": f"{bucket}/{name}/{generation}",
                "name": name,
                "bucket": bucket,
                "generation": generation,
                "contentType": request.headers.get("Content-Type", "application/octet-stream"),
                "size": str(len(content)),
                "timeCreated": _timestamp(time.time()),
            }
        )

    # -- tuning jobs -----------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.Response:
        info = request.match_info
        body = await request.json()
        problem = self._create_problem(body)
        if problem:
            return error_response(400, problem)
        now = time.time()
        name = f"projects/{PROJECT_NUMBER}/locations/{info['region']}/tuningJobs/{next(self._ids)}"
        job = TuningJob(
            name=name,
            region=info["region"],
            request=body,
            created=now,
            updated=now,
            fail=self.fail_next,
        )
        self.fail_next = None
        self.jobs[name] = job
        return web.json_response(self._resource(job))

    def _create_problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Invalid JSON payload received."
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            return _unknown_name(unknown[0], "tuning_job")
        if body.get("baseModel") not in TUNABLE:
            return f"Base model {body.get('baseModel')} is not supported for tuning."
        if len(str(body.get("tunedModelDisplayName") or "")) > 128:
            return "tunedModelDisplayName: at most 128 characters."
        spec = body.get("supervisedTuningSpec")
        if not isinstance(spec, dict):
            return "supervisedTuningSpec: required."
        unknown = sorted(set(spec) - SPEC_FIELDS)
        if unknown:
            return _unknown_name(unknown[0], "supervised_tuning_spec")
        for key in ("trainingDatasetUri", "validationDatasetUri"):
            uri = spec.get(key)
            if uri is None and key == "validationDatasetUri":
                continue
            if not isinstance(uri, str) or not uri.startswith("gs://"):
                return f"supervisedTuningSpec.{key}: a gs:// URI is required."
            if uri not in self.objects:
                return f"Dataset {uri} does not exist or is not readable."
        hyper = spec.get("hyperParameters") or {}
        unknown = sorted(set(hyper) - HYPER_FIELDS)
        if unknown:
            return _unknown_name(unknown[0], "hyper_parameters")
        if "epochCount" in hyper:
            try:
                epochs = int(hyper["epochCount"])
            except (TypeError, ValueError):
                return "hyperParameters.epochCount: must be an integer."
            if not 1 <= epochs <= 100:
                return "hyperParameters.epochCount: must be from 1 to 100."
        rate = hyper.get("learningRateMultiplier", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            return "hyperParameters.learningRateMultiplier: must be a positive number."
        if "adapterSize" in hyper and hyper["adapterSize"] not in ADAPTER_SIZES:
            return f"Invalid value at 'hyper_parameters.adapter_size': {hyper['adapterSize']}"
        return None

    def _job_of(self, request: web.Request) -> TuningJob | None:
        info = request.match_info
        job_id = info["job"].split(":")[0]
        name = f"projects/{PROJECT_NUMBER}/locations/{info['region']}/tuningJobs/{job_id}"
        job = self.jobs.get(name)
        if job is not None:
            self._advance(job)
        return job

    async def _get(self, request: web.Request) -> web.Response:
        info = request.match_info
        job = self._job_of(request)
        if job is None:
            return error_response(404, f"TuningJob {info['job']} not found.")
        return web.json_response(self._resource(job))

    async def _list(self, request: web.Request) -> web.Response:
        info = request.match_info
        jobs = [j for j in self.jobs.values() if j.region == info["region"]]
        jobs.sort(key=lambda j: -j.created)
        start = int(request.query.get("pageToken") or 0)
        size = int(request.query.get("pageSize") or 100)
        page = jobs[start : start + size]
        for job in page:
            self._advance(job)
        answer: dict[str, Any] = {"tuningJobs": [self._resource(j) for j in page]}
        if start + size < len(jobs):
            answer["nextPageToken"] = str(start + size)
        return web.json_response(answer)

    async def _cancel(self, request: web.Request) -> web.Response:
        info = request.match_info
        if not info["job"].endswith(":cancel"):
            return error_response(404, f"Method not found: {info['job']}")
        job = self._job_of(request)
        if job is None:
            return error_response(404, f"TuningJob {info['job']} not found.")
        if job.state in ENDED:
            return error_response(400, f"Cannot cancel tuning job {job.name} in state {job.state}.")
        job.state = "JOB_STATE_CANCELLING"
        job.updated = time.time()
        return web.json_response({})

    def _advance(self, job: TuningJob) -> None:
        """Every stage the job's clock has passed; a cancelling job is cancelled."""
        now = time.time()
        if job.state == "JOB_STATE_CANCELLING":
            job.state, job.ended, job.updated = "JOB_STATE_CANCELLED", now, now
            job.error = {"code": 1, "message": "CANCELLED"}
            return
        stages = (now - job.created) / self.step_seconds
        while job.reached + 1 <= stages and job.state not in ENDED:
            job.reached += 1
            job.updated = now
            if job.reached == 1:
                self._start(job, now)
            elif job.reached > self.running_steps:
                self._succeed(job, now)

    def _start(self, job: TuningJob, now: float) -> None:
        spec = job.request["supervisedTuningSpec"]
        try:
            if job.fail:
                raise DatasetError(job.fail)
            examples, tokens = dataset_check(self.objects[spec["trainingDatasetUri"]])
            if spec.get("validationDatasetUri"):
                dataset_check(self.objects[spec["validationDatasetUri"]])
        except DatasetError as exc:
            job.state, job.ended = "JOB_STATE_FAILED", now
            job.error = {"code": 3, "message": f"Invalid dataset: {exc}"}
            return
        job.state, job.started = "JOB_STATE_RUNNING", now
        epochs = int((spec.get("hyperParameters") or {}).get("epochCount") or DEFAULT_EPOCHS)
        job.stats = {
            "supervisedTuningDataStats": {
                "tuningDatasetExampleCount": str(examples),
                "totalBillableTokenCount": str(tokens),
                "tuningStepCount": str(examples * epochs),
            }
        }

    def _succeed(self, job: TuningJob, now: float) -> None:
        spec = job.request["supervisedTuningSpec"]
        epochs = int((spec.get("hyperParameters") or {}).get("epochCount") or DEFAULT_EPOCHS)
        steps = int(job.stats["supervisedTuningDataStats"]["tuningStepCount"]) if job.stats else 0
        model_id, endpoint_id = next(self._ids), next(self._ids)
        parent = f"projects/{PROJECT_NUMBER}/locations/{job.region}"
        endpoint = f"{parent}/endpoints/{endpoint_id}"
        job.state, job.ended = "JOB_STATE_SUCCEEDED", now
        job.tuned_model = {
            "model": f"{parent}/models/{model_id}@1",
            "endpoint": endpoint,
            "checkpoints": [
                {
                    "checkpointId": str(epoch),
                    "epoch": str(epoch),
                    "step": str(steps * epoch // epochs),
                    "endpoint": endpoint,
                }
                for epoch in range(1, epochs + 1)
            ],
        }

    def _resource(self, job: TuningJob) -> dict[str, Any]:
        spec = dict(job.request["supervisedTuningSpec"])
        hyper = dict(spec.get("hyperParameters") or {})
        hyper.setdefault("epochCount", DEFAULT_EPOCHS)
        hyper["epochCount"] = str(hyper["epochCount"])  # int64: a string in JSON
        spec["hyperParameters"] = hyper
        resource: dict[str, Any] = {
            "name": job.name,
            "baseModel": job.request["baseModel"],
            "state": job.state,
            "createTime": _timestamp(job.created),
            "updateTime": _timestamp(job.updated),
            "supervisedTuningSpec": spec,
        }
        if job.request.get("tunedModelDisplayName"):
            resource["tunedModelDisplayName"] = job.request["tunedModelDisplayName"]
        for key, moment in (("startTime", job.started), ("endTime", job.ended)):
            if moment is not None:
                resource[key] = _timestamp(moment)
        if job.error is not None:
            resource["error"] = job.error
        if job.stats is not None:
            resource["tuningDataStats"] = job.stats
        if job.tuned_model is not None:
            resource["tunedModel"] = job.tuned_model
        return resource

    # -- the tuned model's endpoint --------------------------------------------------------------
    async def _endpoint(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        endpoint_id, _, method = info["target"].partition(":")
        endpoint = f"projects/{PROJECT_NUMBER}/locations/{info['region']}/endpoints/{endpoint_id}"
        if method == "undeployModel" and self._endpoint_exists(endpoint):
            return await self._undeploy(request, endpoint)
        job = self.endpoint_job(endpoint)
        if job is None or method not in ("generateContent", "streamGenerateContent"):
            return error_response(404, f"Endpoint {endpoint} not found.")
        return await self._generate(
            request,
            await request.json(),
            model=job.request["baseModel"],
            stream=method == "streamGenerateContent",
        )

    # -- deleting the tuned model ----------------------------------------------------------------
    def _endpoint_name(self, request: web.Request) -> str:
        info = request.match_info
        return f"projects/{PROJECT_NUMBER}/locations/{info['region']}/endpoints/{info['target']}"

    def _deployed(self, endpoint: str) -> dict[str, Any] | None:
        """The DeployedModel of the endpoint's tuned model, while it is deployed."""
        job = self.endpoint_job(endpoint)
        if job is None or job.tuned_model is None:
            return None
        model = job.tuned_model["model"]
        return {"id": "9" + model.rsplit("/", 1)[1].partition("@")[0], "model": model}

    def _operation(self, parent: str, kind: str, *, done: bool) -> dict[str, Any]:
        now = _timestamp(time.time())
        operation: dict[str, Any] = {
            "name": f"{parent}/operations/{next(self._ids)}",
            "metadata": {
                "@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{kind}OperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
        }
        if done:
            operation["done"] = True
            operation["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return operation

    async def _endpoint_get(self, request: web.Request) -> web.Response:
        endpoint = self._endpoint_name(request)
        if not self._endpoint_exists(endpoint):
            return error_response(404, f"Endpoint {endpoint} not found.")
        deployed = self._deployed(endpoint)
        resource: dict[str, Any] = {
            "name": endpoint,
            "displayName": endpoint.rsplit("/", 1)[1],
            "deployedModels": [deployed] if deployed else [],
        }
        if deployed:
            resource["trafficSplit"] = {deployed["id"]: 100}
        return web.json_response(resource)

    async def _undeploy(self, request: web.Request, endpoint: str) -> web.Response:
        body = await request.json()
        deployed = self._deployed(endpoint)
        wanted = body.get("deployedModelId") if isinstance(body, dict) else None
        if deployed is None or wanted != deployed["id"]:
            return error_response(404, f"DeployedModel {wanted} not found on {endpoint}.")
        operation = self._operation(endpoint, "UndeployModel", done=False)
        self.undeploying[operation["name"]] = endpoint
        return web.json_response(operation)

    async def _operation_get(self, request: web.Request) -> web.Response:
        name = f"{self._endpoint_name(request)}/operations/{request.match_info['operation']}"
        endpoint = self.undeploying.pop(name, None)
        if endpoint is None:
            return error_response(404, f"Operation {name} not found.")
        self.undeployed.add(endpoint)  # done once read: the model has left the endpoint
        return web.json_response(
            {
                "name": name,
                "done": True,
                "response": {
                    "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UndeployModelResponse"
                },
            }
        )

    async def _endpoint_delete(self, request: web.Request) -> web.Response:
        endpoint = self._endpoint_name(request)
        if not self._endpoint_exists(endpoint):
            return error_response(404, f"Endpoint {endpoint} not found.")
        if self._deployed(endpoint) is not None:
            return error_response(
                400, f"Endpoint {endpoint} has deployed models: undeploy them first."
            )
        self.deleted.append(endpoint)
        return web.json_response(self._operation(endpoint, "DeleteOperation", done=True))

    async def _model_delete(self, request: web.Request) -> web.Response:
        info = request.match_info
        name = f"projects/{PROJECT_NUMBER}/locations/{info['region']}/models/{info['model']}"
        if "@" in name:
            return error_response(400, "A model version is deleted with models.deleteVersion.")
        tuned = [
            job.tuned_model
            for job in self.jobs.values()
            if job.tuned_model and job.tuned_model["model"].partition("@")[0] == name
        ]
        if not tuned or name in self.deleted:
            return error_response(404, f"Model {name} not found.")
        if self._deployed(tuned[0]["endpoint"]) is not None:
            return error_response(
                400, f"Model {name} is deployed on {tuned[0]['endpoint']}: undeploy it first."
            )
        self.deleted.append(name)
        return web.json_response(self._operation(name, "DeleteOperation", done=True))

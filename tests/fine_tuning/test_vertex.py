"""/v1/fine_tuning/jobs on Vertex AI, through the live server and the official openai SDK,
against the Vertex emulator's tuning jobs and Cloud Storage (tests/emulators/vertex_tuning.py):
the OpenAI chat file converted to Gemini's tuning format and uploaded to the deployment's bucket,
the TuningJob followed by beat's poller to success, its state changes as events, its tuned
endpoint served to its owner only; cancel; a failed job; bad input answered with OpenAI's
errors."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest
from django.core import mail

from billing.models import ModelPrice
from fine_tuning.models import FineTuningJob, ForwardedFile
from fine_tuning.tasks import fine_tuning_jobs_poll
from providers.base import Deployment
from providers.errors import InvalidRequestError
from providers.vertex_ai.tuning import dataset_convert
from tests.emulators.vertex_api import PROJECT, PROJECT_NUMBER, VertexEmulator
from tests.emulators.vertex_tuning import BUCKET, dataset_check
from tests.fine_tuning.conftest import (
    GEMINI,
    REGION,
    Tenant,
    create_error,
    model_served,
    polled_until_ended,
    training_lines,
    upload,
)
from tests.live import wait_for
from tests.schemas import schema_validate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("beat_polls")]


@pytest.fixture
def emulator(vertex: VertexEmulator) -> VertexEmulator:
    return vertex


def _tuning_requests(emulator: VertexEmulator, method: str = "POST") -> list[Any]:
    return [
        r
        for r in emulator.requests
        if r.path.endswith("/tuningJobs") and (method != "POST" or isinstance(r.body, dict))
    ]


def test_a_vertex_job_from_conversion_to_its_tuned_endpoint_for_its_owner_only(
    tenant: Callable[[], Tenant],
    vertex_deployment: Callable[..., None],
    emulator: VertexEmulator,
    watched_registry: None,
) -> None:
    vertex_deployment()
    model_served(GEMINI)
    owner, other = tenant(), tenant()
    training = upload(owner.client)
    validation = upload(owner.client, content=training_lines(3))
    raw = owner.client.fine_tuning.jobs.with_raw_response.create(
        model=GEMINI,
        training_file=training.id,
        validation_file=validation.id,
        suffix="pirate",
        hyperparameters={"n_epochs": 2},
    )
    schema_validate("FineTuningJob", raw.http_response.json())
    created = raw.parse()
    assert (created.model, created.status, created.fine_tuned_model) == (
        GEMINI,
        "validating_files",
        None,
    )
    assert created.hyperparameters.n_epochs == 2

    # Both files converted to Gemini's tuning format and uploaded to the bucket, under the
    # deployment's prefix; the mapping kept.
    forwarded = dict(ForwardedFile.objects.values_list("file__file_id", "upstream_file_id"))
    assert set(forwarded) == {training.id, validation.id}
    uri = forwarded[training.id]
    assert uri.startswith(f"gs://{BUCKET}/tenants/ogem-fine-tuning/") and uri.endswith(".jsonl")
    lines = emulator.tuning.objects[uri].splitlines()
    assert len(lines) == 10
    assert orjson.loads(lines[0]) == {
        "systemInstruction": {"parts": [{"text": "You answer like a pirate."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Question 0?"}]},
            {"role": "model", "parts": [{"text": "Arr, answer 0."}]},
        ],
    }
    upload_request = next(r for r in emulator.requests if r.path.startswith("/upload/"))
    assert upload_request.query["uploadType"] == "media"
    assert upload_request.headers["authorization"].startswith("Bearer ya29.")
    [tuning] = _tuning_requests(emulator)
    assert tuning.path == f"/v1/projects/{PROJECT}/locations/{REGION}/tuningJobs"
    assert tuning.body == {
        "baseModel": "gemini-2.0-flash-001",
        "supervisedTuningSpec": {
            "trainingDatasetUri": uri,
            "validationDatasetUri": forwarded[validation.id],
            "hyperParameters": {"epochCount": 2},
        },
        "tunedModelDisplayName": "pirate",
    }
    job = FineTuningJob.objects.get(job_id=created.id)
    assert job.upstream_job_id.startswith(
        f"projects/{PROJECT_NUMBER}/locations/{REGION}/tuningJobs/"
    )

    done = polled_until_ended(owner.client, created.id)
    assert done.status == "succeeded"
    model = done.fine_tuned_model
    assert model is not None
    assert model.startswith(f"projects/{PROJECT_NUMBER}/locations/{REGION}/endpoints/")
    # The dataset's billable tokens (a word a token in the emulator), once per epoch.
    assert done.trained_tokens == 2 * 10 * (5 + 2 + 3)
    assert done.finished_at is not None and done.hyperparameters.n_epochs == 2
    schema_validate(
        "FineTuningJob",
        owner.client.fine_tuning.jobs.with_raw_response.retrieve(done.id).http_response.json(),
    )

    # Vertex has no events API: the state changes, newest first, stored once each.
    events = owner.client.fine_tuning.jobs.list_events(done.id)
    assert [e.message for e in events.data] == [
        "The job has successfully completed",
        f"New fine-tuned model created: {model}",
        "Fine-tuning job started",
        "Created fine-tuning job",
    ]
    for event in events.data:
        schema_validate("FineTuningJobEvent", event.model_dump(exclude_none=True))
    fine_tuning_jobs_poll.delay()
    assert job.events.count() == 4

    checkpoints = owner.client.fine_tuning.jobs.checkpoints.list(done.id)
    assert [c.step_number for c in checkpoints.data] == [20, 10]  # an epoch each
    assert checkpoints.data[0].fine_tuned_model_checkpoint == model

    [alert] = mail.outbox
    assert alert.subject == f"[Ogem] Fine-tuning job {done.id} succeeded"

    # Served to the owner's organization at the base model's Vertex price; the training at
    # Vertex's tuning price.
    job.refresh_from_db()
    served = job.served_by
    assert served is not None and served.organization_id == owner.organization.pk
    assert (served.provider, served.upstream_model, served.region) == ("vertex_ai", model, REGION)
    price = ModelPrice.objects.get(deployment=served)
    assert (price.input_cost_per_token, price.output_cost_per_token) == (
        Decimal("0.0000001"),
        Decimal("0.0000004"),
    )
    assert job.cost == Decimal("3.00") * done.trained_tokens / 1_000_000
    model_served(model)
    answer = owner.client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Ahoy?"}]
    )
    assert answer.choices[0].message.content
    called = emulator.requests[-1]
    assert called.path == f"/v1/{model}:generateContent"
    assert model in {m.id for m in owner.client.models.list()}

    assert model not in {m.id for m in other.client.models.list()}
    with pytest.raises(openai.NotFoundError) as refused:
        other.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Ahoy?"}]
        )
    assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]

    # Deleted by its owner, at Vertex too: the tuned model is undeployed from its endpoint
    # (awaited: Vertex refuses to delete a deployed model), deleted from the Model Registry
    # (every version), then the emptied endpoint; Ogem stops serving it.
    [registered] = [j.tuned_model["model"] for j in emulator.tuning.jobs.values() if j.tuned_model]
    registry_name = registered.partition("@")[0]
    before = len(emulator.requests)
    deleted = owner.client.models.with_raw_response.delete(model)
    schema_validate("DeleteModelResponse", deleted.http_response.json())
    assert (deleted.parse().id, deleted.parse().object, deleted.parse().deleted) == (
        model,
        "model",
        True,
    )
    sent = [r for r in emulator.requests[before:] if r.path != "/token"]
    assert [r.path for r in sent[:2]] == [f"/v1/{model}", f"/v1/{model}:undeployModel"]
    assert sent[1].body == {"deployedModelId": "9" + registry_name.rsplit("/", 1)[1]}
    assert sent[2].path.startswith(f"/v1/{model}/operations/")  # read until done
    assert [r.path for r in sent[3:]] == [f"/v1/{registry_name}", f"/v1/{model}"]
    assert emulator.tuning.deleted == [registry_name, model]
    assert all(r.headers["authorization"].startswith("Bearer ya29.") for r in sent)
    model_served(model, served=False)
    with pytest.raises(openai.NotFoundError):  # gone here: nothing more is sent
        owner.client.models.delete(model)
    assert len([r for r in emulator.requests[before:] if r.path != "/token"]) == len(sent)


def test_cancel_pause_and_a_failed_job(
    tenant: Callable[[], Tenant], vertex_deployment: Callable[..., None], emulator: VertexEmulator
) -> None:
    vertex_deployment()
    owner, other = tenant(), tenant()
    emulator.tuning.step_seconds = 60
    training = upload(owner.client)
    job = owner.client.fine_tuning.jobs.create(
        model=GEMINI,
        training_file=training.id,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"learning_rate_multiplier": 0.5}},
        },
    )
    [tuning] = _tuning_requests(emulator)
    assert tuning.body["supervisedTuningSpec"]["hyperParameters"] == {"learningRateMultiplier": 0.5}
    assert "tunedModelDisplayName" not in tuning.body
    with pytest.raises(openai.NotFoundError):
        other.client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.BadRequestError) as paused:
        owner.client.fine_tuning.jobs.pause(job.id)
    assert paused.value.body["code"] == "unsupported_operation"  # type: ignore[index]

    cancelled = owner.client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    name = FineTuningJob.objects.get(job_id=job.id).upstream_job_id
    assert emulator.tuning.jobs[name].state == "JOB_STATE_CANCELLED"
    assert any(r.path == f"/v1/{name}:cancel" for r in emulator.requests)
    fine_tuning_jobs_poll.delay()
    done = owner.client.fine_tuning.jobs.retrieve(job.id)
    assert (done.status, done.error) == ("cancelled", None)
    messages = [e.message for e in owner.client.fine_tuning.jobs.list_events(job.id).data]
    assert messages == ["Fine-tuning job cancelled", "Created fine-tuning job"]
    [alert] = mail.outbox
    assert alert.subject == f"[Ogem] Fine-tuning job {job.id} cancelled"
    with pytest.raises(openai.BadRequestError) as again:
        owner.client.fine_tuning.jobs.cancel(job.id)
    assert again.value.body["code"] == "invalid_state"  # type: ignore[index]

    # A job Vertex fails: its error, no model.
    emulator.tuning.step_seconds = 0.15
    emulator.tuning.fail_next = "line 4: contents[0].parts: must be a non-empty list"
    failing = owner.client.fine_tuning.jobs.create(model=GEMINI, training_file=training.id)
    failed = polled_until_ended(owner.client, failing.id)
    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == (
        "invalid_argument",
        "Invalid dataset: line 4: contents[0].parts: must be a non-empty list",
    )
    events = owner.client.fine_tuning.jobs.list_events(failing.id).data
    assert (events[0].level, events[0].message) == ("error", failed.error.message)
    assert FineTuningJob.objects.get(job_id=failing.id).served_by is None
    # The file was uploaded once for both jobs.
    assert len([r for r in emulator.requests if r.path.startswith("/upload/")]) == 1


def test_bad_input_gets_openai_errors_and_nothing_reaches_vertex(
    tenant: Callable[[], Tenant], vertex_deployment: Callable[..., None], emulator: VertexEmulator
) -> None:
    vertex_deployment()
    vertex_deployment(name="old-gemini", model="gemini-1.5-pro-002")
    vertex_deployment(name="no-bucket", model="gemini-2.5-flash", bucket="")
    owner, other = tenant(), tenant()
    training = upload(owner.client)
    legacy = upload(owner.client, content=b'{"prompt": "Question?", "completion": "Answer."}\n')
    unanswered = upload(
        owner.client,
        content=orjson.dumps({"messages": [{"role": "user", "content": "Hi?"}]}) + b"\n",
    )
    not_json = upload(owner.client, content=b"question,answer\nhi,ho\n")
    others = upload(other.client)

    for model in ("old-gemini", "no-bucket"):
        status, error = create_error(owner.client, model=model, training_file=training.id)
        assert (status, error["code"], error["param"]) == (400, "model_not_available", "model")
    status, error = create_error(owner.client, model=GEMINI, training_file=others.id)
    assert (status, error["type"], error["param"]) == (404, "not_found_error", "training_file")
    status, error = create_error(
        owner.client, model=GEMINI, training_file=training.id, hyperparameters={"batch_size": 8}
    )
    assert (status, error["code"], error["param"]) == (
        400,
        "unsupported_parameter",
        "hyperparameters.batch_size",
    )
    status, error = create_error(
        owner.client, model=GEMINI, training_file=training.id, method={"type": "dpo"}
    )
    assert (status, error["param"]) == (400, "method.type")
    # Refused before its file was uploaded: nothing is left in the bucket.
    assert not [r for r in emulator.requests if r.path.startswith("/upload/")]
    status, error = create_error(owner.client, model=GEMINI, training_file=legacy.id)
    assert (status, error["code"], error["param"]) == (
        400,
        "invalid_training_file",
        "training_file",
    )
    assert error["message"] == (
        "Line 1 of `training_file` has no `messages`: Vertex AI tunes on chat-format files only."
    )
    status, error = create_error(
        owner.client, model=GEMINI, training_file=training.id, validation_file=unanswered.id
    )
    assert (status, error["code"], error["param"]) == (
        400,
        "invalid_validation_file",
        "validation_file",
    )
    assert "must end with an assistant message" in error["message"]
    status, error = create_error(owner.client, model=GEMINI, training_file=not_json.id)
    assert (status, error["message"]) == (400, "Line 1 of `training_file` is not JSON.")
    assert not _tuning_requests(emulator)
    assert not FineTuningJob.objects.exists()


def test_the_emulator_fails_a_job_on_a_dataset_not_in_geminis_format(
    emulator: VertexEmulator,
) -> None:
    """What Ogem's conversion spares its users: an OpenAI chat file given to Vertex as is."""
    token, _ = emulator.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    uploaded = httpx.post(
        f"{emulator.url}/upload/storage/v1/b/{BUCKET}/o",
        params={"uploadType": "media", "name": "raw.jsonl"},
        content=training_lines(2),
        headers=headers,
    )
    assert uploaded.status_code == 200 and uploaded.json()["size"] == str(len(training_lines(2)))
    missing = httpx.post(
        f"{emulator.url}/upload/storage/v1/b/no-such-bucket/o",
        params={"uploadType": "media", "name": "raw.jsonl"},
        content=b"{}",
        headers=headers,
    )
    assert missing.status_code == 404
    jobs = f"{emulator.url}/v1/projects/{PROJECT}/locations/{REGION}/tuningJobs"
    spec = {"trainingDatasetUri": f"gs://{BUCKET}/raw.jsonl"}
    old = {"baseModel": "gemini-1.5-pro-002", "supervisedTuningSpec": spec}
    refused = httpx.post(jobs, json=old, headers=headers)
    assert (refused.status_code, refused.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
    created = httpx.post(
        jobs, json={"baseModel": "gemini-2.5-flash", "supervisedTuningSpec": spec}, headers=headers
    ).json()
    assert created["state"] == "JOB_STATE_PENDING"

    def ended() -> Any:
        job = httpx.get(f"{emulator.url}/v1/{created['name']}", headers=headers).json()
        return job if job["state"] != "JOB_STATE_PENDING" else None

    job = wait_for(ended, what="the emulated job to leave PENDING")
    assert job["state"] == "JOB_STATE_FAILED"
    reason = 'Invalid dataset: line 1: unknown field "messages"'
    assert job["error"] == {"code": 3, "message": reason}
    listed = httpx.get(jobs, params={"pageSize": 1}, headers=headers).json()
    assert [j["name"] for j in listed["tuningJobs"]] == [created["name"]]


def test_a_chat_example_with_tool_calls_converts_to_what_vertex_accepts() -> None:
    deployment = Deployment(
        id="test:gemini",
        model_name=GEMINI,
        provider="vertex_ai",
        upstream_model="gemini-2.0-flash",
    )
    weather = {"type": "object", "properties": {"city": {"type": "string"}}}
    example = {
        "messages": [
            {"role": "developer", "content": "Use the tools."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 3}'},
            {"role": "assistant", "content": "3 degrees.", "weight": 1},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": weather}}],
    }
    written = io.BytesIO()
    digest = dataset_convert(
        io.BytesIO(orjson.dumps(example) + b"\n"),
        deployment=deployment,
        param="training_file",
        into=written,
    )
    converted = written.getvalue()
    assert digest == hashlib.sha256(converted).hexdigest()
    line = orjson.loads(converted)
    assert line["systemInstruction"] == {"parts": [{"text": "Use the tools."}]}
    assert [c["role"] for c in line["contents"]] == ["user", "model", "user", "model"]
    assert line["contents"][1]["parts"] == [
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}
    ]
    assert line["contents"][2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"celsius": 3}}}
    ]
    assert line["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    assert dataset_check(converted) == (1, 8)

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    inline = {
        "messages": [
            {"role": "user", "content": [image]},
            {"role": "assistant", "content": "A dot."},
        ]
    }
    with pytest.raises(InvalidRequestError) as refused:
        dataset_convert(
            io.BytesIO(orjson.dumps(inline)),
            deployment=deployment,
            param="validation_file",
            into=io.BytesIO(),
        )
    assert (refused.value.param, refused.value.code) == (
        "validation_file",
        "invalid_validation_file",
    )
    assert refused.value.message == (
        "Line 1 of `validation_file` has media Vertex AI tuning cannot read: use gs:// URIs."
    )

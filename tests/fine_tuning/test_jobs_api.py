"""/v1/fine_tuning/jobs through the live server and the official openai SDK, against the OpenAI
emulator's fine-tuning API: a job from creation to success (beat's poller following it), its
events and checkpoints, its model served to its owner only and deletable by its owner; cancel;
tenants isolated on every job id; bad input answered with OpenAI's errors."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import openai
import orjson
import pytest
from django.core import mail

from billing.models import ModelPrice
from fine_tuning.models import FineTuningJob, ForwardedFile
from fine_tuning.tasks import fine_tuning_jobs_poll
from gateway.registry import registry_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.fine_tuning.conftest import (
    BASE,
    ENDED,
    Tenant,
    create_error,
    model_served,
    polled_until_ended,
    upload,
)
from tests.live import wait_for
from tests.schemas import schema_validate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("beat_polls")]


def _job_validate(payload: dict[str, Any]) -> None:
    schema_validate("FineTuningJob", payload)


def _chat(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Ahoy?"}]
    )


def test_a_job_from_creation_to_success_then_its_model_for_its_owner_only(
    tenant: Callable[[], Tenant],
    base_deployments: Callable[..., None],
    emulator: OpenAIEmulator,
    watched_registry: None,
) -> None:
    base_deployments()
    model_served(BASE)
    owner, other = tenant(), tenant()
    training = upload(owner.client)
    validation = upload(owner.client)
    raw = owner.client.fine_tuning.jobs.with_raw_response.create(
        model=BASE,
        training_file=training.id,
        validation_file=validation.id,
        suffix="pirate",
        hyperparameters={"n_epochs": 2},
        metadata={"project": "pirates"},
    )
    _job_validate(raw.http_response.json())
    created = raw.parse()
    assert created.id.startswith("ftjob-")
    assert (created.object, created.model, created.training_file, created.validation_file) == (
        "fine_tuning.job",
        BASE,
        training.id,
        validation.id,
    )
    assert created.status in ("validating_files", "queued")
    assert created.fine_tuned_model is None
    assert created.metadata == {"project": "pirates"}
    assert created.hyperparameters.n_epochs == 2

    # The files went to the provider once each, under the provider's ids.
    uploads = [r for r in emulator.requests if r.path == "/v1/files"]
    assert len(uploads) == 2
    forwarded = dict(ForwardedFile.objects.values_list("file__file_id", "upstream_file_id"))
    assert set(forwarded) == {training.id, validation.id}
    upstream_job = next(r for r in emulator.requests if r.path == "/v1/fine_tuning/jobs").json
    assert upstream_job["training_file"] == forwarded[training.id]
    assert upstream_job["validation_file"] == forwarded[validation.id]
    assert upstream_job["model"] == "gpt-4o-mini-2024-07-18"
    assert upstream_job["hyperparameters"] == {"n_epochs": 2}

    done = polled_until_ended(owner.client, created.id)
    assert done.status == "succeeded"
    model = done.fine_tuned_model
    assert model is not None and model.startswith("ft:gpt-4o-mini-2024-07-18:org:pirate:")
    assert done.trained_tokens and done.trained_tokens > 0
    assert done.finished_at is not None
    _job_validate(
        owner.client.fine_tuning.jobs.with_raw_response.retrieve(done.id).http_response.json()
    )

    # Its events, newest first, as the provider reported them, and paged with `after`.
    events = owner.client.fine_tuning.jobs.list_events(done.id, limit=100)
    messages = [event.message for event in events.data]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1].startswith("Validating training file")
    assert "Fine-tuning job started" in messages
    assert sum(1 for e in events.data if e.type == "metrics") == emulator.fine_tuning.steps
    for event in events.data:
        schema_validate("FineTuningJobEvent", event.model_dump(exclude_none=True))
    second = owner.client.fine_tuning.jobs.list_events(done.id, limit=1, after=events.data[0].id)
    assert [e.id for e in second.data] == [events.data[1].id] and second.has_more

    checkpoints = owner.client.fine_tuning.jobs.checkpoints.list(done.id)
    steps = [c.step_number for c in checkpoints.data]
    assert steps == list(range(emulator.fine_tuning.steps, 0, -1))
    assert checkpoints.data[0].fine_tuning_job_id == done.id
    raw_checkpoints = owner.client.fine_tuning.jobs.checkpoints.with_raw_response.list(done.id)
    for checkpoint in raw_checkpoints.http_response.json()["data"]:
        schema_validate("FineTuningJobCheckpoint", checkpoint)
    assert checkpoints.data[0].fine_tuned_model_checkpoint.startswith(model)

    # The owner is told once, through the alert channel.
    [alert] = mail.outbox
    assert alert.subject == f"[Ogem] Fine-tuning job {done.id} succeeded"
    assert model in alert.body

    # Served to its owner's organization, at the provider's fine-tuned price, without restart.
    job = FineTuningJob.objects.get(job_id=done.id)
    assert job.served_by is not None and job.served_by.organization_id == owner.organization.pk
    price = ModelPrice.objects.get(deployment=job.served_by)
    assert (price.input_cost_per_token, price.output_cost_per_token) == (
        Decimal("0.0000003"),
        Decimal("0.0000012"),
    )
    assert job.cost == Decimal("3.00") * job.trained_tokens / 1_000_000
    model_served(model)
    answer = _chat(owner.client, model)
    assert answer.choices[0].message.content
    assert emulator.requests[-1].json["model"] == model
    assert model in {m.id for m in owner.client.models.list()}

    # Another tenant: not listed, not routable, not deletable.
    assert model not in {m.id for m in other.client.models.list()}
    with pytest.raises(openai.NotFoundError) as refused:
        _chat(other.client, model)
    assert refused.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        other.client.models.delete(model)

    # Beat again: an ended, announced job is left alone (no second alert, no second model).
    fine_tuning_jobs_poll.delay()
    assert len(mail.outbox) == 1
    assert ModelPrice.objects.filter(model=model).count() == 1

    # The owner deletes it: at the provider too, and it stops being served.
    deleted = owner.client.models.with_raw_response.delete(model)
    schema_validate("DeleteModelResponse", deleted.http_response.json())
    assert (deleted.parse().id, deleted.parse().deleted) == (model, True)
    assert emulator.fine_tuning.models_deleted == [model]
    model_served(model, served=False)
    with pytest.raises(openai.NotFoundError):
        _chat(owner.client, model)
    with pytest.raises(openai.NotFoundError):
        owner.client.models.delete(model)


def test_cancel_and_another_tenant_gets_404_on_every_job_id(
    tenant: Callable[[], Tenant],
    base_deployments: Callable[..., None],
    emulator: OpenAIEmulator,
    live_ogem: Any,
) -> None:
    base_deployments()
    registry_get()
    owner, other = tenant(), tenant()
    emulator.fine_tuning.step_seconds = 60  # it stays validating: cancelled mid-run
    training = upload(owner.client)
    job = owner.client.fine_tuning.jobs.create(model=BASE, training_file=training.id)

    for call in (
        lambda: other.client.fine_tuning.jobs.retrieve(job.id),
        lambda: other.client.fine_tuning.jobs.cancel(job.id),
        lambda: other.client.fine_tuning.jobs.pause(job.id),
        lambda: other.client.fine_tuning.jobs.resume(job.id),
        lambda: other.client.fine_tuning.jobs.list_events(job.id),
        lambda: other.client.fine_tuning.jobs.checkpoints.list(job.id),
    ):
        with pytest.raises(openai.NotFoundError) as refused:
            call()
        assert refused.value.body["message"] == f"No fine-tuning job found with id '{job.id}'."  # type: ignore[index]
    assert other.client.fine_tuning.jobs.list().data == []
    # Nor may it train on the owner's file.
    with pytest.raises(openai.NotFoundError):
        other.client.fine_tuning.jobs.create(model=BASE, training_file=training.id)

    listed = owner.client.fine_tuning.jobs.list()
    assert [j.id for j in listed.data] == [job.id] and not listed.has_more

    cancelled = owner.client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert (
        emulator.fine_tuning.jobs[FineTuningJob.objects.get(job_id=job.id).upstream_job_id].status
        == "cancelled"
    )
    fine_tuning_jobs_poll.delay()
    messages = [e.message for e in owner.client.fine_tuning.jobs.list_events(job.id).data]
    assert messages[0] == "Fine-tuning job cancelled"
    [alert] = mail.outbox
    assert alert.subject == f"[Ogem] Fine-tuning job {job.id} cancelled"
    assert FineTuningJob.objects.get(job_id=job.id).served_by is None

    with pytest.raises(openai.BadRequestError) as again:
        owner.client.fine_tuning.jobs.cancel(job.id)
    assert again.value.body["code"] == "invalid_state"  # type: ignore[index]


def test_list_pages_newest_first_with_after(
    tenant: Callable[[], Tenant], base_deployments: Callable[..., None], emulator: OpenAIEmulator
) -> None:
    base_deployments()
    owner = tenant()
    emulator.fine_tuning.step_seconds = 60
    training = upload(owner.client)
    ids = [
        owner.client.fine_tuning.jobs.create(model=BASE, training_file=training.id).id
        for _ in range(3)
    ]
    # One upload to the provider for the three jobs.
    assert len([r for r in emulator.requests if r.path == "/v1/files"]) == 1
    first = owner.client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == ids[::-1][:2] and first.has_more
    rest = owner.client.fine_tuning.jobs.list(limit=2, after=first.data[-1].id)
    assert [j.id for j in rest.data] == [ids[0]] and not rest.has_more
    assert [j.id for j in owner.client.fine_tuning.jobs.list(limit=1)] == ids[::-1]
    page = owner.client.fine_tuning.jobs.list(metadata={"nope": "x"})
    assert page.data == []


def test_pause_and_resume_are_forwarded(
    tenant: Callable[[], Tenant], base_deployments: Callable[..., None], emulator: OpenAIEmulator
) -> None:
    base_deployments()
    owner = tenant()
    emulator.fine_tuning.step_seconds = 0.3
    emulator.fine_tuning.steps = 100  # running for 30 s: paused while it runs
    job = owner.client.fine_tuning.jobs.create(model=BASE, training_file=upload(owner.client).id)

    def running() -> Any:
        fine_tuning_jobs_poll.delay()
        return owner.client.fine_tuning.jobs.retrieve(job.id).status == "running"

    wait_for(running, what="the job to run")
    paused = owner.client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    resumed = owner.client.fine_tuning.jobs.resume(job.id)
    assert resumed.status == "running"
    with pytest.raises(openai.BadRequestError):
        owner.client.fine_tuning.jobs.resume(job.id)  # the provider's refusal, relayed


def test_a_failed_job_keeps_the_providers_error_and_serves_nothing(
    tenant: Callable[[], Tenant], base_deployments: Callable[..., None], emulator: OpenAIEmulator
) -> None:
    base_deployments()
    owner = tenant()
    emulator.fine_tuning.fail_next = "The training file has fewer than 10 examples."
    job = owner.client.fine_tuning.jobs.create(model=BASE, training_file=upload(owner.client).id)
    done = polled_until_ended(owner.client, job.id)
    assert done.status == "failed"
    assert done.error is not None
    assert (done.error.code, done.error.param) == ("invalid_training_file", "training_file")
    assert done.error.message == "The training file has fewer than 10 examples."
    assert done.fine_tuned_model is None
    assert FineTuningJob.objects.get(job_id=job.id).served_by is None
    [alert] = mail.outbox
    assert "failed" in alert.subject and "fewer than 10 examples" in alert.body


def test_an_azure_job_goes_to_azures_data_plane_with_its_api_version(
    tenant: Callable[[], Tenant], base_deployments: Callable[..., None], emulator: OpenAIEmulator
) -> None:
    base_deployments(azure=True)
    owner = tenant()
    job = owner.client.fine_tuning.jobs.create(
        model="azure-mini", training_file=upload(owner.client).id
    )
    done = polled_until_ended(owner.client, job.id)
    assert done.status == "succeeded"
    assert done.fine_tuned_model is not None
    assert done.fine_tuned_model.startswith("gpt-4o-mini-2024-07-18.ft-")
    paths = {(r.method, r.path) for r in emulator.requests}
    assert ("POST", "/openai/files") in paths and ("POST", "/openai/fine_tuning/jobs") in paths
    created = next(r for r in emulator.requests if r.path == "/openai/fine_tuning/jobs")
    assert created.query["api-version"] == "2025-04-01-preview"
    assert created.headers["api-key"] == "sk-upstream-test"
    assert created.json["model"] == "gpt-4o-mini-2024-07-18"
    served = FineTuningJob.objects.get(job_id=job.id).served_by
    assert served is not None
    assert (served.provider, served.upstream_model, served.api_version) == (
        "azure",
        done.fine_tuned_model,
        "2024-10-21",
    )


def test_bad_input_gets_openai_errors(
    tenant: Callable[[], Tenant], base_deployments: Callable[..., None], emulator: OpenAIEmulator
) -> None:
    base_deployments()
    owner = tenant()
    training = upload(owner.client)
    batch_file = upload(owner.client, purpose="user_data")

    status, error = create_error(owner.client, model=BASE)
    assert (status, error["param"], error["type"]) == (
        400,
        "training_file",
        "invalid_request_error",
    )
    status, error = create_error(owner.client, model=BASE, training_file="file-missing")
    assert (status, error["type"], error["param"]) == (404, "not_found_error", "training_file")
    status, error = create_error(owner.client, model=BASE, training_file=batch_file.id)
    assert (status, error["code"], error["param"]) == (400, "invalid_file_purpose", "training_file")
    status, error = create_error(
        owner.client, model=BASE, training_file=training.id, validation_file="file-nope"
    )
    assert (status, error["param"]) == (404, "validation_file")
    status, error = create_error(owner.client, model="mock-chat", training_file=training.id)
    assert (status, error["code"], error["param"]) == (400, "model_not_available", "model")
    status, error = create_error(owner.client, model="no-such-model", training_file=training.id)
    assert (status, error["code"]) == (400, "model_not_available")
    status, error = create_error(owner.client, model=BASE, training_file=training.id, epochs=3)
    assert (status, error["param"]) == (400, "epochs")
    status, error = create_error(
        owner.client, model=BASE, training_file=training.id, hyperparameters={"n_epochs": 0}
    )
    assert (status, error["param"]) == (400, "hyperparameters.n_epochs")
    status, error = create_error(
        owner.client, model=BASE, training_file=training.id, suffix="x" * 65
    )
    assert (status, error["param"]) == (400, "suffix")
    status, error = create_error(owner.client, model=BASE, training_file=training.id, seed=-1)
    assert (status, error["param"]) == (400, "seed")
    # Nothing reached the provider, and nothing was stored.
    assert not [r for r in emulator.requests if "fine_tuning" in r.path]
    assert not FineTuningJob.objects.exists()
    with pytest.raises(openai.NotFoundError):
        owner.client.fine_tuning.jobs.retrieve("ftjob-nope")
    with pytest.raises(openai.NotFoundError) as model_missing:
        owner.client.models.delete("ft:gpt-4o-mini-2024-07-18:org::nope")
    assert model_missing.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_without_beat_a_job_is_followed_when_read_and_its_end_is_a_signed_webhook(
    settings,  # type: ignore[no-untyped-def]
    live_ogem: Any,
    base_deployments: Callable[..., None],
    emulator: OpenAIEmulator,
) -> None:
    """The embedded default has no beat: reading a job syncs it. The end goes to the webhook
    (signed as budget alerts are) and by email to the alert list and the key's owner."""
    from billing.alerts import alert_signature
    from keys.services import key_create
    from tenants.models import Membership
    from tests.billing.test_alerts import Receiver
    from tests.factories import OrganizationFactory, TeamFactory, UserFactory

    settings.OGEM_FINE_TUNING_SYNC_ON_READ = True
    receiver = Receiver().start()
    settings.OGEM_ALERT_WEBHOOK_URL = f"{receiver.url}/hooks/ogem"
    settings.OGEM_ALERT_WEBHOOK_SECRET = "whsec-test"
    try:
        base_deployments()
        organization = OrganizationFactory(upstream_networks=["127.0.0.0/8"])
        team = TeamFactory(organization=organization)
        owner = UserFactory(email="owner@example.com")
        Membership.objects.create(user=owner, organization=organization, team=team)
        client = openai.OpenAI(
            base_url=f"{live_ogem.url}/v1",
            api_key=key_create(name="mine", team=team, user=owner).secret,
            max_retries=0,
        )
        job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client).id)

        def ended() -> Any:
            found = client.fine_tuning.jobs.retrieve(job.id)
            return found if found.status in ENDED else None

        done = wait_for(ended, what="the job to end, followed by its reads")
        assert done.status == "succeeded"
        (hook,) = receiver.requests
        assert hook.headers["X-Ogem-Event"] == "fine_tuning.job.succeeded"
        assert hook.headers["X-Ogem-Signature"] == alert_signature(
            secret="whsec-test", timestamp=hook.headers["X-Ogem-Timestamp"], body=hook.body
        )
        payload = orjson.loads(hook.body)
        assert payload["job"]["id"] == job.id
        assert payload["job"]["fine_tuned_model"] == done.fine_tuned_model
        (email,) = mail.outbox
        assert email.to == ["ops@example.com", "owner@example.com"]
    finally:
        receiver.stop()

"""A fine-tuning job followed by a real Celery worker (`celery -A ogem_site worker`, broker: the
run's Redis): beat's poll task sent through the broker, the worker syncing the job from the
emulator, serving its model and posting the end alert; the live server then routes the
fine-tuned model for its owner only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from django.db import connection

from fine_tuning.models import FineTuningJob
from tests.billing.test_alerts import Receiver
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.vertex_api import VertexEmulator
from tests.fine_tuning.conftest import BASE, GEMINI, Tenant, model_served, upload
from tests.governance.cluster import Process, celery_worker_start, cluster_env
from tests.live import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="a real Celery worker needs the run's Redis (broker) and PostgreSQL",
    ),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]


@pytest.fixture
def broker(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from ogem_site.celery import app

    settings.OGEM_FINE_TUNING_SYNC_ON_READ = False
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.control.purge()
    yield
    app.conf.task_always_eager = eager
    app.control.purge()


def _followed_by_a_worker(
    *, tenant: Callable[[], Tenant], model: str, emulator_url: str, tmp_path: Path, settings: Any
) -> Any:
    """A job on `model` followed to its end by a real worker (the only one syncing it), beat's
    poll sent through the broker; its model then served to its owner only. The job as it ended."""
    from ogem_site.celery import app

    owner, other = tenant(), tenant()
    receiver = Receiver().start()
    env = cluster_env(tmp=tmp_path, emulator_url=emulator_url, usage_stream="usage-ft")
    env.update(
        OGEM_ALERT_WEBHOOK_URL=f"{receiver.url}/hooks/ogem",
        OGEM_ALERT_EMAILS="",
        # The worker decrypts the deployments' keys this process stored.
        OGEM_ENCRYPTION_KEYS=",".join(settings.OGEM_ENCRYPTION_KEYS),
    )
    worker: Process | None = None
    try:
        worker = celery_worker_start(env, name="fine-tuner", queue="celery")
        job = owner.client.fine_tuning.jobs.create(
            model=model, training_file=upload(owner.client).id
        )

        def ended() -> Any:
            app.send_task("fine_tuning.tasks.fine_tuning_jobs_poll")  # what beat sends
            found = owner.client.fine_tuning.jobs.retrieve(job.id)
            return found if found.status in ("succeeded", "failed", "cancelled") else None

        done = wait_for(ended, timeout=90, what="the worker to follow the job to its end")
        wait_for(lambda: receiver.requests, timeout=30, what="the end alert")
    finally:
        if worker is not None:
            worker.kill()
        receiver.stop()
        connection.close()

    assert done.status == "succeeded"
    (hook,) = receiver.requests
    assert orjson.loads(hook.body)["job"]["id"] == job.id
    fine_tuned = done.fine_tuned_model
    model_served(fine_tuned)
    answer = owner.client.chat.completions.create(
        model=fine_tuned, messages=[{"role": "user", "content": "Ahoy?"}]
    )
    assert answer.model
    with pytest.raises(openai.NotFoundError):
        other.client.chat.completions.create(
            model=fine_tuned, messages=[{"role": "user", "content": "Ahoy?"}]
        )
    return done


def test_a_worker_follows_the_job_and_the_model_is_served_to_its_owner(
    broker: None,
    tenant: Callable[[], Tenant],
    base_deployments: Callable[..., None],
    emulator: OpenAIEmulator,
    watched_registry: None,
    tmp_path: Path,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    base_deployments()
    model_served(BASE)
    done = _followed_by_a_worker(
        tenant=tenant, model=BASE, emulator_url=emulator.url, tmp_path=tmp_path, settings=settings
    )
    assert FineTuningJob.objects.get(job_id=done.id).events.count() >= 5


def test_a_worker_follows_a_vertex_job(
    broker: None,
    tenant: Callable[[], Tenant],
    vertex_deployment: Callable[..., None],
    vertex: VertexEmulator,
    emulator: OpenAIEmulator,
    watched_registry: None,
    tmp_path: Path,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    vertex_deployment()
    model_served(GEMINI)
    done = _followed_by_a_worker(
        tenant=tenant, model=GEMINI, emulator_url=emulator.url, tmp_path=tmp_path, settings=settings
    )
    job = FineTuningJob.objects.get(job_id=done.id)
    assert job.events.count() == 4
    tuned = vertex.tuning.jobs[job.upstream_job_id].tuned_model
    assert tuned is not None and done.fine_tuned_model == tuned["endpoint"]

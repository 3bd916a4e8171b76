"""Pass-through batches on a real Celery worker (`celery -A ogem_site worker`, broker: the run's
Redis), polled by beat's sweep: for each of the OpenAI, Azure OpenAI, Anthropic and Gemini
emulators, `files.create` -> `batches.create` -> poll -> `files.content` through the live
server and the official openai SDK, every line checked; a cancel forwarded to the provider;
another tenant's 404; one request log row per line, written by the worker."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from django.db import connection

from batches.models import Batch
from billing.models import RequestLog
from tests.batches.conftest import jsonl, upload
from tests.batches.passthrough import (
    PROVIDERS,
    config_write,
    deployment_of,
    error_check,
    input_lines,
    line_cost,
    output_check,
)
from tests.emulators.anthropic_api import anthropic_emulator_get
from tests.emulators.gemini_api import gemini_emulator_get
from tests.factories import OrganizationFactory, TeamFactory
from tests.governance.cluster import Process, celery_worker_start, cluster_env
from tests.live import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="real Celery workers need the run's Redis (broker) and PostgreSQL",
    ),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

ENDED = ("completed", "failed", "expired", "cancelled")


def test_passthrough_batches_on_a_celery_worker(  # type: ignore[no-untyped-def]
    broker: str,
    settings,
    live_ogem,
    make_key: Callable[..., str],
    install_deployments,
    openai_emulator,
    tmp_path: Path,
) -> None:
    from ogem_site.celery import app

    anthropic = anthropic_emulator_get()
    gemini = gemini_emulator_get()
    anthropic.reset()
    gemini.reset()
    urls = {"openai": openai_emulator.url, "anthropic": anthropic.url, "gemini": gemini.url}
    install_deployments(*(deployment_of(provider, urls) for provider in PROVIDERS))
    env = cluster_env(tmp=tmp_path, emulator_url=openai_emulator.url, usage_stream=broker)
    env.update(
        # The workers read the input and write the results where this test process stores files.
        DJANGO_SETTINGS_MODULE="ogem_site.settings.base",
        OGEM_CONFIG=str(config_write(tmp_path / "passthrough.yaml", urls)),
        OGEM_BATCH_RUNNER="celery",
        OGEM_FILES_DIR=str(tmp_path / "files"),
    )
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    stranger = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1",
        api_key=make_key(team=TeamFactory(organization=OrganizationFactory())),
        max_retries=0,
    )

    def ended(batch_id: str) -> Any:
        def check() -> Any:
            batch = client.batches.retrieve(batch_id)
            if batch.status in ENDED:
                return batch
            app.send_task("batches.tasks.batches_sweep")  # what beat does every 15 s
            return None

        return wait_for(check, timeout=90, what=f"batch {batch_id} to end")

    worker: Process | None = None
    try:
        worker = celery_worker_start(env, name="passthrough", queue="celery")
        created = {}
        for provider in PROVIDERS:
            source = upload(client, input_lines(provider, 3))
            created[provider] = client.batches.create(
                input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        done = {provider: ended(batch.id) for provider, batch in created.items()}

        # Cancel: the provider holds the batch until Ogem forwards the cancel.
        anthropic.batches.hold = True
        source = upload(client, input_lines("anthropic", 2, failing=False))
        held = client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

        def sent() -> bool:
            if Batch.objects.filter(batch_id=held.id).exclude(upstream_batch_id="").exists():
                return True
            app.send_task("batches.tasks.batches_sweep")
            return False

        wait_for(sent, timeout=60, what="the held batch to reach the provider")
        assert client.batches.cancel(held.id).status == "cancelling"
        cancelled = ended(held.id)
    finally:
        if worker is not None:
            worker.kill()
        connection.close()

    factor = settings.OGEM_BATCH_PRICE_FACTOR
    for provider, batch in done.items():
        assert batch.status == "completed", (provider, batch.errors)
        counts = batch.request_counts
        assert (counts.total, counts.completed, counts.failed) == (4, 3, 1), provider
        output = jsonl(client.files.content(batch.output_file_id).read())
        output_check(provider, output, 3)
        error_check(jsonl(client.files.content(batch.error_file_id).read()))
        logs = {log.request_id: log for log in RequestLog.objects.filter(batch_id=batch.id)}
        assert len(logs) == 4, provider
        for line in output:
            log = logs[line["response"]["request_id"]]
            assert log.cost == line_cost(line["response"]["body"], factor) > 0
        with pytest.raises(openai.NotFoundError):
            stranger.batches.retrieve(batch.id)
        with pytest.raises(openai.NotFoundError):
            stranger.files.content(batch.output_file_id)

    assert cancelled.status == "cancelled"
    upstream_id = Batch.objects.get(batch_id=held.id).upstream_batch_id
    assert anthropic.batches.items[upstream_id]["cancel_initiated_at"] is not None
    cancels = [r for r in anthropic.requests if r.path.endswith("/cancel")]
    assert [r.path for r in cancels] == [f"/v1/messages/batches/{upstream_id}/cancel"]
    with pytest.raises(openai.NotFoundError):
        stranger.batches.cancel(held.id)

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from fine_tuning.tasks import fine_tuning_jobs_poll
from gateway import registry as deployment_registry
from gateway.config import config_watch_stop
from gateway.registry import registry_get, registry_install, registry_load_initial
from tests.batches.conftest import sdk_retries
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.vertex_api import VertexEmulator
from tests.emulators.vertex_tuning import BUCKET
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import LiveServer, wait_for
from tests.providers.vertex_ai import conftest as vertex_fixtures

# The public name of the base model, served by the OpenAI emulator (and Azure's).
BASE = "gpt-4o-mini"
# A Gemini model on the Vertex AI emulator, and its region.
GEMINI = "gemini-tunable"
REGION = "europe-west4"
ENDED = ("succeeded", "failed", "cancelled")
# The Vertex AI emulator and its service account (tests/providers/vertex_ai's fixtures).
_vertex_server = vertex_fixtures._vertex_server
vertex_keys = vertex_fixtures.vertex_keys
vertex_emulator = vertex_fixtures.vertex_emulator
service_account = vertex_fixtures.service_account


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    root = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    yield root


@pytest.fixture
def emulator(openai_emulator: OpenAIEmulator) -> OpenAIEmulator:
    openai_emulator.fine_tuning.step_seconds = 0.15
    return openai_emulator


@pytest.fixture
def watched_registry(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The registry loaded from the database and hot-reloaded by the watcher (every 0.2 s), as
    every worker's is: a fine-tuned model's deployment appears without a restart."""
    settings.OGEM_CONFIG_WATCH = True
    settings.OGEM_CONFIG_POLL_SECONDS = 0.2
    previous = deployment_registry._current
    registry_install(registry_load_initial(), source="test")
    yield
    config_watch_stop()
    deployment_registry._current = previous


@pytest.fixture
def base_deployments(emulator: OpenAIEmulator) -> Callable[..., None]:
    """Shared database deployments of BASE on the emulator: OpenAI's (and Azure's)."""

    def create(*, azure: bool = False) -> None:
        from gateway.services import deployment_create

        if azure:
            deployment_create(
                data={
                    "model_name": "azure-mini",
                    "provider": "azure",
                    "upstream_model": "my-mini-deployment",
                    "api_base": emulator.url,
                    "api_version": "2024-10-21",
                },
                params={"model_info": {"base_model": "gpt-4o-mini-2024-07-18"}},
                api_key=UPSTREAM_KEY,
            )
        deployment_create(
            data={
                "model_name": BASE,
                "provider": "openai",
                "upstream_model": "gpt-4o-mini-2024-07-18",
                "api_base": f"{emulator.url}/v1",
            },
            api_key=UPSTREAM_KEY,
        )

    return create


@pytest.fixture
def vertex(vertex_emulator: VertexEmulator) -> VertexEmulator:
    vertex_emulator.tuning.step_seconds = 0.15
    return vertex_emulator


@pytest.fixture
def vertex_deployment(
    vertex: VertexEmulator, service_account: dict[str, Any]
) -> Callable[..., None]:
    """A shared database deployment of a Gemini model on the Vertex emulator, with a bucket
    (`bucket=""`: none)."""

    def create(
        *, name: str = GEMINI, model: str = "gemini-2.0-flash", bucket: str | None = None
    ) -> None:
        from gateway.services import deployment_create

        params: dict[str, Any] = {
            "vertex_credentials": service_account,
            "gcs_api_base": vertex.url,
        }
        if bucket != "":
            params["gcs_bucket_name"] = bucket or f"gs://{BUCKET}/tenants"
        deployment_create(
            data={
                "model_name": name,
                "provider": "vertex_ai",
                "upstream_model": model,
                "api_base": vertex.url,
                "region": REGION,
            },
            params=params,
            api_key="",
        )

    return create


@dataclass
class Tenant:
    client: openai.OpenAI
    organization: Any
    team: Any


@pytest.fixture
def tenant(live_ogem: LiveServer) -> Callable[[], Tenant]:
    """A team of a new organization (allowed to reach the emulator on 127.0.0.1, as an
    operator allows an organization's private upstreams) with a key, and the SDK on that key."""

    def make() -> Tenant:
        from keys.services import key_create

        organization = OrganizationFactory(upstream_networks=["127.0.0.0/8"])
        team = TeamFactory(organization=organization)
        secret = key_create(name="fine-tuner", team=team).secret
        client = openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=sdk_retries()
        )
        return Tenant(client=client, organization=organization, team=team)

    return make


def training_lines(count: int = 10) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You answer like a pirate."},
                    {"role": "user", "content": f"Question {n}?"},
                    {"role": "assistant", "content": f"Arr, answer {n}."},
                ]
            }
        )
        + b"\n"
        for n in range(count)
    )


def upload(
    client: openai.OpenAI, *, purpose: str = "fine-tune", content: bytes | None = None
) -> Any:
    return client.files.create(
        file=("train.jsonl", io.BytesIO(content or training_lines())),
        purpose=purpose,  # type: ignore[arg-type]
    )


@pytest.fixture
def beat_polls(settings) -> None:  # type: ignore[no-untyped-def]
    """No sync when a job is read: only beat's poller (called by the tests) follows jobs."""
    settings.OGEM_FINE_TUNING_SYNC_ON_READ = False
    settings.OGEM_ALERT_EMAILS = ["ops@example.com"]
    settings.OGEM_ALERT_WEBHOOK_URL = ""


def polled_until_ended(client: openai.OpenAI, job_id: str) -> Any:
    def check() -> Any:
        fine_tuning_jobs_poll.delay()  # what beat runs every OGEM_FINE_TUNING_POLL_SECONDS
        job = client.fine_tuning.jobs.retrieve(job_id)
        return job if job.status in ENDED else None

    return wait_for(check, timeout=30, what=f"fine-tuning job {job_id} to end")


def model_served(model: str, *, served: bool = True) -> None:
    """Wait until the (watched) registry serves `model`, or no longer does."""
    wait_for(
        lambda: (model in registry_get().by_model) == served,
        what=f"{model} {'served' if served else 'no longer served'}",
    )


def create_error(client: openai.OpenAI, **body: Any) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI error of a job creation the SDK would refuse to send."""
    response = httpx.post(
        f"{client.base_url}fine_tuning/jobs",
        json=body,
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    return response.status_code, response.json()["error"]

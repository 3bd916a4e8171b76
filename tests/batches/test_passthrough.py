"""Batches passed through to the providers' own batch APIs (each provider's emulator, on a real
socket), through the live server and the official openai SDK, with the embedded default's
runner (a step per read of the batch, in a thread): OpenAI, Azure OpenAI, Anthropic Message
Batches and Gemini batch mode; cancel forwarded; another tenant's 404; usage recorded once per
line at the batch price factor. test_passthrough_celery.py runs them on a real Celery worker."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from batches.models import Batch
from billing.models import RequestLog
from ogem_site.metrics import metrics_render
from tests.batches.conftest import jsonl, upload
from tests.batches.passthrough import (
    PROVIDERS,
    deployment_of,
    error_check,
    input_lines,
    line_cost,
    model_of,
    output_check,
)
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get
from tests.emulators.gemini_api import GeminiEmulator, gemini_emulator_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ENDED = ("completed", "failed", "expired", "cancelled")


@pytest.fixture
def emulators(openai_emulator: OpenAIEmulator) -> Iterator[dict[str, Any]]:
    anthropic: AnthropicEmulator = anthropic_emulator_get()
    gemini: GeminiEmulator = gemini_emulator_get()
    anthropic.reset()
    gemini.reset()
    yield {"openai": openai_emulator, "anthropic": anthropic, "gemini": gemini}
    anthropic.reset()
    gemini.reset()


@pytest.fixture
def urls(emulators: dict[str, Any]) -> dict[str, str]:
    return {name: emulator.url for name, emulator in emulators.items()}


@pytest.fixture
def passthrough(install_deployments, urls: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    install_deployments(*(deployment_of(provider, urls) for provider in PROVIDERS))


def _ended(client: openai.OpenAI, batch_id: str) -> Any:
    def check() -> Any:
        batch = client.batches.retrieve(batch_id)  # each read is a step (embedded default)
        return batch if batch.status in ENDED else None

    return wait_for(check, what=f"batch {batch_id} to end")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_batch_passes_through_and_its_output_reads_as_openais(  # type: ignore[no-untyped-def]
    provider: str, passthrough, key_sdk, emulators, settings, live_ogem, master_key
) -> None:
    client = key_sdk()
    source = upload(client, input_lines(provider, 3))
    created = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert created.model == model_of(provider)
    row = Batch.objects.get(batch_id=created.id)
    assert (row.mode, row.deployment_id) == ("passthrough", f"config:{model_of(provider)}")

    done = _ended(client, created.id)
    assert done.status == "completed", done.errors
    assert (
        done.request_counts.total,
        done.request_counts.completed,
        done.request_counts.failed,
    ) == (4, 3, 1)
    output = jsonl(client.files.content(done.output_file_id).read())
    output_check(provider, output, 3)
    error_check(jsonl(client.files.content(done.error_file_id).read()))
    assert done.usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in output
    )
    assert done.usage.output_tokens == sum(
        line["response"]["body"]["usage"]["completion_tokens"] for line in output
    )

    # The provider got one batch of the four requests, in its own format.
    row.refresh_from_db()
    assert row.upstream_batch_id
    _upstream_check(provider, emulators, row)

    # One request log row per line answered, at the batch price factor, once.
    logs = {log.request_id: log for log in RequestLog.objects.filter(batch_id=done.id)}
    assert len(logs) == 4
    factor = settings.OGEM_BATCH_PRICE_FACTOR
    for line in output:
        log = logs[line["response"]["request_id"]]
        assert (log.status_code, log.provider, log.model) == (200, provider, model_of(provider))
        assert log.cost == line_cost(line["response"]["body"], factor)
        assert log.cost > 0
    assert sorted(log.status_code for log in logs.values()) == [200, 200, 200, 400]
    rendered = metrics_render()
    for outcome in ("ok", "failed"):
        line = f'ogem_batch_lines_total{{endpoint="/v1/chat/completions",outcome="{outcome}"}}'
        assert line.encode() in rendered
    # Reading the ended batch again records nothing twice.
    client.batches.retrieve(done.id)
    assert RequestLog.objects.filter(batch_id=done.id).count() == 4
    # The management API shows its mode and its cost, the sum of its lines'.
    managed = httpx.get(
        f"{live_ogem.url}/api/v1/batches/{done.id}",
        headers={"Authorization": f"Bearer {master_key}"},
    ).json()
    assert managed["mode"] == "passthrough"
    assert Decimal(managed["cost"]) == sum(log.cost for log in logs.values())


def _upstream_check(provider: str, emulators: dict[str, Any], row: Batch) -> None:
    if provider in ("openai", "azure"):
        api = emulators["openai"].batches_api
        upstream = api.batches[row.upstream_batch_id]
        assert upstream["input_file_id"] == row.upstream_file_id
        lines = upstream["_lines"]
        assert [line["custom_id"] for line in lines] == [f"line-{n}" for n in range(1, 5)]
        if provider == "azure":
            assert upstream["endpoint"] == "/chat/completions"
            assert {line["body"]["model"] for line in lines} == {"gpt4o-global-batch"}
            paths = {r.path for r in emulators["openai"].requests}
            assert {"/openai/files", "/openai/batches"} <= paths
        else:
            assert upstream["endpoint"] == "/v1/chat/completions"
            assert {line["body"]["model"] for line in lines} == {"gpt-4o-mini"}
    elif provider == "anthropic":
        (create,) = [r for r in emulators["anthropic"].requests if r.path == "/v1/messages/batches"]
        requests = create.body["requests"]
        assert [r["custom_id"] for r in requests] == [f"line-{n}" for n in range(1, 5)]
        assert requests[0]["params"]["model"] == "claude-3-5-haiku-20241022"
        assert requests[0]["params"]["messages"] == [{"role": "user", "content": "line 0"}]
        assert requests[0]["params"]["max_tokens"] == 50
    else:
        (create,) = [
            r for r in emulators["gemini"].requests if r.path.endswith(":batchGenerateContent")
        ]
        assert create.path == "/v1beta/models/gemini-2.0-flash:batchGenerateContent"
        inlined = create.body["batch"]["inputConfig"]["requests"]["requests"]
        assert [item["metadata"]["key"] for item in inlined] == [f"line-{n}" for n in range(1, 5)]
        assert inlined[0]["request"]["contents"] == [
            {"role": "user", "parts": [{"text": "line 0"}]}
        ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_is_forwarded_to_the_provider(  # type: ignore[no-untyped-def]
    provider: str, passthrough, key_sdk, emulators
) -> None:
    holder = {
        "openai": emulators["openai"].batches_api,
        "azure": emulators["openai"].batches_api,
        "anthropic": emulators["anthropic"].batches,
        "gemini": emulators["gemini"].batches,
    }[provider]
    holder.hold = True  # the provider keeps the batch running until it is cancelled
    client = key_sdk()
    source = upload(client, input_lines(provider, 2, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(
        lambda: Batch.objects.filter(batch_id=batch.id).exclude(upstream_batch_id="").exists(),
        what="the batch to reach the provider",
    )
    # The open batches gauge counts it (set after each step).
    wait_for(
        lambda: (
            b'ogem_batches_open{mode="passthrough",status="in_progress"} 1.0' in metrics_render()
        ),
        what="the open batches gauge",
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = _ended(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert done.output_file_id is None and done.error_file_id is None
    assert done.request_counts.completed == 0
    upstream_id = Batch.objects.get(batch_id=batch.id).upstream_batch_id
    if provider in ("openai", "azure"):
        assert holder.batches[upstream_id]["status"] == "cancelled"
    elif provider == "anthropic":
        assert holder.items[upstream_id]["cancel_initiated_at"] is not None
    else:
        assert holder.items[upstream_id]["state"] == "BATCH_STATE_CANCELLED"
    assert not RequestLog.objects.filter(batch_id=batch.id).exists()


def test_another_tenant_gets_404(passthrough, key_sdk) -> None:  # type: ignore[no-untyped-def]
    owner = key_sdk()
    stranger = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    source = upload(owner, input_lines("anthropic", 1, failing=False))
    batch = owner.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.batches.cancel(batch.id)
    done = _ended(owner, batch.id)
    assert done.status == "completed"
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.retrieve(done.output_file_id)


def test_a_passthrough_group_takes_one_model_and_its_providers_endpoints(  # type: ignore[no-untyped-def]
    passthrough, key_sdk, settings, live_ogem
) -> None:
    import orjson

    settings.OGEM_FILES_BATCH_MIXED_MODELS = True
    client = key_sdk()
    mixed = input_lines("anthropic", 1, failing=False) + input_lines("openai", 1, failing=False)
    mixed = mixed.replace(b'"req-0"', b'"req-x"', 1)
    source = upload(client, mixed)
    answer = httpx.post(
        f"{live_ogem.url}/v1/batches",
        json={
            "input_file_id": source.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "input_file_id"
    assert not Batch.objects.exists()
    # Gemini serves embeddings, but its batch mode is passed chat requests only.
    embeddings = orjson.dumps(
        {
            "custom_id": "e",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": model_of("gemini"), "input": "x"},
        }
    )
    source = upload(client, embeddings + b"\n")
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(
            input_file_id=source.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    assert refused.value.body["param"] == "endpoint"  # type: ignore[index]
    assert not Batch.objects.exists()


def test_a_provider_error_is_retried_or_fails_the_batch(  # type: ignore[no-untyped-def]
    passthrough, key_sdk, emulators
) -> None:
    emulator = emulators["openai"]
    client = key_sdk()
    # A 503 on the upload: the batch waits for the next step, which sends it.
    emulator.inject(status=503)
    source = upload(client, input_lines("openai", 1, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _ended(client, batch.id)
    assert done.status == "completed", done.errors
    assert done.request_counts.completed == 1
    uploads = [r for r in emulator.requests if r.path == "/v1/files" and r.method == "POST"]
    assert len(uploads) == 2  # the refused one, then the one that went through
    # A 400: the provider refuses the batch, which fails with the provider's reason.
    emulator.inject(status=400)
    source = upload(client, input_lines("openai", 1, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = _ended(client, batch.id)
    assert failed.status == "failed"
    assert failed.failed_at is not None
    assert "Injected failure 400" in failed.errors.data[0].message
    assert failed.output_file_id is None and failed.error_file_id is None


def test_a_key_revoked_mid_batch_cancels_it_upstream_and_fails_it(  # type: ignore[no-untyped-def]
    passthrough, key_sdk, sdk, emulators
) -> None:
    from keys.models import VirtualKey
    from keys.services import key_revoke

    emulators["gemini"].batches.hold = True
    client = key_sdk()
    source = upload(client, input_lines("gemini", 2, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(
        lambda: Batch.objects.filter(batch_id=batch.id).exclude(upstream_batch_id="").exists(),
        what="the batch to reach the provider",
    )
    row = Batch.objects.get(batch_id=batch.id)
    key_revoke(key=VirtualKey.objects.get(pk=row.key_id))
    done = _ended(sdk, batch.id)  # the owner's key is refused now; the master key reads it
    assert done.status == "failed"
    assert done.errors.data[0].code == "invalid_api_key"
    upstream = emulators["gemini"].batches.items[row.upstream_batch_id]
    assert upstream["state"] == "BATCH_STATE_CANCELLED"


@pytest.mark.parametrize("provider", ["openai", "azure", "gemini"])
def test_a_batch_sent_but_not_recorded_is_found_not_sent_again(  # type: ignore[no-untyped-def]
    provider: str, passthrough, key_sdk, emulators
) -> None:
    """A worker that died after the provider took the batch, before it kept the provider's id:
    the next step finds the batch by Ogem's id (metadata, display name) and sends nothing."""
    holder = (
        emulators["gemini"].batches if provider == "gemini" else emulators["openai"].batches_api
    )
    holder.hold = True
    client = key_sdk()
    source = upload(client, input_lines(provider, 2, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(
        lambda: Batch.objects.filter(batch_id=batch.id).exclude(upstream_batch_id="").exists(),
        what="the batch to reach the provider",
    )
    upstream_id = Batch.objects.get(batch_id=batch.id).upstream_batch_id
    # What a worker killed between the provider's answer and its own write leaves.
    Batch.objects.filter(batch_id=batch.id).update(upstream_batch_id="", upstream_file_id="")
    holder.hold = False
    done = _ended(client, batch.id)
    assert done.status == "completed", done.errors
    assert done.request_counts.completed == 2
    assert Batch.objects.get(batch_id=batch.id).upstream_batch_id == upstream_id
    assert len(holder.items if provider == "gemini" else holder.batches) == 1

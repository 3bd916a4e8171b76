"""Vector stores passed through to OpenAI's (and Azure OpenAI's) own (OGEM_VECTOR_STORES_BACKEND
=openai), end to end: the official SDK against a live Ogem, whose stores live in the OpenAI
emulator (tests/emulators/openai_vector_stores.py). The client sees Ogem's ids only; files are
uploaded to the provider and attached, their status mapped back; search is the provider's,
its results given Ogem's file ids; deletes reach the provider; another tenant gets 404s."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import openai
import pytest

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import wait_for
from tests.schemas import schema_validate

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

MODEL = "vs-upstream"


@pytest.fixture(params=["openai", "azure"])
def upstream(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    settings,
    openai_emulator: OpenAIEmulator,
    install_deployments: Callable[..., None],
) -> OpenAIEmulator:
    azure = request.param == "azure"
    install_deployments(
        Deployment(
            id=f"config:{MODEL}",
            model_name=MODEL,
            provider=request.param,
            upstream_model="gpt-4o-mini",
            api_base=openai_emulator.url if azure else f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            api_version="2024-10-21" if azure else "",
        )
    )
    settings.OGEM_VECTOR_STORES_BACKEND = "openai"
    settings.OGEM_VECTOR_STORES_OPENAI_MODEL = MODEL
    openai_emulator.vector_stores.index_seconds = 0.3
    return openai_emulator


def _upload(client: openai.OpenAI, content: bytes, name: str) -> Any:
    return client.files.create(file=(name, io.BytesIO(content)), purpose="assistants")


def _settled(client: openai.OpenAI, store_id: str) -> Any:
    def settled() -> Any:
        store = client.vector_stores.retrieve(store_id)
        return store if store.status != "in_progress" else None

    return wait_for(settled, what="the store's indexing", every=0.1)


def test_a_store_lives_at_the_provider_behind_ogems_ids(
    upstream: OpenAIEmulator, key_sdk: Callable[..., openai.OpenAI]
) -> None:
    client = key_sdk()
    handbook = _upload(client, b"To reset your password open Settings then Security.", "hb.md")
    prices = _upload(client, b"The premium plan costs ten dollars a month.", "prices.md")
    blob = _upload(client, b"\x00\x01\x02binary", "blob.bin")
    store = client.vector_stores.create(
        name="handbook", metadata={"team": "support"}, file_ids=[handbook.id, prices.id]
    )
    client.vector_stores.files.create(
        vector_store_id=store.id, file_id=blob.id, attributes={"kind": "binary"}
    )
    # Created at the provider, under its own id; the client only ever sees Ogem's.
    assert len(upstream.vector_stores.stores) == 1
    (upstream_id,) = upstream.vector_stores.stores
    assert store.id.startswith("vs_") and store.id != upstream_id
    assert upstream.vector_stores.stores[upstream_id]["name"] == "handbook"
    assert upstream.vector_stores.stores[upstream_id]["metadata"] == {"team": "support"}
    schema_validate("VectorStoreObject", upstream.vector_stores._store_object(upstream_id))

    done = _settled(client, store.id)
    assert done.status == "completed"
    assert (done.file_counts.completed, done.file_counts.failed, done.file_counts.total) == (
        2,
        1,
        3,
    )
    # The files were uploaded to the provider (copies, ids of its own) and attached there.
    attached = upstream.vector_stores.store_files[upstream_id]
    assert len(attached) == 3 and not {handbook.id, prices.id, blob.id} & set(attached)
    for entry in attached.values():
        schema_validate("VectorStoreFileObject", entry["object"])
        uploaded = upstream.batches_api.files[entry["object"]["id"]]["object"]
        assert uploaded["purpose"] == "assistants"
    failed = client.vector_stores.files.retrieve(blob.id, vector_store_id=store.id)
    assert failed.status == "failed" and failed.last_error.code == "unsupported_file"
    ok = client.vector_stores.files.retrieve(handbook.id, vector_store_id=store.id)
    assert ok.status == "completed" and ok.usage_bytes == len(
        b"To reset your password open Settings then Security."
    )
    assert done.usage_bytes == ok.usage_bytes + len(b"The premium plan costs ten dollars a month.")

    # Search is the provider's; its results carry Ogem's file ids and names.
    page = client.vector_stores.search(
        vector_store_id=store.id, query="How do I reset my password?", max_num_results=5
    )
    schema_validate("VectorStoreSearchResultsPage", page.model_dump(mode="json"))
    assert page.data[0].file_id == handbook.id
    assert page.data[0].filename == "hb.md"
    assert "reset your password" in page.data[0].content[0].text
    assert {r.file_id for r in page.data} <= {handbook.id, prices.id}
    sent = upstream.vector_stores.searches[-1]
    assert sent["query"] == "How do I reset my password?" and sent["max_num_results"] == 5
    client.vector_stores.search(
        vector_store_id=store.id,
        query="plan",
        filters={"type": "eq", "key": "kind", "value": "binary"},
    )
    assert upstream.vector_stores.searches[-1]["filters"] == {
        "type": "eq",
        "key": "kind",
        "value": "binary",
    }

    # Another tenant: 404 on every route, nothing reaches the provider.
    stranger = key_sdk()
    searches = len(upstream.vector_stores.searches)
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.retrieve(store.id)
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.search(vector_store_id=store.id, query="password")
    with pytest.raises(openai.NotFoundError):
        stranger.vector_stores.delete(store.id)
    assert len(upstream.vector_stores.searches) == searches
    assert upstream_id in upstream.vector_stores.stores

    # Detaching a file detaches (and deletes) its upload at the provider.
    upstream_prices = next(
        file_id
        for file_id, entry in attached.items()
        if upstream.batches_api.files[file_id]["object"]["filename"] == "prices.md"
    )
    client.vector_stores.files.delete(prices.id, vector_store_id=store.id)
    assert upstream_prices not in upstream.vector_stores.store_files[upstream_id]
    assert upstream_prices not in upstream.batches_api.files

    # Deleting the store deletes it (and Ogem's uploads) at the provider; Ogem's files stay.
    assert client.vector_stores.delete(store.id).deleted
    assert upstream_id not in upstream.vector_stores.stores
    assert not [
        f for f in upstream.batches_api.files.values() if f["object"]["purpose"] == "assistants"
    ]
    assert client.files.retrieve(handbook.id).id == handbook.id
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_a_provider_that_refuses_the_store_answers_its_error(
    upstream: OpenAIEmulator, key_sdk: Callable[..., openai.OpenAI]
) -> None:
    upstream.inject(status=500)
    client = key_sdk()
    with pytest.raises(openai.APIStatusError) as failed:
        client.vector_stores.create(name="nope")
    assert failed.value.status_code >= 500
    assert not upstream.vector_stores.stores
    assert client.vector_stores.list().data == []
    # A file the caller cannot see: a 404, and the store made at the provider is deleted again.
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.create(name="orphan", file_ids=["file-missing"])
    assert not upstream.vector_stores.stores


def test_a_file_the_provider_indexes_slowly_is_looked_at_again_never_uploaded_twice(
    upstream: OpenAIEmulator, key_sdk: Callable[..., openai.OpenAI], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from vector_stores import upstream as passthrough

    # One look of 0.2 s a task: the provider's 1 s of indexing takes several deliveries.
    monkeypatch.setattr(passthrough, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(passthrough, "POLL_INTERVAL", 0.1)
    upstream.vector_stores.index_seconds = 1.0
    client = key_sdk()
    file = _upload(client, b"Slow files are indexed in the end.", "slow.md")
    store = client.vector_stores.create(file_ids=[file.id])
    done = _settled(client, store.id)
    assert (done.status, done.file_counts.completed) == ("completed", 1)
    uploads = [r for r in upstream.requests if r.method == "POST" and r.path.endswith("/files")]
    assert len([r for r in uploads if "vector_stores" not in r.path]) == 1
    looks = [r for r in upstream.requests if r.method == "GET" and "/vector_stores/" in r.path]
    assert len(looks) >= 3


def test_a_provider_that_fails_the_upload_fails_the_file(
    upstream: OpenAIEmulator, key_sdk: Callable[..., openai.OpenAI]
) -> None:
    client = key_sdk()
    file = _upload(client, b"Never reaches the provider.", "lost.md")
    store = client.vector_stores.create(name="unlucky")
    upstream.inject(status=500)  # the upload
    client.vector_stores.files.create(vector_store_id=store.id, file_id=file.id)
    done = _settled(client, store.id)
    assert (done.file_counts.failed, done.file_counts.completed) == (1, 0)
    failed = client.vector_stores.files.retrieve(file.id, vector_store_id=store.id)
    assert failed.last_error.code == "server_error"
    assert not upstream.vector_stores.store_files[next(iter(upstream.vector_stores.stores))]

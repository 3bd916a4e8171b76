"""Bad input on /v1/vector_stores answers OpenAI's error shapes with the right status, and the
tenant's storage bound refuses what would pass it."""

from __future__ import annotations

import io

import httpx
import openai
import pytest

from tests.live import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client: openai.OpenAI, text: str = "The tides follow the moon.") -> str:
    return client.files.create(file=("a.txt", io.BytesIO(text.encode())), purpose="assistants").id


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("", {"expires_after": {"anchor": "created_at", "days": 3}}, "expires_after"),
        ("", {"expires_after": {"anchor": "last_active_at", "days": 0}}, "expires_after.days"),
        ("", {"metadata": {"k": 1}}, "metadata.k"),
        ("", {"file_ids": "file-1"}, "file_ids"),
        ("", {"bogus": 1}, "bogus"),
        (
            "",
            {
                "file_ids": [],
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
                },
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        (
            "",
            {
                "file_ids": [],
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 400, "chunk_overlap_tokens": 201},
                },
            },
            "chunking_strategy.static.chunk_overlap_tokens",
        ),
        ("/{vs}/search", {}, "query"),
        ("/{vs}/search", {"query": []}, "query"),
        ("/{vs}/search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        (
            "/{vs}/search",
            {"query": "x", "filters": {"type": "like", "key": "a", "value": 1}},
            "filters.type",
        ),
        (
            "/{vs}/search",
            {"query": "x", "filters": {"type": "in", "key": "a", "value": 1}},
            "filters.value",
        ),
        (
            "/{vs}/search",
            {
                "query": "x",
                "filters": {"type": "and", "filters": [{"type": "eq", "key": 3, "value": 1}]},
            },
            "filters.filters[0].key",
        ),
        (
            "/{vs}/search",
            {"query": "x", "ranking_options": {"score_threshold": 2}},
            "ranking_options.score_threshold",
        ),
        ("/{vs}/files", {}, "file_id"),
        ("/{vs}/files", {"file_id": "file-x", "attributes": {"k": [1]}}, "attributes.k"),
        ("/{vs}/file_batches", {}, "file_ids"),
    ],
)
def test_bad_fields_are_400_naming_the_parameter(live_ogem, make_key, path, body, param) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {make_key()}"}
    base = f"{live_ogem.url}/v1/vector_stores"
    store = httpx.post(base, json={"name": "s"}, headers=headers).json()
    answer = httpx.post(base + path.format(vs=store["id"]), json=body, headers=headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


def test_missing_ids_are_404(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    store = client.vector_stores.create(name="s")
    for call in (
        lambda: client.vector_stores.retrieve("vs_missing"),
        lambda: client.vector_stores.files.create(vector_store_id=store.id, file_id="file-missing"),
        lambda: client.vector_stores.files.retrieve(
            vector_store_id=store.id, file_id="file-missing"
        ),
        lambda: client.vector_stores.file_batches.retrieve(
            vector_store_id=store.id, batch_id="vsfb_x"
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()


def test_a_non_text_file_fails_with_last_error(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    file_id = client.files.create(
        file=("a.bin", io.BytesIO(b"\xff\xfe\x00\x01" * 10)), purpose="assistants"
    ).id
    store = client.vector_stores.create(name="s", file_ids=[file_id])
    attached = client.vector_stores.files.retrieve(vector_store_id=store.id, file_id=file_id)
    assert attached.status == "failed"
    assert attached.last_error is not None and attached.last_error.code == "unsupported_file"
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.total) == (1, 0, 1)


def test_the_tenant_storage_bound_refuses_with_413(key_sdk, settings) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    settings.OGEM_VECTOR_STORES_MAX_BYTES = 3000  # one small file's chunks and vector fit
    store = client.vector_stores.create(name="s")
    first = client.vector_stores.files.create(vector_store_id=store.id, file_id=_upload(client))
    assert first.status == "completed" and 0 < first.usage_bytes <= 3000
    with pytest.raises(openai.APIStatusError) as refused:
        client.vector_stores.files.create(
            vector_store_id=store.id, file_id=_upload(client, "x" * 4000)
        )
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "request_too_large"  # type: ignore[index]
    # Within the announced size but past the bound once indexed: the file fails, nothing kept.
    second = client.vector_stores.files.create(
        vector_store_id=store.id, file_id=_upload(client, "waves " * 250)
    )
    assert second.status == "failed" and second.last_error.code == "invalid_file"  # type: ignore[union-attr]
    assert client.vector_stores.retrieve(store.id).usage_bytes == first.usage_bytes


def test_cancelling_a_batch(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    store = client.vector_stores.create(name="s")
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id, file_ids=[_upload(client)]
    )
    cancelled = client.vector_stores.file_batches.cancel(
        vector_store_id=store.id, batch_id=batch.id
    )
    # Indexing ran eagerly: the file was done before the cancel, which leaves the batch so.
    assert cancelled.status == "completed" and cancelled.file_counts.completed == 1


def test_an_expired_store_says_so_and_cannot_be_searched(key_sdk) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    from vector_stores.models import VectorStore

    client = key_sdk()
    store = client.vector_stores.create(
        name="s", file_ids=[_upload(client)], expires_after={"anchor": "last_active_at", "days": 1}
    )
    VectorStore.objects.filter(store_id=store.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert client.vector_stores.retrieve(store.id).status == "expired"
    with pytest.raises(openai.BadRequestError) as refused:
        client.vector_stores.search(vector_store_id=store.id, query="tides")
    assert refused.value.body["code"] == "expired"  # type: ignore[index]


def test_a_chroma_server_away_is_a_503(key_sdk, settings, chroma_server: str) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_VECTOR_STORES_BACKEND = "chroma"
    settings.OGEM_VECTOR_STORES_CHROMA_URL = chroma_server
    client = key_sdk()
    store = client.vector_stores.create(name="s", file_ids=[_upload(client)])
    assert client.vector_stores.search(vector_store_id=store.id, query="moon").data
    settings.OGEM_VECTOR_STORES_CHROMA_URL = f"http://127.0.0.1:{free_port()}"  # nothing there
    with pytest.raises(openai.InternalServerError) as away:
        client.vector_stores.search(vector_store_id=store.id, query="moon")
    assert away.value.status_code == 503
    assert away.value.body["code"] == "vector_store_unavailable"  # type: ignore[index]

"""/v1/vector_stores through the live server and the official openai SDK, on both backends:
upload, index, search with filters, update, delete; OpenAI's shapes; tenants isolated."""

from __future__ import annotations

import io
from typing import Any

import openai
import pytest

from tests.schemas import schema_validate
from tests.vector_stores.corpus import DOCUMENTS

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client: openai.OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id


def _filenames(page: Any) -> list[str]:
    return [item.filename for item in page.data]


def test_upload_index_search_filter_delete(key_sdk, backend: str) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    ids = {name: _upload(client, name, DOCUMENTS[name]) for name in DOCUMENTS}
    store = client.vector_stores.create(
        name="handbook",
        metadata={"team": "docs"},
        expires_after={"anchor": "last_active_at", "days": 7},
    )
    assert store.id.startswith("vs_")
    assert (store.name, store.status, store.metadata) == ("handbook", "completed", {"team": "docs"})
    assert store.file_counts.total == 0 and store.usage_bytes == 0
    assert store.expires_at == store.last_active_at + 7 * 86400

    one = client.vector_stores.files.create(
        vector_store_id=store.id,
        file_id=ids["volcanoes.txt"],
        attributes={"topic": "earth", "year": 2021},
    )
    assert (one.id, one.object, one.vector_store_id) == (
        ids["volcanoes.txt"],
        "vector_store.file",
        store.id,
    )
    schema_validate(
        "VectorStoreFileObject",
        client.vector_stores.files.with_raw_response.retrieve(
            vector_store_id=store.id, file_id=one.id
        ).http_response.json(),
    )
    rest = [name for name in DOCUMENTS if name != "volcanoes.txt"]
    batch = client.vector_stores.file_batches.create(
        vector_store_id=store.id,
        files=[
            {
                "file_id": ids[name],
                "attributes": {
                    "topic": "food" if name in ("sourdough.txt", "coffee.txt") else "other",
                    "year": 2020 + n,
                },
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
                },
            }
            for n, name in enumerate(rest)
        ],
    )
    assert batch.object == "vector_store.files_batch"
    # Indexing runs eagerly here (Celery's eager mode): the batch is done when it is answered.
    batch = client.vector_stores.file_batches.retrieve(vector_store_id=store.id, batch_id=batch.id)
    assert batch.status == "completed"
    assert batch.file_counts.model_dump() == {
        "in_progress": 0,
        "completed": 9,
        "failed": 0,
        "cancelled": 0,
        "total": 9,
    }
    listed = client.vector_stores.file_batches.list_files(
        vector_store_id=store.id, batch_id=batch.id, limit=100
    )
    assert len(listed.data) == 9
    assert listed.data[0].chunking_strategy.static.max_chunk_size_tokens == 200  # type: ignore[union-attr]

    store = client.vector_stores.retrieve(store.id)
    schema_validate(
        "VectorStoreObject",
        client.vector_stores.with_raw_response.retrieve(store.id).http_response.json(),
    )
    assert store.file_counts.completed == 10 and store.status == "completed"
    assert store.usage_bytes > sum(len(text) for text in DOCUMENTS.values())
    files = client.vector_stores.files.list(vector_store_id=store.id, filter="completed", limit=3)
    assert len(files.data) == 3 and files.has_more is True
    assert client.vector_stores.files.list(vector_store_id=store.id, filter="failed").data == []

    raw = client.vector_stores.with_raw_response.search(
        vector_store_id=store.id, query="How do volcanoes erupt lava and ash?", max_num_results=3
    )
    schema_validate("VectorStoreSearchResultsPage", raw.http_response.json())
    page = raw.parse()
    assert page.search_query == ["How do volcanoes erupt lava and ash?"]
    assert len(page.data) == 3
    top = page.data[0]
    assert (top.file_id, top.filename, top.attributes) == (
        ids["volcanoes.txt"],
        "volcanoes.txt",
        {"topic": "earth", "year": 2021},
    )
    assert "magma" in top.content[0].text and top.content[0].type == "text"
    assert 0 < top.score <= 1 and [r.score for r in page.data] == sorted(
        (r.score for r in page.data), reverse=True
    )

    # Filters: a comparison, a compound, numbers.
    food = client.vector_stores.search(
        vector_store_id=store.id,
        query="volcano eruption",
        filters={"type": "eq", "key": "topic", "value": "food"},
    )
    assert sorted(set(_filenames(food))) == ["coffee.txt", "sourdough.txt"]
    either = client.vector_stores.search(
        vector_store_id=store.id,
        query="bread",
        filters={
            "type": "or",
            "filters": [
                {"type": "eq", "key": "topic", "value": "earth"},
                {"type": "in", "key": "topic", "value": ["food"]},
            ],
        },
        max_num_results=10,
    )
    assert sorted(set(_filenames(either))) == ["coffee.txt", "sourdough.txt", "volcanoes.txt"]
    recent = client.vector_stores.search(
        vector_store_id=store.id,
        query="anything",
        filters={
            "type": "and",
            "filters": [
                {"type": "gte", "key": "year", "value": 2028},
                {"type": "ne", "key": "topic", "value": "food"},
            ],
        },
        max_num_results=50,
    )
    expected = {
        name
        for n, name in enumerate(rest)
        if 2020 + n >= 2028 and name not in ("sourdough.txt", "coffee.txt")
    }
    assert set(_filenames(recent)) == expected and expected
    # A score threshold keeps only close chunks; an array of queries searches them together.
    strict = client.vector_stores.search(
        vector_store_id=store.id,
        query="How do volcanoes erupt lava and ash?",
        ranking_options={"score_threshold": top.score},
    )
    assert [r.filename for r in strict.data] == ["volcanoes.txt"]
    both = client.vector_stores.search(
        vector_store_id=store.id,
        query=["espresso coffee beans", "chess king checkmate"],
        max_num_results=2,
        rewrite_query=True,
    )
    assert sorted(_filenames(both)) == ["chess.txt", "coffee.txt"]

    # Attributes change what a filter finds.
    updated = client.vector_stores.files.update(
        vector_store_id=store.id, file_id=ids["chess.txt"], attributes={"topic": "food"}
    )
    assert updated.attributes == {"topic": "food"}
    food = client.vector_stores.search(
        vector_store_id=store.id,
        query="game",
        filters={"type": "eq", "key": "topic", "value": "food"},
    )
    assert "chess.txt" in _filenames(food)

    content = client.vector_stores.files.content(vector_store_id=store.id, file_id=ids["tides.txt"])
    assert [part.text for part in content] == [DOCUMENTS["tides.txt"]]

    # Detaching a file: it leaves the search and the counts; the /v1/files file stays.
    gone = client.vector_stores.files.delete(vector_store_id=store.id, file_id=ids["volcanoes.txt"])
    assert (gone.id, gone.deleted, gone.object) == (
        ids["volcanoes.txt"],
        True,
        "vector_store.file.deleted",
    )
    after = client.vector_stores.search(
        vector_store_id=store.id, query="How do volcanoes erupt lava and ash?", max_num_results=50
    )
    assert "volcanoes.txt" not in _filenames(after)
    smaller = client.vector_stores.retrieve(store.id)
    assert smaller.file_counts.total == 9 and smaller.usage_bytes < store.usage_bytes
    assert client.files.retrieve(ids["volcanoes.txt"]).id == ids["volcanoes.txt"]

    modified = client.vector_stores.update(
        vector_store_id=store.id, name="renamed", expires_after=None
    )
    assert modified.name == "renamed"
    assert [s.id for s in client.vector_stores.list().data] == [store.id]
    deleted = client.vector_stores.delete(store.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (store.id, True, "vector_store.deleted")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)
    if backend == "chroma":
        import chromadb
        from django.conf import settings

        from vector_stores.backends.chroma import collection_name

        host, port = settings.OGEM_VECTOR_STORES_CHROMA_URL.rsplit(":", 1)
        names = {
            c.name
            for c in chromadb.HttpClient(
                host=host.split("//")[1], port=int(port)
            ).list_collections()
        }
        assert "ogem-" + store.id.replace("_", "-") not in names
        assert collection_name  # the name the backend uses is the one checked


def test_another_tenant_gets_404_on_every_id(key_sdk) -> None:  # type: ignore[no-untyped-def]
    owner, other = key_sdk(), key_sdk()
    file_id = _upload(owner, "tides.txt", DOCUMENTS["tides.txt"])
    store = owner.vector_stores.create(name="mine", file_ids=[file_id])
    batch = owner.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[file_id])
    calls = [
        lambda: other.vector_stores.retrieve(store.id),
        lambda: other.vector_stores.update(vector_store_id=store.id, name="x"),
        lambda: other.vector_stores.delete(store.id),
        lambda: other.vector_stores.search(vector_store_id=store.id, query="tides"),
        lambda: other.vector_stores.files.list(vector_store_id=store.id),
        lambda: other.vector_stores.files.retrieve(vector_store_id=store.id, file_id=file_id),
        lambda: other.vector_stores.files.update(
            vector_store_id=store.id, file_id=file_id, attributes={}
        ),
        lambda: other.vector_stores.files.delete(vector_store_id=store.id, file_id=file_id),
        lambda: list(other.vector_stores.files.content(vector_store_id=store.id, file_id=file_id)),
        lambda: other.vector_stores.files.create(vector_store_id=store.id, file_id=file_id),
        lambda: other.vector_stores.file_batches.retrieve(
            vector_store_id=store.id, batch_id=batch.id
        ),
        lambda: other.vector_stores.file_batches.cancel(
            vector_store_id=store.id, batch_id=batch.id
        ),
        lambda: other.vector_stores.file_batches.list_files(
            vector_store_id=store.id, batch_id=batch.id
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert missing.value.body["type"] == "not_found_error"  # type: ignore[index]
    # Their own store cannot take the owner's file either.
    theirs = other.vector_stores.create(name="theirs")
    with pytest.raises(openai.NotFoundError):
        other.vector_stores.files.create(vector_store_id=theirs.id, file_id=file_id)
    assert other.vector_stores.list().data[0].id == theirs.id
    assert len(other.vector_stores.list().data) == 1
    # The owner's store is untouched.
    assert owner.vector_stores.retrieve(store.id).file_counts.completed == 1

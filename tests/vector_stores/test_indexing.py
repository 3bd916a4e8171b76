"""Indexing as the Celery task runs it (eagerly here, once a file's row is committed):
idempotent, a cancelled file left alone, chunks by OpenAI's static strategy, and the built-in
index kept in step across workers by the store's version."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from files.models import File
from files.services import file_upload
from gateway.context import Caller
from keys.services import key_create
from tests.factories import TeamFactory
from vector_stores.backends.builtin import BuiltinBackend
from vector_stores.chunking import Chunking, text_chunks
from vector_stores.indexing import store_file_index
from vector_stores.models import VectorChunk, VectorStore, VectorStoreFile
from vector_stores.services import (
    FileSpec,
    batch_cancel,
    batch_create,
    store_create,
    store_file_delete,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def caller() -> Caller:
    key = key_create(name="k", team=TeamFactory())
    return Caller(
        key_id=key.key.pk, organization_id=key.key.team.organization_id, team_id=key.key.team_id
    )


def _file(caller: Caller, text: str) -> str:
    upload = SimpleUploadedFile("doc.txt", text.encode())
    return file_upload(
        caller=caller, content=upload, size=upload.size, filename="doc.txt", purpose="assistants"
    ).file_id


def test_static_chunks_overlap_as_asked() -> None:
    text = " ".join(f"w{i}" for i in range(600))
    chunks = text_chunks(text, chunking=Chunking(max_tokens=200, overlap_tokens=100))
    assert len(chunks) > 2
    # Consecutive chunks share their overlap: the second starts inside the first.
    assert chunks[1].split()[0] in chunks[0].split()
    assert chunks[0].startswith("w0") and chunks[-1].endswith("w599")
    assert text_chunks("   ", chunking=Chunking()) == []


def test_indexing_is_idempotent_and_leaves_cancelled_files(caller: Caller) -> None:
    store = store_create(caller=caller, name="s", metadata={}, expires_after_days=None, files=[])
    batch = batch_create(
        caller=caller,
        store=store,
        files=[FileSpec(file_id=_file(caller, "The moon pulls the tides."))],
    )
    # Indexed once committed (eagerly here); a redelivered task changes nothing.
    first = batch.files.get()
    chunks = list(VectorChunk.objects.filter(store_file=first).values_list("pk", flat=True))
    assert len(chunks) == 1
    assert store_file_index(store_file_pk=first.pk) == "completed"
    assert list(VectorChunk.objects.filter(store_file=first).values_list("pk", flat=True)) == chunks
    # A file still waiting when its batch is cancelled is never indexed.
    file_id = _file(caller, "Bees make honey.")
    waiting = VectorStoreFile.objects.create(
        store=store,
        file_id=file_id,
        source=File.objects.get(file_id=file_id),
        filename="doc.txt",
        batch=batch,
        created_at=timezone.now(),
    )
    batch_cancel(batch=batch)
    assert store_file_index(store_file_pk=waiting.pk) == "cancelled"
    assert not VectorChunk.objects.filter(store_file=waiting).exists()
    store.refresh_from_db()
    assert store.index_version == 1 and store.dimensions == 256 and store.usage_bytes > 0


def test_every_worker_catches_up_with_the_store_version(caller: Caller) -> None:
    import numpy as np

    store = store_create(
        caller=caller,
        name="s",
        metadata={},
        expires_after_days=None,
        files=[FileSpec(file_id=_file(caller, "The moon pulls the tides."))],
    )
    store.refresh_from_db()
    # Two workers: each its own backend, each with its own in-process index.
    one, two = BuiltinBackend(), BuiltinBackend()
    vector = np.frombuffer(bytes(VectorChunk.objects.get().vector), dtype=np.float32)
    assert [label for label, _ in one.search(store=store, vector=vector, k=5, file_pks=None)] == [
        VectorChunk.objects.get().pk
    ]
    assert len(two.search(store=store, vector=vector, k=5, file_pks=None)) == 1
    # Another file arrives (worker one's index is now behind), then the first leaves.
    batch_create(
        caller=caller, store=store, files=[FileSpec(file_id=_file(caller, "Bees make honey."))]
    )
    store.refresh_from_db()
    assert len(one.search(store=store, vector=vector, k=5, file_pks=None)) == 2
    store_file_delete(store_file=store.files.order_by("pk").first())
    store = VectorStore.objects.get(pk=store.pk)
    for worker in (one, two):
        found = worker.search(store=store, vector=vector, k=5, file_pks=None)
        assert [label for label, _ in found] == list(
            VectorChunk.objects.values_list("pk", flat=True)
        )


def test_a_large_store_is_searched_exactly_until_its_graph_is_built(caller: Caller) -> None:
    import numpy as np

    from gateway.vectors import EXACT_LIMIT

    store = store_create(caller=caller, name="s", metadata={}, expires_after_days=None, files=[])
    attached = batch_create(
        caller=caller,
        store=store,
        files=[FileSpec(file_id=_file(caller, "one")), FileSpec(file_id=_file(caller, "two"))],
    )
    first, second = list(attached.files.order_by("pk"))
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((EXACT_LIMIT + 500, 256)).astype(np.float32)
    VectorChunk.objects.bulk_create(
        VectorChunk(
            store=store,
            store_file=first if n % 2 else second,
            position=n,
            text=f"chunk {n}",
            vector=vectors[n].tobytes(),
        )
        for n in range(len(vectors))
    )
    VectorStore.objects.filter(pk=store.pk).update(index_version=99)
    store.refresh_from_db()
    worker = BuiltinBackend()
    loaded = worker.index_synced(store=store)
    query = vectors[10] + 0.01
    # Right away (exactly, or by the graph if its build already finished): the nearest chunk,
    # and with a filter only the file's chunks.
    assert worker.search(store=store, vector=query, k=1, file_pks=None)[0][1] > 0.99
    found = worker.search(store=store, vector=query, k=5, file_pks=[second.pk])
    labels = dict(VectorChunk.objects.filter(store=store).values_list("pk", "store_file_id"))
    assert {labels[label] for label, _ in found} == {second.pk}
    assert worker.graph_wait(store=store, timeout=120)
    assert loaded.exact is None and loaded.index.kind == "hnsw"
    graph = worker.search(store=store, vector=query, k=1, file_pks=None)
    exact_best = int(np.argmax(vectors @ query / np.linalg.norm(vectors, axis=1)))
    assert graph[0][0] == VectorChunk.objects.get(store=store, position=exact_best).pk


def test_a_store_with_a_reused_primary_key_is_never_served_the_earlier_stores_index(
    caller: Caller,
) -> None:
    """Ids restart when the tables are made again (migrations run backwards then forwards, as
    tests/secrets does), or a database is flushed or restored, while a process keeps its indexes:
    a new store with an earlier store's primary key, at the same version, is searched in its own
    chunks and files, not the earlier store's."""
    import numpy as np

    from vector_stores.search import _search_blocking, _targets

    old = store_create(
        caller=caller,
        name="old",
        metadata={},
        expires_after_days=None,
        files=[FileSpec(file_id=_file(caller, "The moon pulls the tides."))],
    )
    old.refresh_from_db()
    vector = np.frombuffer(bytes(VectorChunk.objects.get(store=old).vector), dtype=np.float32)
    worker = BuiltinBackend()
    assert len(worker.search(store=old, vector=vector, k=5, file_pks=None)) == 1

    def found(store_id: str) -> list[str]:
        targets = _targets(caller=caller, vector_store_ids=[store_id], filters=None)
        results = _search_blocking(
            targets=targets, vectors=vector[None, :], k=5, score_threshold=0.0
        )
        return [result["filename"] for result in results]

    assert found(old.store_id) == ["doc.txt"]
    # Its rows go without the backend hearing of it (as in a flush), and a store of other
    # content takes its primary key, at the same version.
    VectorStore.objects.filter(pk=old.pk).delete()
    now = timezone.now()
    new = VectorStore.objects.create(
        pk=old.pk,
        store_id="vs_reused0000000000000000",
        organization_id=old.organization_id,
        team_id=old.team_id,
        key_id=old.key_id,
        name="new",
        embedding_model=old.embedding_model,
        dimensions=old.dimensions,
        index_version=old.index_version,
        created_at=now,
        last_active_at=now,
    )
    attached = VectorStoreFile.objects.create(
        store=new,
        file_id=_file(caller, "Bees make honey."),
        filename="bees.txt",
        status="completed",
        created_at=now,
    )
    chunk = VectorChunk.objects.create(
        store=new, store_file=attached, position=0, text="Bees make honey.", vector=vector.tobytes()
    )
    assert [label for label, _ in worker.search(store=new, vector=vector, k=5, file_pks=None)] == [
        chunk.pk
    ]
    assert found(new.store_id) == ["bees.txt"]

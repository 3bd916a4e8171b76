"""Vector stores (OpenAI's Vector Stores API): a tenant's collections of files from /v1/files,
chunked and embedded for search, with their file batches and chunks.

The chunks' text (and, for the built-in backend, their vectors) are rows here, so the built-in
index can be rebuilt by any worker; an external backend (Chroma) holds the vectors itself.
"""

from __future__ import annotations

from django.db import models


class Backend(models.TextChoices):
    BUILTIN = "builtin"
    CHROMA = "chroma"
    OPENAI = "openai"  # passed through to an OpenAI (or Azure OpenAI) account's vector stores


class FileStatus(models.TextChoices):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class VectorStore(models.Model):
    """One store. Another tenant's store is invisible (vector_stores/selectors.py)."""

    store_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="vector_stores",
    )
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="vector_stores",
    )
    # The key that created it: its embeddings are made (and paid for) as that key.
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="vector_stores",
    )
    by_master = models.BooleanField(default=False)
    name = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.BUILTIN)
    # The model group embedding its chunks; for the `openai` backend, the model group whose
    # OpenAI or Azure OpenAI deployment's account holds the store.
    embedding_model = models.CharField(max_length=200)
    # The `openai` backend: the store's id at the provider (the client sees `store_id` only).
    upstream_id = models.CharField(max_length=128, blank=True, default="")
    dimensions = models.IntegerField(null=True, blank=True)
    # Bumped in the transaction of every change to the store's chunks or its files' attributes:
    # a worker whose index (or file list) has another version brings it up to date first.
    index_version = models.BigIntegerField(default=0)
    usage_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    last_active_at = models.DateTimeField()
    expires_after_days = models.IntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "team", "created_at"])]

    def __str__(self) -> str:
        return self.store_id


class VectorStoreFileBatch(models.Model):
    batch_id = models.CharField(max_length=64, unique=True)
    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="batches")
    cancelled = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.batch_id


class VectorStoreFile(models.Model):
    """A /v1/files file attached to a store; its id is the file's (as OpenAI's)."""

    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="files")
    file_id = models.CharField(max_length=64)
    # The file's blob is read while indexing; deleting the file later keeps its chunks here.
    source = models.ForeignKey(
        "files.File", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    filename = models.CharField(max_length=512)
    batch = models.ForeignKey(
        VectorStoreFileBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="files",
    )
    status = models.CharField(
        max_length=16, choices=FileStatus.choices, default=FileStatus.IN_PROGRESS
    )
    last_error = models.JSONField(null=True, blank=True)
    # The `openai` backend: the file's id at the provider (uploaded there, purpose assistants).
    upstream_file_id = models.CharField(max_length=128, blank=True, default="")
    max_chunk_size_tokens = models.IntegerField(default=800)
    chunk_overlap_tokens = models.IntegerField(default=400)
    attributes = models.JSONField(null=True, blank=True)
    usage_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["store", "file_id"], name="vector_store_file_once")
        ]
        indexes = [models.Index(fields=["store", "status"])]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.file_id}"


class VectorChunk(models.Model):
    """One chunk of a store's file. Its primary key is its label in the vector index."""

    store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="chunks")
    store_file = models.ForeignKey(VectorStoreFile, on_delete=models.CASCADE, related_name="chunks")
    position = models.IntegerField()
    text = models.TextField()
    # float32 little-endian; empty when an external backend holds the vector.
    vector = models.BinaryField(blank=True, default=b"")

    class Meta:
        ordering = ["store_file", "position"]
        indexes = [models.Index(fields=["store", "id"])]

    def __str__(self) -> str:
        return f"chunk {self.pk}"

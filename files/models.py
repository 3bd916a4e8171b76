"""Files a tenant uploaded through /v1/files or /v1/uploads (OpenAI's Files API), and the
uploads in progress with their parts.

A row is written only once its contents are stored whole (files/services.py), so a row always
has its blob; blobs are kept in the `files` storage (settings.STORAGES, docs/files.md).
"""

from __future__ import annotations

from django.db import models


class FilePurpose(models.TextChoices):
    ASSISTANTS = "assistants"
    ASSISTANTS_OUTPUT = "assistants_output"
    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"
    FINE_TUNE = "fine-tune"
    FINE_TUNE_RESULTS = "fine-tune-results"
    VISION = "vision"
    USER_DATA = "user_data"
    EVALS = "evals"


# What a client may upload; the others are written by Ogem (batch results, fine-tune results).
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


class File(models.Model):
    """One stored file. Another tenant's file is invisible (files/selectors.py)."""

    file_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="files",
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="files"
    )
    # The key that uploaded it; a deleted key leaves its files to its team.
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="files",
    )
    filename = models.CharField(max_length=512)
    purpose = models.CharField(max_length=32, choices=FilePurpose.choices)
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=512, help_text="The blob's name in the storage")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # A `batch` file's summary from its validation: {"lines", "url", "models"}.
    batch_summary = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["organization", "team", "created_at"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self) -> str:
        return self.file_id


class UploadStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Upload(models.Model):
    """A file sent in parts (/v1/uploads); `complete` joins the parts into a File."""

    upload_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="uploads",
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="uploads"
    )
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="uploads",
    )
    filename = models.CharField(max_length=512)
    purpose = models.CharField(max_length=32, choices=FilePurpose.choices)
    bytes = models.BigIntegerField(help_text="The size the client announced")
    mime_type = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.PENDING
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The resulting file's `expires_after` seconds (anchor created_at), when asked for.
    file_expires_after = models.IntegerField(null=True, blank=True)
    file = models.ForeignKey(File, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return self.upload_id


class UploadPart(models.Model):
    part_id = models.CharField(max_length=64, unique=True)
    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="parts")
    bytes = models.BigIntegerField()
    storage_name = models.CharField(max_length=512)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.part_id

"""Batches run by Ogem (OpenAI's /v1/batches): the batch, and one row per answered line."""

from __future__ import annotations

from django.db import models


class Batch(models.Model):
    """A batch: an input file of requests run by Celery through the /v1 pipeline as the key that
    created it. Its state machine (docs/batches.md): validating -> in_progress -> finalizing ->
    completed, or failed (bad input), expired (window ended), cancelling -> cancelled."""

    class Status(models.TextChoices):
        VALIDATING = "validating"
        FAILED = "failed"
        IN_PROGRESS = "in_progress"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        EXPIRED = "expired"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"

    class Mode(models.TextChoices):
        OGEM = "ogem"
        PASSTHROUGH = "passthrough"

    batch_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="batches",
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="batches"
    )
    # The key whose scope, limits and budgets the lines run under; null: the master key's batch
    # (`by_master`), or a key deleted since (its batch fails).
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="batches",
    )
    by_master = models.BooleanField(default=False)
    endpoint = models.CharField(max_length=64)  # "/v1/chat/completions"
    input_file_id = models.CharField(max_length=64)
    completion_window = models.CharField(max_length=8, default="24h")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    metadata = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    output_file_id = models.CharField(max_length=64, blank=True)
    error_file_id = models.CharField(max_length=64, blank=True)
    errors = models.JSONField(null=True, blank=True)  # OpenAI's `errors.data` when it failed
    # `output_expires_after.seconds`: the output and error files expire this long after they are
    # written; null: the files' default.
    output_expires_after = models.PositiveIntegerField(null=True, blank=True)
    request_total = models.PositiveIntegerField(default=0)
    request_completed = models.PositiveIntegerField(default=0)
    request_failed = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The worker running it: a token of its own and until when its hold lasts (renewed while it
    # runs); a lapsed hold lets another worker resume the batch (batches/runner.py).
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Who runs the lines: Ogem itself, or the provider's own batch API (docs/batches.md).
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.OGEM)
    # Pass-through only: the deployment it was sent to, and the provider's ids for it (its batch,
    # and the input file it was uploaded as where the provider takes files).
    deployment_id = models.CharField(max_length=200, blank=True)
    upstream_batch_id = models.CharField(max_length=200, blank=True)
    upstream_file_id = models.CharField(max_length=200, blank=True)
    # When it was first sent: a step that finds no upstream id after it looks the batch up at
    # the provider (by Ogem's batch id) before it sends it again.
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["organization", "status"]),
            models.Index(fields=["status", "lease_expires_at"]),
        ]

    def __str__(self) -> str:
        return self.batch_id


class BatchLine(models.Model):
    """One answered line of a batch: written once (unique on the batch and custom_id), so a line
    resumed by another worker after a crash is never answered twice."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    line = models.PositiveIntegerField()  # 1-based line number in the input file
    custom_id = models.CharField(max_length=512)
    request_id = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()  # the /v1 answer (OpenAI's error shape when not 200)

    class Meta:
        ordering = ["batch", "line"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "custom_id"], name="batch_line_custom_id"),
            models.UniqueConstraint(fields=["batch", "line"], name="batch_line_number"),
        ]

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.custom_id}"

"""Fine-tuning jobs run by a provider (OpenAI, Azure OpenAI, Vertex AI) for a tenant, their
events and checkpoints as the provider reported them, and the provider's copies of the tenant's
files."""

from __future__ import annotations

from django.db import models

USD = {"max_digits": 18, "decimal_places": 8}


class FineTuningJob(models.Model):
    """A job: Ogem's id (`ftjob-...`) for the provider's job, owned by the creating tenant.
    Its status is the provider's, copied by the poller (fine_tuning/services.py: `job_sync`)."""

    class Status(models.TextChoices):
        VALIDATING_FILES = "validating_files"
        QUEUED = "queued"
        RUNNING = "running"
        PAUSED = "paused"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    job_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="fine_tuning_jobs",
    )
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="fine_tuning_jobs",
    )
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="fine_tuning_jobs",
    )
    by_master = models.BooleanField(default=False)
    # The registry deployment the job was sent through ("db:12", "config:..."), its provider,
    # and the base model as the caller named it (`model`) and as the provider knows it.
    deployment_id = models.CharField(max_length=300)
    provider = models.CharField(max_length=50)
    model = models.CharField(max_length=200)
    base_model = models.CharField(max_length=200)
    upstream_job_id = models.CharField(max_length=200)
    training_file = models.CharField(max_length=64)
    validation_file = models.CharField(max_length=64, blank=True)
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    method = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.VALIDATING_FILES
    )
    error = models.JSONField(null=True, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    trained_tokens = models.BigIntegerField(null=True, blank=True)
    estimated_finish = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # The training's cost: trained tokens at the provider's training price (fine_tuning/prices.py).
    cost = models.DecimalField(**USD, null=True, blank=True)
    # The deployment that serves the fine-tuned model to the owning organization, once it
    # succeeded; null before, and after the model was deleted.
    served_by = models.ForeignKey(
        "gateway.ModelDeployment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="fine_tuning_jobs",
    )
    model_deleted = models.BooleanField(default=False)
    # Set once the owner was told the job ended: the end is announced exactly once.
    ended_notified = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["organization", "team", "created_at"]),
            models.Index(fields=["status"]),
            models.Index(fields=["fine_tuned_model"]),
        ]

    def __str__(self) -> str:
        return self.job_id


class FineTuningEvent(models.Model):
    """One event of a job as the provider reported it (its id, time, level and message)."""

    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    type = models.CharField(max_length=20, default="message")
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["job", "event_id"], name="fine_tuning_event_once")
        ]

    def __str__(self) -> str:
        return self.event_id


class FineTuningCheckpoint(models.Model):
    job = models.ForeignKey(FineTuningJob, on_delete=models.CASCADE, related_name="checkpoints")
    checkpoint_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    fine_tuned_model_checkpoint = models.CharField(max_length=300)
    step_number = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-step_number", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "checkpoint_id"], name="fine_tuning_checkpoint_once"
            )
        ]

    def __str__(self) -> str:
        return self.checkpoint_id


class ForwardedFile(models.Model):
    """An Ogem file (files.File) as uploaded to one provider account: the id mapping, so a file
    used by several jobs on the same upstream is sent once."""

    file = models.ForeignKey("files.File", on_delete=models.CASCADE, related_name="forwarded")
    # Where it went: the provider and its API base (an account), not the deployment.
    upstream = models.CharField(max_length=600)
    upstream_file_id = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["file", "upstream"], name="forwarded_file_once")
        ]

    def __str__(self) -> str:
        return f"{self.file_id} -> {self.upstream_file_id}"

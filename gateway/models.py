from __future__ import annotations

from django.db import models


class ModelDeployment(models.Model):
    """One upstream behind a public model name. Several deployments of one name form a group."""

    model_name = models.CharField(max_length=200, db_index=True, help_text="Public model name")
    provider = models.CharField(max_length=50, help_text="Provider package, e.g. openai, mock")
    upstream_model = models.CharField(max_length=300, help_text="Model id sent upstream")
    api_base = models.URLField(max_length=500, blank=True)
    api_version = models.CharField(max_length=50, blank=True)
    # A reference, never the secret itself: os.environ/NAME, file:///path or secret://...
    credential_ref = models.CharField(max_length=300, blank=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deployments",
        help_text="Empty: available to every organization",
    )
    access_groups = models.JSONField(default=list, blank=True)
    region = models.CharField(max_length=50, blank=True)
    weight = models.PositiveIntegerField(default=1)
    priority = models.PositiveIntegerField(default=0, help_text="Lower is tried first")
    tags = models.JSONField(default=list, blank=True)
    rpm = models.PositiveIntegerField(null=True, blank=True)
    tpm = models.PositiveIntegerField(null=True, blank=True)
    connect_timeout = models.FloatField(default=5.0)
    first_byte_timeout = models.FloatField(default=60.0)
    total_timeout = models.FloatField(default=600.0)
    params = models.JSONField(default=dict, blank=True, help_text="Extra provider parameters")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name", "priority", "id"]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.provider}/{self.upstream_model}"

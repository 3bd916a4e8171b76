from __future__ import annotations

from django.conf import settings
from django.db import models

from ogem_site.hashing import PUBLIC_PREFIX_LENGTH


class VirtualKey(models.Model):
    """An API key for /v1. Only an HMAC-SHA256 digest of the secret is stored.

    The public prefix (the characters after ``sk-``) finds the row; the digest is then compared in
    constant time. After a rotation the previous secret keeps working until
    ``previous_expires_at``.
    """

    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        related_name="keys",
        null=True,
        blank=True,
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, related_name="keys", null=True, blank=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        related_name="keys",
        null=True,
        blank=True,
    )
    name = models.CharField(max_length=200)

    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    pepper_id = models.PositiveSmallIntegerField()
    previous_prefix = models.CharField(max_length=16, unique=True, null=True, blank=True)
    previous_digest = models.CharField(max_length=64, blank=True)
    previous_pepper_id = models.PositiveSmallIntegerField(null=True, blank=True)
    previous_expires_at = models.DateTimeField(null=True, blank=True)

    # Public model names or model access group names; empty means every model.
    allowed_models = models.JSONField(
        "models",
        default=list,
        blank=True,
        help_text="Model names or access groups this key may use. Empty: every model (within its "
        "team's and organization's).",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    # {"images/generations": {"rpm": 5}, ...}: keys/limits.py
    endpoint_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per-endpoint limits, e.g. {"images/generations": {"rpm": 5}, '
        '"chat/completions": {"rpm": 100, "tpm": 20000}}.',
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        related_name="+",
        null=True,
        blank=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "team"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        if len(self.prefix) > PUBLIC_PREFIX_LENGTH:  # imported: the prefix is not in the secret
            return "sk-… (imported)"
        return f"sk-{self.prefix}…"


class KeyCacheInvalidation(models.Model):
    """A key change whose Redis key-cache entries may still be there: an outbox row, written in
    the change's own transaction and deleted once the entries are. While Redis is away the rows
    wait; `key_cache_invalidations_flush` (beat, and each worker before it trusts Redis again)
    deletes the entries they name, so a key revoked during an outage is never served from Redis
    once it is back."""

    prefix = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"key cache invalidation {self.prefix}"

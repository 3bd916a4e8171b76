from __future__ import annotations

from django.db import models

from tenants.models import Organization


def default_guardrail_modes() -> list[str]:
    return ["pre_call"]


class Credential(models.Model):
    """A provider credential the operator names once and grants to organizations.

    An organization's deployments may use it only when it is granted to that organization; shared
    deployments (the operator's) may use any. The secret is a reference (os.environ/NAME,
    file:///path, secret://...) or a value stored encrypted (ogem_site/crypto.py).
    """

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=300, blank=True)
    reference = models.CharField(
        max_length=300, blank=True, help_text="os.environ/NAME, file:///path or secret://..."
    )
    encrypted_value = models.TextField(blank=True, help_text="The secret, encrypted")
    organizations = models.ManyToManyField(
        "tenants.Organization",
        blank=True,
        related_name="granted_credentials",
        help_text="Organizations whose deployments may use this credential",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModelDeployment(models.Model):
    """One upstream behind a public model name. Several deployments of one name form a group."""

    model_name = models.CharField(max_length=200, db_index=True, help_text="Public model name")
    provider = models.CharField(max_length=50, help_text="Provider package, e.g. openai, mock")
    upstream_model = models.CharField(max_length=300, help_text="Model id sent upstream")
    api_base = models.URLField(max_length=500, blank=True)
    api_version = models.CharField(max_length=50, blank=True)
    # Where the upstream key comes from, one of: a reference (os.environ/NAME, file:///path or
    # secret://..., shared deployments only), a named credential granted to the organization, or
    # the key itself, stored encrypted in `encrypted_secrets` under "api_key".
    credential_ref = models.CharField(max_length=300, blank=True)
    credential = models.ForeignKey(
        Credential, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
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
    # The deployment's own api_key and secret params: name -> value encrypted (ogem_site.crypto).
    encrypted_secrets = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_name", "priority", "id"]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.provider}/{self.upstream_model}"


class GuardrailDefinition(models.Model):
    """A guardrail defined in admin rather than in the configuration file (docs/guardrails.md).

    Read on load and on reload only, like ModelDeployment rows, and merged with the file's
    `guardrails:`; a name the file defines wins. `options` are the kind's settings as the file
    writes them; secret ones (vendor keys) live encrypted in `encrypted_secrets`.
    """

    ACTIONS = [("block", "block"), ("mask", "mask"), ("warn", "warn")]

    name = models.SlugField(
        max_length=100, unique=True, help_text="The name tenants, requests and decisions use"
    )
    # One of gateway.config.types.GUARDRAIL_KINDS (the admin form offers them).
    kind = models.CharField(max_length=40)
    modes = models.JSONField(
        default=default_guardrail_modes,
        help_text='A list of pre_call, during_call, post_call, e.g. ["pre_call"]',
    )
    action = models.CharField(max_length=10, choices=ACTIONS, default="block")
    default_on = models.BooleanField(default=False, help_text="Runs on every request")
    enforced = models.BooleanField(default=False, help_text="With default_on: nobody turns it off")
    requestable = models.BooleanField(default=True, help_text="A request may ask for it by name")
    restore = models.BooleanField(default=True, help_text="Masked values come back in the answer")
    fail_open = models.BooleanField(
        default=False, help_text="A check that fails or times out lets the request through"
    )
    timeout = models.FloatField(default=5.0, help_text="Seconds a vendor check may take")
    model_groups = models.JSONField(
        default=list, blank=True, help_text="Model groups whose every request runs it"
    )
    options = models.JSONField(default=dict, blank=True, help_text="The kind's settings")
    # Secret options (api_key, aws_secret_access_key, ...): name -> value encrypted.
    encrypted_secrets = models.JSONField(default=dict, blank=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="guardrails",
        help_text="Empty: the operator's, for every organization",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StoredCompletion(models.Model):
    """A chat completion asked for with `store: true` (OpenAI's stored completions), kept for
    the caller's tenant: the request's messages, the answer as the client got it, its metadata.

    Written after the answer, off the request path (gateway/stored.py); a team's or an
    organization's deletion takes its stored completions with it, a key's leaves them to its team.
    """

    completion_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="stored_completions",
    )
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="stored_completions",
    )
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stored_completions",
    )
    # `model` is the answer's, `request_model` the public name the client asked for.
    model = models.CharField(max_length=200)
    request_model = models.CharField(max_length=200)
    created_at = models.DateTimeField(help_text="When the request arrived")
    metadata = models.JSONField(default=dict, blank=True)
    messages = models.JSONField(default=list, help_text="The request's messages")
    completion = models.JSONField(help_text="The chat.completion object the client received")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["organization", "team", "created_at"]),
            models.Index(fields=["key", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.completion_id


class SemanticCacheEntry(models.Model):
    """One answer of the response cache's semantic tier (gateway/semantic.py, docs/caching.md):
    the embedding of its prompt and the answer, durable so that every worker rebuilds its vector
    index from here on start and catches up by id.

    Written in batches off the request path; deleted when it expires (gateway.tasks), when its
    tenant scope is purged, or when its namespace holds more than `max_entries`.
    """

    # The vector index's label for it: chosen by the worker that answered, before the row exists,
    # so that the worker indexes it at once.
    label = models.BigIntegerField(unique=True)
    # No foreign key: a batch holds many tenants' rows, and a row outliving its organization is
    # only ever found under that organization's scope (ids are never reused).
    organization_id = models.BigIntegerField(null=True, blank=True)
    scope = models.CharField(max_length=64, help_text="o12, o12.t7, o12.k40 or master")
    namespace = models.CharField(max_length=64)
    # Endpoint, model group and every non-message parameter, hashed: only entries of the same
    # partition may answer a request.
    partition = models.CharField(max_length=40)
    model = models.CharField(max_length=200, help_text="The model group")
    vector = models.BinaryField(help_text="The prompt's embedding, float32 little-endian")
    # The stored entry as the exact cache keeps it (JSON: stored, expires, latency, response).
    entry = models.BinaryField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization_id", "scope"], name="gateway_sem_scope_idx"),
            models.Index(fields=["scope", "namespace", "id"], name="gateway_sem_space_idx"),
        ]

    def __str__(self) -> str:
        return f"semantic cache entry {self.label} ({self.scope}:{self.namespace})"


class RealtimeClientSecret(models.Model):
    """An ephemeral client secret for the Realtime API (`ek_...`), minted by a virtual key through
    `POST /v1/realtime/client_secrets` (or `/v1/realtime/sessions`) for a browser or a phone.

    Only its HMAC digest is kept (ogem_site/hashing.py), found by its public prefix. It is bound
    to the key that minted it (the session is that key's: its limits, budgets, allow-lists), to
    one model and to a session configuration, and refused once expired or once the key is revoked.
    """

    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    pepper_id = models.PositiveSmallIntegerField()
    key = models.ForeignKey(
        "keys.VirtualKey", on_delete=models.CASCADE, related_name="realtime_client_secrets"
    )
    model = models.CharField(max_length=200, help_text="The public model name it may connect to")
    session = models.JSONField(default=dict, blank=True, help_text="Applied when a session opens")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return f"ek_{self.prefix}…"


class RealtimeCall(models.Model):
    """A WebRTC Realtime call set up through Ogem (`POST /v1/realtime/calls`), kept while it may
    run: whose it is (its key, the master key's when none), its model and the deployment that
    answered, and the concurrent-session slots it holds (taken under `hold_id`, released when
    the call ends: hung up through Ogem, or seen ending on its sideband; else they expire).
    A sideband WebSocket (`/v1/realtime?call_id=`) joins it only with the same key."""

    call_id = models.CharField(max_length=128, unique=True)
    key = models.ForeignKey(
        "keys.VirtualKey", on_delete=models.CASCADE, null=True, related_name="realtime_calls"
    )
    model = models.CharField(max_length=200, help_text="The public model name")
    deployment_id = models.CharField(max_length=200)
    hold_id = models.CharField(max_length=64, help_text="The request id its slots were taken under")
    hold_bucket = models.BigIntegerField(default=0)
    hold_local = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        return self.call_id


class StoredResponse(models.Model):
    """A Responses API response (`/v1/responses`) kept for the caller's tenant.

    Served by Ogem over chat completions: the request's input items, the items inherited through
    `previous_response_id` (`history`) and the Response object. Passed through to OpenAI or Azure
    (`deployment_id` set): who owns it and which deployment holds it; the upstream keeps the rest.
    Nothing is kept for `store: false`. A team's or an organization's deletion takes its
    responses with it, a key's leaves them to its team.
    """

    response_id = models.CharField(max_length=100, unique=True)
    organization = models.ForeignKey(
        "tenants.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="stored_responses",
    )
    team = models.ForeignKey(
        "tenants.Team",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="stored_responses",
    )
    key = models.ForeignKey(
        "keys.VirtualKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stored_responses",
    )
    model = models.CharField(max_length=200, help_text="The model name the client asked for")
    status = models.CharField(max_length=20)
    background = models.BooleanField(default=False)
    deployment_id = models.CharField(
        max_length=300, blank=True, help_text="Passed through: the deployment that holds it"
    )
    previous_response_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(help_text="When the request arrived")
    updated_at = models.DateTimeField(auto_now=True)
    input_items = models.JSONField(default=list, help_text="The request's input items")
    history = models.JSONField(
        default=list, help_text="The items inherited through previous_response_id"
    )
    response = models.JSONField(default=dict, help_text="The Response object")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["organization", "team", "created_at"])]

    def __str__(self) -> str:
        return self.response_id


class ImportedObject(models.Model):
    """An Ogem object made from another gateway's database (``manage.py import_litellm``): the
    source's id of the row, the Ogem object's id, and a fingerprint of what was imported, so a
    rerun updates what changed and leaves the rest alone."""

    source = models.CharField(max_length=30)
    kind = models.CharField(max_length=30)
    # For a key: its lookup prefix (16 hex of LiteLLM's SHA-256), never the SHA-256 itself.
    external_id = models.CharField(max_length=255)
    object_id = models.BigIntegerField()
    fingerprint = models.CharField(max_length=64)
    imported_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "kind", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "kind", "external_id"], name="imported_object_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.kind} {self.external_id} -> {self.object_id}"


class ResponseCacheOrganization(Organization):
    """An organization as the response cache's admin page shows it (gateway/admin.py: its cache
    namespaces, and a purge); a proxy, no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "response cache"
        verbose_name_plural = "response cache"


class DebugCapture(models.Model):
    """A request and its answer captured for debugging (docs/debugging.md): the key's debug
    mode or an admin's `x-ogem-debug` header. Bodies as sent upstream (after guardrail masking)
    and as answered, credentials redacted, each bounded; deleted past `expires_at`.

    Written after the answer, off the request path (gateway/debugging.py). Tenant ids, not
    foreign keys: like the request log, a capture outlives nothing and never blocks a delete.
    """

    request_id = models.CharField(max_length=128, db_index=True)
    organization_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=16)  # "key" (its debug mode) or "header"
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    status_code = models.PositiveSmallIntegerField(default=0)
    stream = models.BooleanField(default=False)
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization_id", "created_at"])]

    def __str__(self) -> str:
        return self.request_id

"""What loading a configuration produces: deployments plus router and general settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.callbacks.settings import CallbackSettings
from providers.addresses import AddressPolicy
from providers.base import Deployment

# LiteLLM's routing strategy names; Ogem's router reads `strategy` and implements what it can.
ROUTING_STRATEGIES = frozenset(
    {
        "simple-shuffle",
        "least-busy",
        "usage-based-routing",
        "usage-based-routing-v2",
        "latency-based-routing",
        "cost-based-routing",
        "tag-based",
    }
)


@dataclass(frozen=True, slots=True)
class RouterSettings:
    strategy: str = "simple-shuffle"
    num_retries: int | None = None  # None: Ogem's default
    timeout: float | None = None  # seconds for a whole request, when a deployment sets none
    stream_timeout: float | None = None
    allowed_fails: int | None = None
    cooldown_time: float | None = None
    retry_after: float | None = None
    # model group -> groups to try, in order, when it fails (rate limit, 5xx, timeout)
    fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ... when the prompt is too long for the group's context window
    context_window_fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # ... when the upstream refuses the content
    content_policy_fallbacks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default_fallbacks: tuple[str, ...] = ()  # for every group without its own fallbacks
    model_group_alias: dict[str, str] = field(default_factory=dict)  # alias -> model group
    hidden_aliases: frozenset[str] = frozenset()  # aliases not listed by /v1/models
    group_strategy: dict[str, str] = field(default_factory=dict)  # model group -> strategy
    # model group -> ((other model group, percent of its traffic), ...): canary splits
    traffic_split: dict[str, tuple[tuple[str, float], ...]] = field(default_factory=dict)
    # model group -> (candidate model group, percent mirrored, budget cap in USD or None)
    shadow: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)
    # Requests wait up to queue_timeout seconds (0: off) when every deployment is cooling down.
    queue_timeout: float = 0.0
    queue_depth: int = 100  # waiters per model group and process; more are refused at once
    # LiteLLM's enable_pre_call_checks: skip deployments whose max_input_tokens the prompt exceeds
    pre_call_checks: bool = False


# Endpoints the response cache serves by default (docs/caching.md): the paths after /v1/.
CACHE_ENDPOINTS = ("chat/completions", "completions", "embeddings", "moderations", "rerank")
CACHE_SCOPES = ("organization", "team", "key")
# What a request is made of: never left out of a response cache key (`ignore_params`).
CACHE_KEY_REQUIRED = frozenset(
    {"model", "messages", "prompt", "input", "query", "documents", "system"}
)


@dataclass(frozen=True, slots=True)
class S3CacheSettings:
    """The response cache's object-store tier (L3): any S3-compatible bucket (AWS S3, MinIO, R2,
    ...); gateway/cache_s3.py serves it."""

    bucket: str
    prefix: str = ""  # put before every object key ("ogem/" keeps the cache in one folder)
    region: str | None = None
    endpoint_url: str | None = None  # None: AWS S3 itself
    # None: boto3's own credential chain (AWS_ACCESS_KEY_ID, an instance role, ...).
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    min_bytes: int = 64 * 1024  # answers this large or larger go to S3 (and not to Redis)
    timeout: float = 1.0  # seconds to connect and to read, each; one attempt, then a miss


# Endpoints the semantic tier serves by default: those whose prompt is text a model can embed.
SEMANTIC_ENDPOINTS = ("chat/completions", "completions")


@dataclass(frozen=True, slots=True)
class SemanticCacheSettings:
    """The response cache's semantic tier (`cache.semantic` in Ogem's format, `type:
    redis-semantic` in LiteLLM's); gateway/semantic.py serves it."""

    model: str  # the embedding model group, called through Ogem's own /v1 pipeline
    similarity_threshold: float = 0.9  # cosine similarity a stored prompt needs to answer
    endpoints: tuple[str, ...] = SEMANTIC_ENDPOINTS
    max_entries: int = 100_000  # entries kept per tenant scope and namespace (oldest go first)
    timeout: float = 2.0  # seconds the embedding call may take; then the request goes uncached
    # Vector index memory a process may hold (every partition); past it, new entries are kept in
    # the database but not indexed by this process until expiries make room.
    max_index_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """The exact response cache (`cache:` in Ogem's format, `litellm_settings.cache` and
    `cache_params` in LiteLLM's); gateway/cache.py serves it."""

    type: str = "redis"  # "redis" (L1 in process + L2 Redis) or "local" (L1 only)
    ttl: float = 3600.0  # seconds an answer is kept, unless a request says otherwise
    max_ttl: float = 86400.0  # the most a request's `cache.ttl` may ask for
    namespace: str = ""  # the default namespace, inside the tenant scope
    scope: str = "organization"  # who shares entries: organization, team or key
    default_on: bool = True  # False (LiteLLM's mode: default_off): only `cache.use-cache` reads
    endpoints: tuple[str, ...] = CACHE_ENDPOINTS
    local_max_bytes: int = 64 * 1024 * 1024  # the in-process tier's bound, per process
    charge_hits: bool = False  # whether a hit costs its original price against budgets
    s3: S3CacheSettings | None = None  # the object-store tier, for large answers
    # Body fields left out of the key (never CACHE_KEY_REQUIRED's); a model group's or an
    # owner's `ignore_params` replaces this list.
    ignore_params: tuple[str, ...] = ()
    # False: a sampled chat or text completion (temperature absent or above 0) bypasses.
    sampled: bool = True
    semantic: SemanticCacheSettings | None = None  # the semantic tier, after an exact miss


# The guardrail kinds this build runs (gateway/guardrails/checks.py builds each); `custom` is a
# class named by a dotted path.
GUARDRAIL_KINDS = (
    "pii",
    "secrets",
    "regex",
    "words",
    "topics",
    "json_schema",
    "custom",
    "lakera",  # Lakera Guard over HTTP
    "azure_text_moderation",  # Azure AI Content Safety's text analysis
    "azure_prompt_shield",  # Azure AI Content Safety's Prompt Shields
    "bedrock",  # AWS Bedrock Guardrails' ApplyGuardrail
    "openai_moderation",  # /v1/moderations, through a model group or an API
    "llm_judge",  # a configured chat model group with a rubric
)


@dataclass(frozen=True, slots=True)
class GuardrailSpec:
    """One guardrail of the configuration (`guardrails:` in both formats, docs/guardrails.md)."""

    name: str
    kind: str  # one of GUARDRAIL_KINDS
    modes: tuple[str, ...] = ("pre_call",)  # pre_call, during_call, post_call
    action: str = "block"  # block, mask or warn: what a finding does unless its category says
    default_on: bool = False  # runs on every request (unless a tenant switches it off)
    enforced: bool = False  # with default_on: no tenant can switch it off
    requestable: bool = True  # a request may ask for it by name (`guardrails` in the body)
    restore: bool = True  # masked values are put back in the answer the caller sees
    fail_open: bool = False  # a check that fails or times out lets the request through
    timeout: float = 5.0  # seconds a check may take
    # An admin-defined guardrail of one organization (gateway.GuardrailDefinition): only its
    # requests run it, by default_on, model group, tenant metadata or by name. None: everyone's.
    organization_id: int | None = None
    # Its organization's address policy, which its vendor checks connect under (None: anywhere).
    address_policy: AddressPolicy | None = field(default=None, compare=False, repr=False)
    # The kind's own settings (entities, patterns, words, topics, schema, path, ...).
    options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GuardrailSettings:
    """The configuration's guardrails by name (in file order), those on by default, and the
    model groups that always run some (a model entry's `guardrails`, a guardrail's `models`)."""

    guardrails: dict[str, GuardrailSpec] = field(default_factory=dict)
    default_on: tuple[str, ...] = ()
    model_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Those defined in admin (gateway.GuardrailDefinition); the others are the file's.
    from_database: frozenset[str] = frozenset()


ALERT_TYPES = ("error_rate", "latency", "deployment_down", "spend_anomaly")
ALERT_CHANNELS = ("slack", "webhook", "email", "pagerduty")


@dataclass(frozen=True, slots=True)
class AlertingSettings:
    """Alert rules and channels (`alerting:` in Ogem's format, `general_settings.alerting` in
    LiteLLM's); gateway/alerting.py evaluates them (docs/alerts.md). A destination left unset
    here comes from the environment (SLACK_WEBHOOK_URL, OGEM_ALERT_WEBHOOK_URL, ...)."""

    channels: tuple[str, ...] = ()
    alert_types: tuple[str, ...] = ALERT_TYPES
    window: float = 300.0  # seconds of request log the deployment rules look at
    min_requests: int = 10  # fewer requests in the window: no error-rate or latency alert
    error_rate_threshold: float = 0.5  # share of 5xx answers that fires
    latency_multiplier: float = 3.0  # p95 over this many times its baseline fires
    latency_threshold_ms: int | None = None  # or p95 over this (LiteLLM's alerting_threshold)
    latency_baseline_hours: float = 24.0  # the baseline: the p95 of this long before the window
    spend_multiplier: float = 3.0  # today's spend over this many times the trailing average
    spend_min_usd: float = 1.0  # ... and at least this much
    slack_webhook_url: str | None = field(default=None, repr=False)
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    emails: tuple[str, ...] = ()
    pagerduty_routing_key: str | None = field(default=None, repr=False)
    pagerduty_url: str | None = None


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """`tracing:` in Ogem's format (docs/tracing.md): OpenTelemetry traces of /v1 requests. What
    is empty comes from the standard OTEL_* variables."""

    enabled: bool = True
    endpoint: str = ""
    protocol: str = ""  # "http/protobuf" or "grpc"
    service_name: str = ""
    capture_content: bool | None = None
    sample_rate: float | None = None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    deployments: tuple[Deployment, ...] = ()
    router: RouterSettings = field(default_factory=RouterSettings)
    # drop_params, modify_params, max_parallel_requests (defaults of every deployment) and
    # global_max_parallel_requests (the whole proxy's cap).
    general: dict[str, Any] = field(default_factory=dict)
    cache: CacheSettings | None = None  # None: no response cache (the stage costs nothing)
    guardrails: GuardrailSettings | None = None  # None: no guardrails (the stage costs nothing)
    # None: no callbacks configured; team and key `logging` metadata still delivers.
    callbacks: CallbackSettings | None = None
    alerting: AlertingSettings | None = None  # None: no alert rules run
    tracing: TracingSettings | None = None  # None: the environment decides (gateway/tracing.py)
    source: str = ""  # a path, a URL, or "" for the built-in default
    format: str = "default"  # "ogem", "litellm" or "default"
    digest: str = ""  # sha256 of the source text
    includes: tuple[str, ...] = ()  # files named by LiteLLM's `include`, watched with the source
    environment: str = ""  # OGEM_ENV, which selected the overlays
    overlays: tuple[str, ...] = ()  # its overlay file (watched even before it exists)

    def model_groups(self) -> dict[str, tuple[Deployment, ...]]:
        groups: dict[str, list[Deployment]] = {}
        for deployment in self.deployments:
            groups.setdefault(deployment.model_name, []).append(deployment)
        return {name: tuple(items) for name, items in groups.items()}

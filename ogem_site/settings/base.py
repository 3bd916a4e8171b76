"""Settings for the embedded default and the base of every other environment.

Production differs from this only by environment variables (see ogem_site/settings/production.py
for the checks it adds).
"""

from __future__ import annotations

from decimal import Decimal

from ogem_site.env import (
    BASE_DIR,
    VAR_DIR,
    config_master_key,
    env_bool,
    env_collect_begin,
    env_collect_end,
    env_database,
    env_float,
    env_int,
    env_list,
    env_origins,
    env_require,
    env_str,
    persistent_secret,
)
from ogem_site.redis import redis_broker_url, redis_channel_layer, redis_target

env_collect_begin()

DEBUG = env_bool("DJANGO_DEBUG", default=False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY") or persistent_secret("secret_key", nbytes=48)

# The proxy admin's key. Generated once under var/ in the embedded default; production requires it.
OGEM_MASTER_KEY = env_str("OGEM_MASTER_KEY")
OGEM_MASTER_KEY_SOURCE = "OGEM_MASTER_KEY"
if not OGEM_MASTER_KEY:
    # A LiteLLM config.yaml's general_settings.master_key, when OGEM_MASTER_KEY is unset.
    OGEM_MASTER_KEY, OGEM_MASTER_KEY_SOURCE = config_master_key()
if not OGEM_MASTER_KEY:
    OGEM_MASTER_KEY = persistent_secret("master_key", nbytes=32, prefix="sk-master-")
    OGEM_MASTER_KEY_SOURCE = str(VAR_DIR / "master_key")

# Peppers for key digests: "ID:SECRET,ID:SECRET". New keys use the highest ID; old ones keep
# verifying with the pepper they were created under until rotated.
OGEM_KEY_PEPPERS = env_str("OGEM_KEY_PEPPERS")

# Keys that encrypt secrets stored in the database (ogem_site/crypto.py): the first encrypts, all
# decrypt. Generated once under var/ in the embedded default; production requires it.
OGEM_ENCRYPTION_KEYS = env_list("OGEM_ENCRYPTION_KEYS") or [
    persistent_secret("encryption_key", nbytes=32)
]

OGEM_CONFIG = env_str("OGEM_CONFIG")
OGEM_CONFIG_TOKEN = env_str("OGEM_CONFIG_TOKEN")
# The environment (staging, production, ...) whose overlay is merged over OGEM_CONFIG.
OGEM_ENV = env_str("OGEM_ENV")
# Hot reload takes a changed file once it has been left alone this long (not one caught mid-write),
# and refuses one that would drop all or most of the file's deployments unless this allows it.
OGEM_CONFIG_SETTLE_MS = env_int("OGEM_CONFIG_SETTLE_MS", 1000)
OGEM_CONFIG_ALLOW_SHRINK = env_bool("OGEM_CONFIG_ALLOW_SHRINK", default=False)
# When set, /metrics answers only scrapes sending `Authorization: Bearer <token>`.
OGEM_METRICS_TOKEN = env_str("OGEM_METRICS_TOKEN")
# ogem_tokens_total and ogem_spend_usd_total get a `key` label (the key's id) when this is on,
# for the first OGEM_METRICS_KEY_LABELS_MAX keys a worker sees; later keys count as "other".
OGEM_METRICS_KEY_LABELS = env_bool("OGEM_METRICS_KEY_LABELS", default=False)
OGEM_METRICS_KEY_LABELS_MAX = env_int("OGEM_METRICS_KEY_LABELS_MAX", 100)
# Seconds a value read from a secret manager (secret://...) is reused before it is read again.
OGEM_SECRET_TTL = env_int("OGEM_SECRET_TTL", 300)
OGEM_MAX_REQUEST_BYTES = env_int("OGEM_MAX_REQUEST_BYTES", 25 * 1024 * 1024)
# /v1 bounds bodies itself (413 request_too_large); Django's 2.5 MB default would cut it short.
DATA_UPLOAD_MAX_MEMORY_SIZE = OGEM_MAX_REQUEST_BYTES

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Sent on every page Django serves (admin, portal, API docs); /v1 answers JSON and sets none.
# Every script and style is a static file of ours: no inline code, no other host. `data:` images
# are the TOTP QR code and Swagger UI's icons. No form-action: SSO sign-in redirects to the IdP.
OGEM_CONTENT_SECURITY_POLICY = env_str(
    "OGEM_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'",
)
# Browser origins allowed to call /v1 (CORS), e.g. "https://app.example.com"; none by default.
OGEM_CORS_ORIGINS = env_origins("OGEM_CORS_ORIGINS")

INSTALLED_APPS = [
    "ogem_site.admin_config.OgemAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "allauth.mfa",
    "mozilla_django_oidc",
    "tenants",
    "keys",
    "billing",
    "gateway",
    "files",
    "providers",
    "batches",
    "vector_stores",
    "assistants",
    "fine_tuning",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ogem_site.middleware.content_security_policy",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "ogem_site.urls"
ASGI_APPLICATION = "ogem_site.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.portal.context_processors.sso",
            ],
        },
    },
]

DATABASES = {"default": env_database(VAR_DIR / "ogem.sqlite3")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    options = DATABASES["default"].setdefault("OPTIONS", {})
    # A database that does not answer fails a connection attempt after this many seconds.
    options.setdefault("connect_timeout", env_int("OGEM_DB_CONNECT_TIMEOUT", 5))
    # psycopg 3's pool: connections are reused across requests without CONN_MAX_AGE. A request
    # waits at most `timeout` seconds for one (then /v1 answers 503 database_unavailable).
    options["pool"] = {
        "min_size": env_int("OGEM_DB_POOL_MIN", 1),
        "max_size": env_int("OGEM_DB_POOL_MAX", 10),
        "timeout": env_int("OGEM_DB_POOL_TIMEOUT", 5),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# The writes /v1 makes from the event loop before answering (a stored Response, ogem_site/pg.py)
# commit without waiting for PostgreSQL's WAL flush: still read at once by every worker, but a
# crash of PostgreSQL itself (not of a worker) may lose the last fraction of a second of them.
OGEM_DB_ASYNC_COMMIT = env_bool("OGEM_DB_ASYNC_COMMIT", False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenants.User"

REDIS_URL = env_str("REDIS_URL")
# The first segment of every Redis key, stream and channel this installation writes (Django's
# cache, governance, the key cache, usage, routing, Channels, Celery): installations sharing one
# Redis need different prefixes. ogem_site.redis.redis_key names Ogem's own keys.
OGEM_CACHE_PREFIX = env_str("OGEM_CACHE_PREFIX", "ogem")
# Every Redis client (ogem_site/redis.py, docs/redis.md): seconds to connect, and to wait for a
# reply, before the caller's fallback takes over.
OGEM_REDIS_CONNECT_TIMEOUT = env_float("OGEM_REDIS_CONNECT_TIMEOUT", 0.25)
OGEM_REDIS_TIMEOUT = env_float("OGEM_REDIS_TIMEOUT", 0.5)
# While Redis is away, a background probe asks it this often whether it is back.
OGEM_REDIS_PROBE_INTERVAL = env_float("OGEM_REDIS_PROBE_INTERVAL", 1.0)
# Rate limits and budgets while Redis is away: `open` counts them per process and serves,
# `closed` answers 503. OGEM_GOVERNANCE_FAIL_OPEN is the older name of the same choice.
_LEGACY_FAIL_OPEN = env_str("OGEM_GOVERNANCE_FAIL_OPEN")
OGEM_REDIS_FAILURE_POLICY = env_str(
    "OGEM_REDIS_FAILURE_POLICY",
    ("open" if env_bool("OGEM_GOVERNANCE_FAIL_OPEN") else "closed")
    if _LEGACY_FAIL_OPEN
    else "open",
)
env_require(
    OGEM_REDIS_FAILURE_POLICY in ("open", "closed"),
    "OGEM_REDIS_FAILURE_POLICY must be `open` or `closed`",
)
# Usage events that could not reach Redis wait here, one append-only file per worker process,
# until Redis answers again (gateway/spool.py). A volume that outlives the container, in Docker.
OGEM_USAGE_SPOOL_DIR = env_str("OGEM_USAGE_SPOOL_DIR", str(VAR_DIR / "usage-spool"))
_REDIS_TARGET = None
if REDIS_URL:
    try:
        _REDIS_TARGET = redis_target(REDIS_URL)
    except ValueError as exc:
        env_require(False, f"REDIS_URL: {exc}")
if _REDIS_TARGET is not None:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": OGEM_CACHE_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "ogem_site.redis.OgemCacheClient",
                # A cache that cannot answer is a miss (sessions fall back to the database,
                # allauth's rate limits let the attempt through), logged, never a 500.
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    # Portal and admin sessions are read from Redis and written through to the database.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CHANNEL_LAYERS = {"default": redis_channel_layer(_REDIS_TARGET, prefix=OGEM_CACHE_PREFIX)}
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
    if not CELERY_BROKER_URL:
        try:
            CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = redis_broker_url(_REDIS_TARGET)
        except ValueError as exc:
            env_require(False, f"CELERY_BROKER_URL: {exc}")
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        # Queues, bindings and the fanout channels of kombu's Redis transport.
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{OGEM_CACHE_PREFIX}:celery:"
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "ogem",
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
    CELERY_TASK_ALWAYS_EAGER = True

CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE: dict = {
    # Usage events: Redis stream -> billing.RequestLog, in batches.
    "usage-drain": {"task": "billing.tasks.usage_drain", "schedule": 2.0},
    # Budget periods: persist live spend, reset the periods that ended.
    "budget-periods": {"task": "billing.tasks.budget_periods_reset", "schedule": 60.0},
    # Daily rollups of closed days (billing/rollups.py); idempotent, so hourly is cheap and safe.
    "usage-rollups": {"task": "billing.tasks.usage_rollups", "schedule": 3600.0},
    # Request log: next months' partitions, and whole partitions dropped past retention.
    "request-log-partitions": {"task": "billing.tasks.request_log_partitions", "schedule": 86400.0},
    # Routing: probe deployments whose circuit is open, so they recover without live traffic.
    "routing-health-check": {"task": "gateway.tasks.routing_health_check", "schedule": 15.0},
    # Key changes whose Redis key-cache entries could not be deleted (Redis was away).
    "key-cache-invalidations": {
        "task": "keys.tasks.key_cache_invalidations_flush",
        "schedule": 10.0,
    },
    # Usage spooled by web workers that died during a Redis outage, on this host (docs/redis.md).
    "usage-spool-replay": {"task": "gateway.tasks.usage_spool_replay", "schedule": 30.0},
    # The response cache's semantic tier: expired entries, and namespaces past their bound.
    "semantic-cache-expire": {"task": "gateway.tasks.semantic_cache_expire", "schedule": 300.0},
    # Files past their expires_at and uploads past theirs: rows and stored contents removed.
    "files-expired-purge": {"task": "files.tasks.files_expired_purge", "schedule": 300.0},
    # Batches whose worker died (their hold lapsed) are resumed; those past their window expire.
    "batches-sweep": {"task": "batches.tasks.batches_sweep", "schedule": 15.0},
    "assistants-runs-sweep": {"task": "assistants.tasks.runs_sweep", "schedule": 30.0},
    # Alert rules: open and resolve incidents, send what is pending (gateway/alerting.py).
    "alerts-evaluate": {"task": "gateway.tasks.alerts_evaluate", "schedule": 60.0},
    # Request debugging: captures past their retention (gateway/debugging.py).
    "debug-captures-purge": {"task": "gateway.tasks.debug_captures_purge", "schedule": 300.0},
    # Fine-tuning jobs not ended: their status, events and checkpoints from the provider.
    "fine-tuning-poll": {
        "task": "fine_tuning.tasks.fine_tuning_jobs_poll",
        "schedule": float(env_int("OGEM_FINE_TUNING_POLL_SECONDS", 30)),
    },
}

# Soft-budget alerts (billing/alerts.py): a signed webhook and/or email, once per budget period.
OGEM_ALERT_WEBHOOK_URL = env_str("OGEM_ALERT_WEBHOOK_URL")
OGEM_ALERT_WEBHOOK_SECRET = env_str("OGEM_ALERT_WEBHOOK_SECRET")
OGEM_ALERT_EMAILS = env_list("OGEM_ALERT_EMAILS", [])
# Alert rules (gateway/alerting.py, docs/alerts.md): the destinations a configuration's
# `alerting` section leaves unset. SLACK_WEBHOOK_URL and PAGERDUTY_API_KEY are LiteLLM's names.
OGEM_ALERT_SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL")
OGEM_ALERT_PAGERDUTY_ROUTING_KEY = env_str("PAGERDUTY_ROUTING_KEY") or env_str("PAGERDUTY_API_KEY")
OGEM_ALERT_PAGERDUTY_URL = env_str("OGEM_PAGERDUTY_URL", "https://events.pagerduty.com")
# Seconds between evaluations when there is no Celery beat (the embedded default).
OGEM_ALERT_INTERVAL = env_int("OGEM_ALERT_INTERVAL", 60)

# Request debugging (gateway/debugging.py, docs/debugging.md): hours a capture is kept, and the
# most bytes of a request or response body it keeps.
OGEM_DEBUG_RETENTION_HOURS = env_int("OGEM_DEBUG_RETENTION_HOURS", 24)
OGEM_DEBUG_MAX_BYTES = env_int("OGEM_DEBUG_MAX_BYTES", 256 * 1024)

# A UTC day is rolled up once it ended this many minutes ago (late usage lands first).
OGEM_ROLLUP_GRACE_MINUTES = env_int("OGEM_ROLLUP_GRACE_MINUTES", 30)
# Days of request log kept on PostgreSQL (whole monthly partitions are dropped); 0 keeps all.
OGEM_LOG_RETENTION_DAYS = env_int("OGEM_LOG_RETENTION_DAYS", 0)

# The client of upstream calls: "lean" (providers/http11.py; proxies and multipart uploads still
# go through aiohttp) or "aiohttp" for every call.
OGEM_UPSTREAM_CLIENT = env_str("OGEM_UPSTREAM_CLIENT", "lean")
env_require(
    OGEM_UPSTREAM_CLIENT in ("lean", "aiohttp"), "OGEM_UPSTREAM_CLIENT must be `lean` or `aiohttp`"
)

# Governance (gateway/governance.py, gateway/limits.py, billing/pricing.py).
OGEM_GOVERNANCE_ENABLED = env_bool("OGEM_GOVERNANCE_ENABLED", default=True)
# Seconds the in-process caches of budgets/limits and of ModelPrice overrides are trusted.
OGEM_GOVERNANCE_SNAPSHOT_TTL = env_int("OGEM_GOVERNANCE_SNAPSHOT_TTL", 10)
OGEM_PRICE_OVERRIDE_TTL = env_int("OGEM_PRICE_OVERRIDE_TTL", 30)
# Output tokens reserved for budgets when neither the request nor the price table bounds them.
OGEM_BUDGET_DEFAULT_MAX_OUTPUT = env_int("OGEM_BUDGET_DEFAULT_MAX_OUTPUT", 4096)
# Output tokens counted against TPM at admission when the request sets no max_tokens.
OGEM_TPM_OUTPUT_RESERVE = env_int("OGEM_TPM_OUTPUT_RESERVE", 1024)
# Seconds of the sliding window a deployment's own rpm/tpm count in (gateway/capacity.py);
# 60 makes them per minute, as configured; tests shorten it.
OGEM_DEPLOYMENT_LIMIT_WINDOW = env_int("OGEM_DEPLOYMENT_LIMIT_WINDOW", 60)
# A parallel-request slot not released by then frees itself, whatever its worker's lease says.
OGEM_PARALLEL_SLOT_TTL = env_int("OGEM_PARALLEL_SLOT_TTL", 900)
# The Realtime API (/v1/realtime, docs/realtime.md): a session with no frame either way for
# IDLE seconds, or open for MAX_SECONDS, is closed; a client frame over MAX_MESSAGE_BYTES is
# refused with an `error` event; an upstream that does not open within CONNECT_TIMEOUT seconds
# is failed over; a response in progress when the client leaves is given DRAIN seconds to end
# (cancelled) so that its real usage is recorded; client secrets last SECRET_TTL seconds unless
# the request asks otherwise (10 to 7200).
OGEM_REALTIME_IDLE_TIMEOUT = env_int("OGEM_REALTIME_IDLE_TIMEOUT", 600)
OGEM_REALTIME_MAX_SECONDS = env_int("OGEM_REALTIME_MAX_SECONDS", 3600)
OGEM_REALTIME_MAX_MESSAGE_BYTES = env_int("OGEM_REALTIME_MAX_MESSAGE_BYTES", 15 * 1024 * 1024)
OGEM_REALTIME_CONNECT_TIMEOUT = env_float("OGEM_REALTIME_CONNECT_TIMEOUT", 10.0)
OGEM_REALTIME_DRAIN = env_float("OGEM_REALTIME_DRAIN", 5.0)
OGEM_REALTIME_SECRET_TTL = env_int("OGEM_REALTIME_SECRET_TTL", 600)
# Seconds a web worker's lease on its parallel slots outlives the worker (gateway/leases.py): a
# SIGKILLed worker's slots are free again this long after its death. Refreshed every TTL / 2.5.
OGEM_WORKER_LEASE_TTL = env_int("OGEM_WORKER_LEASE_TTL", 5)
# Connections of the /v1 asyncio Redis pool of one process (callers wait beyond it).
OGEM_REDIS_MAX_CONNECTIONS = env_int("OGEM_REDIS_MAX_CONNECTIONS", 200)
# The usage stream's name under OGEM_CACHE_PREFIX (billing.usage.usage_stream_key).
OGEM_USAGE_STREAM = env_str("OGEM_USAGE_STREAM", "usage")
# 0: the usage stream is never trimmed; the drain deletes what it has written. A cap (approximate,
# Redis's MAXLEN ~) drops the oldest undrained usage once a stopped drain lets the stream reach it.
OGEM_USAGE_STREAM_MAXLEN = env_int("OGEM_USAGE_STREAM_MAXLEN", 0)
OGEM_USAGE_BATCH_SIZE = env_int("OGEM_USAGE_BATCH_SIZE", 500)
# Without Redis, the web process writes its buffered usage itself, in the background.
OGEM_USAGE_AUTOFLUSH = env_bool("OGEM_USAGE_AUTOFLUSH", default=True)
# Pending usage entries idle this long belong to a dead drain consumer and are claimed.
OGEM_USAGE_CLAIM_IDLE_MS = env_int("OGEM_USAGE_CLAIM_IDLE_MS", 60_000)

# Batches run by Ogem (docs/batches.md). The cost of a batch line is its price times this factor.
OGEM_BATCH_PRICE_FACTOR = Decimal(str(env_float("OGEM_BATCH_PRICE_FACTOR", 0.5)))
env_require(OGEM_BATCH_PRICE_FACTOR >= 0, "OGEM_BATCH_PRICE_FACTOR must be 0 or more")
# Lines of one batch in flight at once, and batches of one organization running at once.
OGEM_BATCH_CONCURRENCY = env_int("OGEM_BATCH_CONCURRENCY", 32)
OGEM_BATCH_TENANT_RUNNING = env_int("OGEM_BATCH_TENANT_RUNNING", 2)
env_require(
    OGEM_BATCH_CONCURRENCY >= 1 and OGEM_BATCH_TENANT_RUNNING >= 1,
    "OGEM_BATCH_CONCURRENCY and OGEM_BATCH_TENANT_RUNNING must be 1 or more",
)
# Batches an organization (or a key outside one) may have open (not yet ended); one more is 429.
OGEM_BATCH_OPEN_LIMIT = env_int("OGEM_BATCH_OPEN_LIMIT", 20)
# The queue priority of batch lines (gateway/queueing.py: lower first; live traffic's default 100).
OGEM_BATCH_QUEUE_PRIORITY = env_int("OGEM_BATCH_QUEUE_PRIORITY", 1000)
# Seconds a worker's hold on a running batch lasts unless renewed (every third of it); a batch
# whose worker died is resumed by another once it lapsed (beat's batch sweep).
OGEM_BATCH_LEASE_SECONDS = env_int("OGEM_BATCH_LEASE_SECONDS", 60)
# Batch lines yield the CPU to live traffic (batches/cpu_yield.py): while other processes keep
# more than this share (0 to 1) of the batch worker's CPUs busy, its lines start only one every
# OGEM_BATCH_YIELD_PACE seconds. `off` (or 0): lines never yield.
_BATCH_YIELD_CPU = env_str("OGEM_BATCH_YIELD_CPU", "0.5").strip().lower()
OGEM_BATCH_YIELD_CPU = 0.0 if _BATCH_YIELD_CPU == "off" else env_float("OGEM_BATCH_YIELD_CPU", 0.5)
env_require(
    0 <= OGEM_BATCH_YIELD_CPU <= 1, "OGEM_BATCH_YIELD_CPU must be `off` or a share from 0 to 1"
)
OGEM_BATCH_YIELD_PACE = env_float("OGEM_BATCH_YIELD_PACE", 0.5)
env_require(OGEM_BATCH_YIELD_PACE > 0, "OGEM_BATCH_YIELD_PACE must be more than 0 seconds")
# Where batches run: `celery` (a worker, with a broker) or `thread` (a thread of the process that
# created the batch: the embedded default, whose Celery tasks are eager).
OGEM_BATCH_RUNNER = env_str("OGEM_BATCH_RUNNER", "celery" if REDIS_URL else "thread")
env_require(
    OGEM_BATCH_RUNNER in ("celery", "thread"), "OGEM_BATCH_RUNNER must be `celery` or `thread`"
)
# The CPU priority of Celery's workers (ogem_site/cpu_priority.py): `idle` runs background work
# (batch lines among it) only on CPU time the web workers leave unused.
OGEM_CELERY_CPU_PRIORITY = env_str("OGEM_CELERY_CPU_PRIORITY", "normal")
env_require(
    OGEM_CELERY_CPU_PRIORITY in ("normal", "idle"),
    "OGEM_CELERY_CPU_PRIORITY must be `normal` or `idle`",
)
# The CPU priority of each web worker's helper processes, tracing's exporter and the callbacks'
# delivery (gateway/child_pipe.py): `idle` (SCHED_IDLE) sends telemetry only on CPU time that
# serving /v1 leaves unused, so that it never slows /v1; a machine that never has any lets their
# bounded queues fill and drop (counted). `normal`: they compete with the web workers as equals.
OGEM_TELEMETRY_CPU_PRIORITY = env_str("OGEM_TELEMETRY_CPU_PRIORITY", "idle")
env_require(
    OGEM_TELEMETRY_CPU_PRIORITY in ("normal", "idle"),
    "OGEM_TELEMETRY_CPU_PRIORITY must be `normal` or `idle`",
)
# Fine-tuning (docs/fine-tuning.md): with no beat to poll the providers (the embedded default),
# a job not ended is synced with its provider when a client looks at it.
OGEM_FINE_TUNING_SYNC_ON_READ = env_bool("OGEM_FINE_TUNING_SYNC_ON_READ", not REDIS_URL)

# Assistants runs (docs/assistants.md): seconds a run may take from creation, and again from each
# wait for tool outputs, before it expires; seconds a worker's hold on a run lasts unless renewed
# (before each model call), after which another worker resumes it.
OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS = env_int("OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS", 600)
OGEM_ASSISTANTS_RUN_LEASE_SECONDS = env_int("OGEM_ASSISTANTS_RUN_LEASE_SECONDS", 300)
# What one tenant (an organization; a key without one) may store in the Assistants API:
# assistants, threads and messages together (docs/assistants.md#storage-bound).
OGEM_ASSISTANTS_MAX_OBJECTS = env_int("OGEM_ASSISTANTS_MAX_OBJECTS", 1_000_000)
env_require(OGEM_ASSISTANTS_MAX_OBJECTS >= 0, "OGEM_ASSISTANTS_MAX_OBJECTS must be 0 or more")
env_require(
    OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS >= 1 and OGEM_ASSISTANTS_RUN_LEASE_SECONDS >= 1,
    "OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS and OGEM_ASSISTANTS_RUN_LEASE_SECONDS must be 1 or more",
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

SITE_ID = 1
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email", "username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
LOGIN_URL = "/accounts/login/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"

# Portal sign-in (tenants/portal/). The instance-wide OpenID Connect provider; its redirect URI is
# <site>/accounts/oidc/sso/login/callback/ (printed by `make run`).
OGEM_OIDC_ISSUER = env_str("OGEM_OIDC_ISSUER")
OGEM_OIDC_CLIENT_ID = env_str("OGEM_OIDC_CLIENT_ID")
OGEM_OIDC_CLIENT_SECRET = env_str("OGEM_OIDC_CLIENT_SECRET")
OGEM_OIDC_NAME = env_str("OGEM_OIDC_NAME", "Single sign-on")
OGEM_OIDC_PROVIDER_ID = "sso"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": (
            [
                {
                    "provider_id": OGEM_OIDC_PROVIDER_ID,
                    "name": OGEM_OIDC_NAME,
                    "client_id": OGEM_OIDC_CLIENT_ID,
                    "secret": OGEM_OIDC_CLIENT_SECRET,
                    "settings": {"server_url": OGEM_OIDC_ISSUER},
                }
            ]
            if OGEM_OIDC_ISSUER and OGEM_OIDC_CLIENT_ID
            else []
        ),
    }
}
# Identity provider bearer tokens on /api/v1 (docs/sso.md): mozilla-django-oidc's DRF class,
# configured from the OGEM_OIDC_* variables above and in tenants/oidc.py. Endpoints left empty are
# read from the issuer's discovery document; browser sign-in is allauth's, so no code is
# exchanged here (no token endpoint) and no nonce of ours is ever in a token.
OGEM_OIDC_OPAQUE_TOKENS = env_bool("OGEM_OIDC_OPAQUE_TOKENS", default=False)
OIDC_DRF_AUTH_BACKEND = "tenants.authentication.OIDCBackend"
OIDC_RP_CLIENT_ID = OGEM_OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OGEM_OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = "RS256"  # RS256 or ES256, as each token's key says (tenants/authentication.py)
OIDC_OP_JWKS_ENDPOINT = env_str("OGEM_OIDC_JWKS_URL")
OIDC_OP_USER_ENDPOINT = ""
OIDC_OP_TOKEN_ENDPOINT = ""
OIDC_USE_NONCE = False
OIDC_CREATE_USER = False
OIDC_TIMEOUT = 5
# Self-service sign-up with a password (off: accounts come from admin, SCIM or SSO).
OGEM_PORTAL_SIGNUP = env_bool("OGEM_PORTAL_SIGNUP", default=False)
ACCOUNT_ADAPTER = "tenants.portal.adapters.PortalAccountAdapter"
SOCIALACCOUNT_ADAPTER = "tenants.portal.adapters.PortalSocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_STORE_TOKENS = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("OGEM_MFA_ISSUER", "Ogem")
# One 30-second step either side absorbs phone clock drift; a used code is refused anyway.
MFA_TOTP_TOLERANCE = 1
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# /v1/files and /v1/uploads (docs/files.md): where file contents are kept. "local": a directory
# (OGEM_FILES_DIR, default var/files); "s3": a bucket through django-storages, with AWS's own
# credential chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, an instance role, ...).
OGEM_FILES_STORAGE = env_str("OGEM_FILES_STORAGE", "local")
env_require(OGEM_FILES_STORAGE in ("local", "s3"), "OGEM_FILES_STORAGE must be `local` or `s3`")
OGEM_FILES_DIR = env_str("OGEM_FILES_DIR", str(VAR_DIR / "files"))
OGEM_FILES_S3_BUCKET = env_str("OGEM_FILES_S3_BUCKET")
env_require(
    OGEM_FILES_STORAGE != "s3" or bool(OGEM_FILES_S3_BUCKET),
    "OGEM_FILES_S3_BUCKET is required when OGEM_FILES_STORAGE=s3",
)


def _s3_client_config() -> object:
    # Imported only with OGEM_FILES_STORAGE=s3: botocore costs every other process its start-up.
    from botocore.config import Config

    return Config(
        connect_timeout=env_float("OGEM_FILES_S3_CONNECT_TIMEOUT", 5.0),
        read_timeout=env_float("OGEM_FILES_S3_READ_TIMEOUT", 30.0),
        retries={"max_attempts": 2, "mode": "standard"},
    )


_FILES_STORAGE = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": OGEM_FILES_S3_BUCKET,
            "location": env_str("OGEM_FILES_S3_PREFIX", "ogem-files"),
            "region_name": env_str("OGEM_FILES_S3_REGION") or None,
            "endpoint_url": env_str("OGEM_FILES_S3_ENDPOINT_URL") or None,
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": False,
            # A bucket that is away fails a request within seconds (503), not botocore's minute.
            "client_config": _s3_client_config(),
        },
    }
    if OGEM_FILES_STORAGE == "s3"
    else {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": OGEM_FILES_DIR, "file_permissions_mode": 0o600},
    }
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "files": _FILES_STORAGE,
}
# The largest file per purpose, in bytes (OpenAI's limits: 512 MB a file, 200 MB a batch input);
# OGEM_FILES_MAX_BYTES sets every purpose's, OGEM_FILES_MAX_BYTES_<PURPOSE> one purpose's
# (`FINE_TUNE` for fine-tune). A /v1/files body may be this big, past OGEM_MAX_REQUEST_BYTES.
OGEM_FILES_MAX_BYTES_DEFAULT = env_int("OGEM_FILES_MAX_BYTES", 512 * 1024 * 1024)
OGEM_FILES_MAX_BYTES = {
    purpose: env_int(
        f"OGEM_FILES_MAX_BYTES_{purpose.upper().replace('-', '_')}",
        min(OGEM_FILES_MAX_BYTES_DEFAULT, 200 * 1024 * 1024)
        if purpose == "batch"
        else OGEM_FILES_MAX_BYTES_DEFAULT,
    )
    for purpose in ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
}
# One part of a /v1/uploads upload (OpenAI: 64 MB), and a whole upload (OpenAI: 8 GB).
OGEM_UPLOAD_PART_MAX_BYTES = env_int("OGEM_UPLOAD_PART_MAX_BYTES", 64 * 1024 * 1024)
OGEM_UPLOAD_MAX_BYTES = env_int("OGEM_UPLOAD_MAX_BYTES", 8 * 1024 * 1024 * 1024)
# A batch input file may name more than one model (Ogem runs such a batch itself); off, as OpenAI
# and the providers' own batch APIs want one model a file.
OGEM_FILES_BATCH_MIXED_MODELS = env_bool("OGEM_FILES_BATCH_MIXED_MODELS", default=False)

# Vector stores (docs/vector-stores.md): where a new store's vectors go (`builtin`: the database
# and an in-process index; `chroma`: a Chroma server at OGEM_VECTOR_STORES_CHROMA_URL), the model
# group that embeds chunks and queries, and what one tenant (organization) may hold, in bytes.
OGEM_VECTOR_STORES_BACKEND = env_str("OGEM_VECTOR_STORES_BACKEND", "builtin")
env_require(
    OGEM_VECTOR_STORES_BACKEND in ("builtin", "chroma", "openai"),
    "OGEM_VECTOR_STORES_BACKEND must be `builtin`, `chroma` or `openai`",
)
# `openai`: stores passed through to the account of this model group's OpenAI or Azure OpenAI
# deployment (its first by priority).
OGEM_VECTOR_STORES_OPENAI_MODEL = env_str("OGEM_VECTOR_STORES_OPENAI_MODEL", "")
env_require(
    OGEM_VECTOR_STORES_BACKEND != "openai" or bool(OGEM_VECTOR_STORES_OPENAI_MODEL),
    "OGEM_VECTOR_STORES_BACKEND=openai needs OGEM_VECTOR_STORES_OPENAI_MODEL (a model group)",
)
OGEM_VECTOR_STORES_CHROMA_URL = env_str("OGEM_VECTOR_STORES_CHROMA_URL", "http://127.0.0.1:8000")
OGEM_VECTOR_STORES_EMBEDDING_MODEL = env_str("OGEM_VECTOR_STORES_EMBEDDING_MODEL", "local-embed")
OGEM_VECTOR_STORES_MAX_BYTES = env_int("OGEM_VECTOR_STORES_MAX_BYTES", 1024 * 1024 * 1024)
env_require(OGEM_VECTOR_STORES_MAX_BYTES >= 0, "OGEM_VECTOR_STORES_MAX_BYTES must be 0 or more")

# Seconds `manage.py serve` lets open requests, streams and Celery tasks finish after SIGTERM or
# SIGINT before it kills what is left; everything is gone 5 s later at most (docs/deploy.md).
OGEM_SHUTDOWN_GRACE = env_int("OGEM_SHUTDOWN_GRACE", 30)
env_require(OGEM_SHUTDOWN_GRACE >= 0, "OGEM_SHUTDOWN_GRACE must be 0 or more seconds")

# Callbacks (docs/callbacks.md): a team's or key's `logging` metadata may name its own platform
# URLs; those reaching private or loopback addresses are refused unless this allows them.
OGEM_CALLBACKS_ALLOW_PRIVATE_URLS = env_bool("OGEM_CALLBACKS_ALLOW_PRIVATE_URLS", default=False)
# Seconds a stopping process spends delivering the callback events it still holds.
OGEM_CALLBACKS_FLUSH_SECONDS = env_int("OGEM_CALLBACKS_FLUSH_SECONDS", 5)
# Seconds before that during which /health/ready answers 503 and Ogem still serves, so that a load
# balancer stops routing to it before the port closes (rolling deploys; docs/deploy.md).
OGEM_SHUTDOWN_DELAY = env_int("OGEM_SHUTDOWN_DELAY", 0)
env_require(OGEM_SHUTDOWN_DELAY >= 0, "OGEM_SHUTDOWN_DELAY must be 0 or more seconds")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "keys.authentication.ManagementKeyAuthentication",
        "tenants.authentication.OIDCAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ogem management API",
    "DESCRIPTION": "Organizations, teams, users, virtual keys, budgets, models and spend.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema is public: it describes the API's shape, the same for every caller, and holds no
    # tenant data (docs/deploy.md). Swagger UI is served from our static files, never a CDN, and
    # its init script is a separate file, so the Content-Security-Policy needs no inline script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "PREPROCESSING_HOOKS": ["ogem_site.api_urls.management_endpoints_only"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("OGEM_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

env_collect_end(module=__name__)

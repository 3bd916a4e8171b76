"""The exact response cache: the **cache** stage of /v1 (docs/caching.md).

`gateway.relay.relay` runs it when the configuration has a cache (`config_current().cache`; when
it has none, that attribute is all the stage costs): after **route** knows the model group's
deployments and before `resilience_run`, so that a hit takes no deployment slot and makes no
upstream call. Admission still runs (a hit counts against request rate limits) and **account**
still settles it, at no cost unless `charge_hits`.

- The key: the tenant scope (organization, team or key; never shared across organizations), the
  namespace, the endpoint, the model group and every field of the body that can change the
  answer, in a canonical form (orjson, sorted keys) hashed with BLAKE2b. `user`, `stream`,
  `stream_options`, `metadata`, `cache` and the `ignore_params` that apply are left out, so a
  stream and a plain request share their entry. The name is `redis_key`'s (one key per entry:
  Cluster-safe). `sampled: false` keeps sampled completions out (bypass).
- Up to three tiers, read through in order with promotion to L1: L1 in this process
  (`BytesLRU`, bounded by bytes), L2 Redis (any REDIS_URL) and, when configured, L3 an
  S3-compatible bucket (gateway/cache_s3.py) that takes the answers of `s3.min_bytes` or more
  instead of Redis. A failing or absent tier makes a miss, never an error.
- Controls: the body's `cache` object (LiteLLM's `no-cache`, `no-store`, `ttl`, `s-maxage`,
  `namespace`, `use-cache`), `Cache-Control` (`no-cache`, `no-store`, `max-age`), the `cache`
  object of key, team and organization metadata, and the model group's `model_info.cache`; the
  settings that do not depend on the request are kept per caller and group (`_Policy`), since a
  miss must cost within a few percent of no cache (docs/benchmark.md).
- Stored: complete answers only (a stream is assembled as it passes), never errors, refusals
  (`finish_reason: content_filter`) or cut streams.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, fields
from decimal import Decimal
from hashlib import blake2b
from typing import Any, TypeVar

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from billing.pricing import cost_from_price, deployment_price
from gateway.body import Inbound
from gateway.cache_s3 import s3_get, s3_put
from gateway.config.cache import cache_setting_valid
from gateway.config.types import CacheSettings, S3CacheSettings
from gateway.context import Caller, RequestContext, Usage
from gateway.errors import InvalidRequestError
from gateway.responses import headers_apply, json_bytes_response, json_response, overhead_ms
from gateway.streaming import DONE, usage_block, usage_fill
from ogem_site.broadcast import RESPONSE_CACHE, BroadcastTopic, broadcast_topic_register
from ogem_site.caching import BytesLRU
from ogem_site.hot_settings import hot_settings
from ogem_site.metrics import (
    cache_redis_error_record,
    cache_request_counter,
    cache_request_record,
    cache_saved_counters,
    cache_saved_record,
)
from ogem_site.redis import (
    redis_client,
    redis_failed,
    redis_key,
    redis_lean,
    redis_outage,
    redis_outage_watch,
)
from ogem_site.redis_pipeline import framed
from providers.base import Deployment, Endpoint

logger = logging.getLogger(__name__)
T = TypeVar("T")

HIT, MISS, BYPASS, ERROR = "hit", "miss", "bypass", "error"
SEMANTIC_HIT = "semantic-hit"  # answered by the semantic tier (gateway/semantic.py)
# Body fields that never change the answer (or are Ogem's own): not part of the key.
NOT_IN_KEY = frozenset({"user", "stream", "stream_options", "metadata", "cache"})
_CONTROLS = frozenset({"no-cache", "no-store", "ttl", "s-maxage", "namespace", "use-cache"})
_FLAGS = ("no-cache", "no-store", "use-cache")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_TEXT = {Endpoint.CHAT: "chat.completion.chunk", Endpoint.COMPLETIONS: "text_completion"}


@dataclass(slots=True)
class CachePlan:
    """What the cache does for one request: the request's own key and controls over its
    caller's `_Policy` (labels, scope, tiers), which it keeps rather than copies (a request
    builds one: every field costs). `cache_plan` sets every field on a bare instance."""

    key: str  # the entry's Redis key name (also its L1 key)
    read: bool
    write: bool
    ttl: float
    max_age: float | None  # s-maxage / max-age: older entries are not served
    namespace: str
    include_usage: bool
    policy: _Policy
    # What the plan found before admission: the L1 entry (else the Redis entry is read by the
    # admission script, `RequestContext.fetch_key`, or by the lookup).
    local: bytes | None
    failed: bool = False  # Redis failed on the lookup: the request is counted as an error
    # The tier's entry that answers (`_found`): a plain hit sends its answer's bytes as stored.
    entry: bytes | None = None
    # The semantic tier's plan (gateway/semantic.py), when it serves this request: its lookup
    # runs after an exact miss, and `cache_store` hands it the answer to keep.
    semantic: Any = None
    # A hit's usage and what it saved, found by `cache_answer` before the admission's decision.
    usage: Usage | None = None
    saved_cost: Decimal = Decimal(0)
    # The policy's `hit_usage` they are the values of (None: worked out for this hit alone): a
    # hit whose usage comes from the same one has the same usage event, but for its request id
    # and times (gateway/governance.py `_hit_event`).
    usage_source: tuple[dict[str, Any], Any, Usage, Decimal] | None = None

    @property
    def labels(self) -> tuple[str, str, str]:
        """Model group, organization, team (metrics)."""
        return self.policy.labels

    @property
    def scope(self) -> str:
        """The tenant scope of the key (the semantic tier's too)."""
        return self.policy.scope


@dataclass(slots=True)
class _Policy:
    """What the cache does for one caller, endpoint and model group before the request's own
    controls: built on a caller's first request and kept while the configuration, the group's
    first deployment and the Caller (the key resolver's object, with its `cache` metadata) stay
    the same objects (a reload or a changed key makes new ones), so that a request pays only for
    its body's key."""

    config: CacheSettings
    caller: Caller
    deployment: Deployment | None
    endpoint: Endpoint
    group: str
    labels: tuple[str, str, str]
    bypass: bool  # the endpoint or the model group is not cached
    active: bool  # without controls of its own, a request reads or writes
    read: bool
    write: bool
    writes: bool  # without controls of its own, a request writes (`write` with a ttl above 0)
    ttl: float
    ttl_ms: int  # `ttl` in Redis's milliseconds (at least 1)
    max_age: float | None
    scope: str
    namespace: str  # the default namespace ("-": none)
    prefix: str  # the Redis key up to the digest, in the default namespace
    head: bytes  # the endpoint and the model group, hashed before the body
    ignored: frozenset[str]  # body fields left out of the key
    unsampled: bool  # only unsampled requests are cached (`sampled: false`)
    redis: bool  # L2 in use
    lean: bool  # L2 on the pipelined connection (a plain redis:// server): its SET rides the settle
    s3: S3CacheSettings | None  # L3, when configured
    charge: bool  # a hit costs its price against budgets
    miss: Callable[[], None]  # counts a miss (the Prometheus child, found once)
    bypassed: Callable[[], None]  # counts a bypass (the same)
    # The key's hash with the endpoint and the model group already in: a request copies it and
    # adds its body (no hasher to set up).
    hasher: Any = None
    # A hit's counters (the Prometheus children, found once): hits, saved tokens, saved USD.
    hit: Callable[[], None] | None = None
    saved: tuple[Callable[[float], None], Callable[[float], None]] | None = None
    # The last hit's stored usage block, the price it was valued at, the usage and what it saved
    # (`_hit_usage`): a caller's hits on a group mostly repeat one answer.
    hit_usage: tuple[dict[str, Any], Any, Usage, Decimal] | None = None
    # The last entry read (`_found`): its bytes, stored and expiry times, answer and upstream
    # wait. Hits on a group mostly repeat one entry, whose answer is only read, never changed.
    parsed: tuple[bytes, float, float, Any, Any] | None = None


_new = object.__new__
_dumps = orjson.dumps
_fragment = orjson.Fragment
_ZERO = Decimal(0)
_policies: dict[tuple[Any, ...], _Policy] = {}
# Each caller's latest policy, by the Caller's identity: a request finds it without building and
# hashing a tuple key (`_policies` holds the others, a caller of several groups or endpoints).
_latest: dict[int, _Policy] = {}
_EMPTY: dict[str, Any] = {}
# The largest entry a policy keeps parsed (`_Policy.parsed`): up to 4,096 policies hold one each.
_PARSED_MAX_BYTES = 16 * 1024
# The endpoints where a sampled request (temperature absent, which providers take as 1, or
# above 0) may answer differently each time: what `sampled: false` keeps out of the cache.
_GENERATING = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


# ---- the plan: controls and key ------------------------------------------------------------------


def cache_plan(
    ctx: RequestContext,
    *,
    config: CacheSettings,
    request: HttpRequest,
    inbound: Inbound,
    include_usage: bool,
) -> None:
    """Read the controls (400 on a bad `cache` object) and set `ctx.cache` to the plan, or mark
    the request bypassed."""
    body = inbound.body
    value = body.get("cache")
    controls = _controls(value, config=config) if value is not None else _EMPTY
    caller = ctx.caller
    candidates = ctx.candidates
    deployment = candidates[0] if candidates else None
    # The caller by identity: the key resolver keeps one Caller per key while it is cached, and
    # the policy holds it, so its id is not reused meanwhile.
    policy = _latest.get(id(caller))
    if (
        policy is None
        or policy.caller is not caller
        or policy.deployment is not deployment
        or policy.config is not config
        or policy.endpoint != ctx.endpoint
        or (deployment is None and policy.group != ctx.model)  # else the deployment's group
    ):
        policy = _policy_find(ctx, config=config, deployment=deployment)
    if policy.bypass or inbound.form or ctx.stored is not None:
        # A stored completion (`store: true`) is a completion of its own, under its own id, that
        # its owner can list and fetch: never answered from, nor written to, the cache.
        _bypass(ctx, policy)
        return
    if policy.unsampled and ctx.endpoint in _GENERATING:
        temperature = body.get("temperature")
        if temperature is None or _number(temperature) != 0.0:
            _bypass(ctx, policy)
            return
    header = request.META.get("HTTP_CACHE_CONTROL")
    if not controls and not header:  # the common case: the policy as it is
        if not policy.active:
            _bypass(ctx, policy)
            return
        read = policy.read
        write = policy.writes
        ttl = policy.ttl
        max_age = policy.max_age
        prefix = policy.prefix
        namespace = policy.namespace
    else:
        read, write, ttl, max_age, prefix, namespace = _controlled(policy, controls, header)
        if not read and not write:
            _bypass(ctx, policy)
            return
    ignored = policy.ignored
    try:
        if ignored.isdisjoint(body):
            canonical = orjson.dumps(body, None, orjson.OPT_SORT_KEYS)  # positional: cheaper
        else:
            fields = {name: item for name, item in body.items() if name not in ignored}
            canonical = orjson.dumps(fields, None, orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # defensive: a body orjson cannot write back
        _bypass(ctx, policy)
        return
    hasher = policy.hasher.copy()
    hasher.update(canonical)
    key = prefix + hasher.hexdigest()
    _plan_set(ctx, policy, key, read, write, ttl, max_age, namespace, include_usage)


def _plan_set(
    ctx: RequestContext,
    policy: _Policy,
    key: str,
    read: bool,
    write: bool,
    ttl: float,
    max_age: float | None,
    namespace: str,
    include_usage: bool,
) -> None:
    """`ctx.cache`: the plan of a request that reads or writes, its L1 entry looked up."""
    # `holds` first: a C call where `get` (a Python one) would find nothing, as on most misses.
    local = _local.get(key) if read and _local.holds(key) else None
    # Each field set on a bare instance: a class call runs its Python __init__ through
    # `slot_tp_init`, a third of the plan's cost again (callgrind).
    plan = ctx.cache = _new(CachePlan)
    plan.key = key
    plan.read = read
    plan.write = write
    plan.ttl = ttl
    plan.max_age = max_age
    plan.namespace = namespace
    plan.include_usage = include_usage
    plan.policy = policy
    plan.local = local
    plan.failed = False
    plan.entry = None
    plan.semantic = None
    plan.usage = None
    plan.saved_cost = _ZERO
    if read:
        ctx.cache_status = MISS
        if local is None and policy.redis:
            # Read by the admission script when it runs in Redis (gateway/limits.py: no command,
            # send or reply of its own), else by `cache_lookup`.
            ctx.fetch_key = key
    else:  # written, not read (`no-cache`)
        _bypass(ctx, policy)


# ---- the plan memo: a repeated request's checks, routing and key, kept ------------------------


@dataclass(slots=True)
class PlanMemo:
    """What a request that a hit answered worked out before its admission, kept for the same
    body on the same endpoint (`cache_memo_find`): its checked fields and candidates (opaque here:
    the relay's), its plan's key and controls. Valid while the caller, the configuration, the
    registry and the settings are the same objects (a changed or revoked key, a reload or a
    settings change makes new ones) and the request's `Cache-Control` is the same; the entry
    itself is looked up in L1 on every use (a purge, an expiry or `max-age` still count)."""

    caller: Caller
    config: Any  # the GatewayConfig
    registry: Any
    settings: Any
    header: str | None  # Cache-Control
    checked: Any
    candidates: tuple[Deployment, ...]
    policy: _Policy
    # The plan's key, read, write, ttl, max age, namespace and include_usage (`_plan_set`'s).
    plan: tuple[str, bool, bool, float, float | None, str, bool]
    # What the body check left on the request: its estimated prompt tokens and its bounds (the
    # relay's `memo_hit`, which reads no body: they depend on the body alone).
    bounds: tuple[int, int, int, int, int, int]


# (endpoint, body bytes) -> its memo. Bounded in entries and in each body's size: the bodies are
# the keys, and hits repeat a few of them.
_memos: dict[tuple[Endpoint, bytes], PlanMemo] = {}
# The kept bodies' sizes: a body of another size has no memo, found without hashing its bytes
# or building the key (a miss's lookup, the common one, costs a set lookup on an int). Cleared
# in place with `_memos`, so the relay holds it.
memo_sizes: set[int] = set()
_MEMOS_MAX = 1024
MEMO_BODY_MAX_BYTES = 8 * 1024


def cache_memo_find(
    ctx: RequestContext, *, body: bytes, header: str | None, config: Any, registry: Any
) -> PlanMemo | None:
    """The memo of this body on this endpoint when it still holds (`PlanMemo`), else None."""
    return cache_memo_get(
        ctx.endpoint, ctx.caller, body=body, header=header, config=config, registry=registry
    )


def cache_memo_get(
    endpoint: Endpoint,
    caller: Caller,
    *,
    body: bytes,
    header: str | None,
    config: Any,
    registry: Any,
) -> PlanMemo | None:
    """`cache_memo_find` by the request's endpoint and caller, before there is a request
    context (the lean edge's memo'd hit, gateway/asgi.py)."""
    memo = _memos.get((endpoint, body))
    if (
        memo is None
        or memo.caller is not caller
        or memo.config is not config
        or memo.registry is not registry
        or memo.settings is not hot_settings()
        or memo.header != header
    ):
        return None
    return memo


def cache_memo_held(memo: PlanMemo) -> bool:
    """Whether this worker's L1 holds the memo's entry (expired or not: the hit checks): an entry
    in Redis alone (evicted here, or written by another worker) is read on the relay's path, so
    the edge need not try."""
    return _local.holds(memo.plan[0])


def cache_memo_plan(ctx: RequestContext, memo: PlanMemo) -> None:
    """`cache_plan` from a memo: the same plan, its L1 entry looked up now."""
    _plan_set(ctx, memo.policy, *memo.plan)


def cache_memo_keep(
    ctx: RequestContext,
    *,
    body: bytes,
    header: str | None,
    config: Any,
    registry: Any,
    checked: Any,
) -> None:
    """Keep what this request worked out for the next one with the same body: called for a
    request answered by the exact tier, whose plan reads."""
    if len(body) > MEMO_BODY_MAX_BYTES:
        return
    if len(_memos) >= _MEMOS_MAX:
        cache_memo_clear()
    memo_sizes.add(len(body))
    plan: CachePlan = ctx.cache
    fields = (plan.key, plan.read, plan.write, plan.ttl, plan.max_age, plan.namespace)
    _memos[(ctx.endpoint, body)] = PlanMemo(
        ctx.caller,
        config,
        registry,
        hot_settings(),
        header,
        checked,
        ctx.candidates,
        plan.policy,
        (*fields, plan.include_usage),
        (
            ctx.estimated_prompt_tokens,
            ctx.prompt_tokens_bound,
            ctx.outputs_bound,
            ctx.images_bound,
            ctx.characters_bound,
            ctx.audio_seconds_bound,
        ),
    )


def cache_memo_clear() -> None:
    """Forget every plan memo of this process."""
    _memos.clear()
    memo_sizes.clear()


def _policy_find(
    ctx: RequestContext, *, config: CacheSettings, deployment: Deployment | None
) -> _Policy:
    """The caller's policy for this endpoint and group, built when there is none or it is stale,
    and kept as the caller's latest."""
    caller = ctx.caller
    group = deployment.model_name if deployment is not None else ctx.model
    memo = (ctx.endpoint, group, id(caller))
    policy = _policies.get(memo)
    if (
        policy is None
        or policy.caller is not caller
        or policy.config is not config
        or policy.deployment is not deployment
    ):
        policy = _policy_build(ctx, config=config, group=group, deployment=deployment)
        if len(_policies) >= 4096:
            _policies.clear()
        _policies[memo] = policy
    if len(_latest) >= 4096:
        _latest.clear()
    _latest[id(caller)] = policy
    return policy


def _controlled(
    policy: _Policy, controls: dict[str, Any], header: str | None
) -> tuple[bool, bool, float, float | None, str, str]:
    """Read, write, ttl, max age, key prefix and namespace: the policy's, as the request's
    `cache` object and `Cache-Control` header change them."""
    read = policy.read
    write = policy.write
    ttl = policy.ttl
    max_age = policy.max_age
    prefix = policy.prefix
    namespace = policy.namespace
    if controls:
        if controls.get("use-cache") is True:
            read = write = True
        if controls.get("no-cache") is True:
            read = False
        if controls.get("no-store") is True:
            write = False
        if "ttl" in controls:
            ttl = float(controls["ttl"])
        if "s-maxage" in controls:
            max_age = float(controls["s-maxage"])
        if "namespace" in controls:
            namespace = controls["namespace"]
            prefix = redis_key(f"cache:{policy.scope}:{namespace}:")
    if header:
        for directive in header.lower().split(","):
            name, _, number = directive.strip().partition("=")
            if name == "no-cache":
                read = False
            elif name == "no-store":
                write = False
            elif name == "max-age" and number.strip().isdigit():
                age = float(number.strip())
                max_age = age if max_age is None else min(max_age, age)
    if ttl <= 0:
        write = False
    return read, write, ttl, max_age, prefix, namespace


def _policy_build(
    ctx: RequestContext, *, config: CacheSettings, group: str, deployment: Deployment | None
) -> _Policy:
    """The model group's settings, then the owner's metadata (the key's over its team's over
    its organization's, auth.py), over the configuration's. Bad metadata values are ignored."""
    caller = ctx.caller
    owner = caller.cache if isinstance(caller.cache, dict) else {}
    organization = str(caller.organization_id) if caller.organization_id is not None else ""
    team = str(caller.team_id) if caller.team_id is not None else ""
    labels = (group, organization, team)
    _local_resize(config.local_max_bytes)
    setting = (deployment.params.get("model_info") or {}).get("cache") if deployment else None
    group_setting = setting if isinstance(setting, dict) else {}
    bypass = (
        ctx.endpoint not in config.endpoints
        or setting is False
        or group_setting.get("enabled") is False
    )
    ttl = config.ttl
    if _number(group_setting.get("ttl")) is not None:
        ttl = min(float(group_setting["ttl"]), config.max_ttl)
    if _number(owner.get("ttl")) is not None:
        ttl = min(float(owner["ttl"]), config.max_ttl)
    ignore = list(config.ignore_params)
    sampled = config.sampled
    for level in (group_setting, owner):
        names = level.get("ignore_params")
        if names is not None and cache_setting_valid("ignore_params", names):
            ignore = names
        if cache_setting_valid("sampled", level.get("sampled")):
            sampled = level["sampled"]
    namespace = owner.get("namespace") or config.namespace
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        namespace = "-"
    scope = _scope(ctx, owner.get("scope") if owner.get("scope") else config.scope)
    head = orjson.dumps([ctx.endpoint, group])
    read = config.default_on and owner.get("no-cache") is not True
    write = config.default_on and owner.get("no-store") is not True
    return _Policy(
        config=config,
        caller=caller,
        deployment=deployment,
        endpoint=ctx.endpoint,
        group=group,
        labels=labels,
        bypass=bypass,
        active=read or (write and ttl > 0),
        read=read,
        write=write,
        writes=write and ttl > 0,
        ttl=ttl,
        ttl_ms=max(int(ttl * 1000), 1),
        max_age=_number(owner.get("s-maxage")),
        scope=scope,
        namespace=namespace,
        prefix=redis_key(f"cache:{scope}:{namespace}:"),
        head=head,
        ignored=NOT_IN_KEY.union(ignore),
        unsampled=not sampled,
        redis=config.type == "redis" and bool(settings.REDIS_URL),
        lean=settings.REDIS_URL.startswith("redis://"),
        s3=config.s3,
        charge=config.charge_hits,
        miss=cache_request_counter(result=MISS, labels=labels),
        bypassed=cache_request_counter(result=BYPASS, labels=labels),
        hasher=blake2b(head, digest_size=20),
        hit=cache_request_counter(result=HIT, labels=labels),
        saved=cache_saved_counters(labels=labels),
    )


def owner_cache_settings(ctx: RequestContext) -> dict[str, Any]:
    """The `cache` object of the caller's key, team and organization metadata, merged."""
    cache = ctx.caller.cache
    return cache if isinstance(cache, dict) else {}


def _bypass(ctx: RequestContext, policy: _Policy) -> None:
    ctx.cache_status = BYPASS
    policy.bypassed()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _controls(value: Any, *, config: CacheSettings) -> dict[str, Any]:
    """The request's `cache` object, checked: 400 naming the field that is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("`cache` must be an object.", param="cache")
    for name, item in value.items():
        if name not in _CONTROLS:
            raise InvalidRequestError(
                f"Unknown cache control `{name}` (one of {', '.join(sorted(_CONTROLS))}).",
                param=f"cache.{name}",
            )
        if name in _FLAGS and not isinstance(item, bool):
            raise InvalidRequestError(f"`cache.{name}` must be a boolean.", param=f"cache.{name}")
    for name in ("ttl", "s-maxage"):
        if name not in value:
            continue
        number = _number(value[name])
        if number is None or number < 0:
            raise InvalidRequestError(
                f"`cache.{name}` must be a number of seconds, at least 0.", param=f"cache.{name}"
            )
        if name == "ttl" and number > config.max_ttl:
            raise InvalidRequestError(
                f"`cache.ttl` must be at most {config.max_ttl:g} seconds.", param="cache.ttl"
            )
    namespace = value.get("namespace")
    if namespace is not None and not (isinstance(namespace, str) and _NAMESPACE.match(namespace)):
        raise InvalidRequestError(
            "`cache.namespace` must be 1 to 64 letters, digits, `_`, `.` or `-`.",
            param="cache.namespace",
        )
    return value


def _scope(ctx: RequestContext, scope: str) -> str:
    """Who shares entries: always inside one organization."""
    caller = ctx.caller
    if caller.is_master:
        return "master"
    organization = f"o{caller.organization_id if caller.organization_id is not None else '-'}"
    if scope == "team" and caller.team_id is not None:
        return f"{organization}.t{caller.team_id}"
    if scope in ("team", "key"):
        if caller.key_id is not None:
            return f"{organization}.k{caller.key_id}"
        return f"{organization}.u{caller.user_id if caller.user_id is not None else '-'}"
    return organization


# ---- the tiers -----------------------------------------------------------------------------------

_local = BytesLRU(max_bytes=CacheSettings().local_max_bytes)
_writes: set[asyncio.Task[None]] = set()


def _local_resize(max_bytes: int) -> None:
    if _local.max_bytes != max_bytes:
        _local.max_bytes = max_bytes
        if _local.size > max_bytes:
            _local.clear()


def cache_local_clear() -> None:
    """Forget this process's L1 entries."""
    _local.clear()


# A purge (gateway.services.response_cache_purge) deletes the Redis entries, then every worker
# forgets its whole L1: purges are rare, and L1 refills from Redis.
broadcast_topic_register(
    BroadcastTopic(
        name=RESPONSE_CACHE,
        receive=lambda message: cache_local_clear(),
        resync=cache_local_clear,
    )
)


def cache_purge_patterns(
    *,
    organization_id: int,
    team_id: int | None = None,
    key_id: int | None = None,
    namespace: str | None = None,
) -> list[str]:
    """The Redis SCAN patterns of the entries of an organization (every scope inside it), of a
    team's scope or of a key's, in one namespace or in all (see `_scope` for the names)."""
    organization = f"o{organization_id}"
    if key_id is not None:
        scopes = [f"{organization}.k{key_id}"]
    elif team_id is not None:
        scopes = [f"{organization}.t{team_id}"]
    else:
        scopes = [organization, f"{organization}.*"]
    space = namespace if namespace else "*"
    return [redis_key(f"cache:{scope}:{space}:*") for scope in scopes]


def cache_namespace_valid(namespace: str) -> bool:
    return bool(_NAMESPACE.match(namespace))


# `cache_found`'s answer when the lookup has to wait on a tier: `cache_lookup` then.
LOOKUP: Any = object()


def cache_found(ctx: RequestContext) -> dict[str, Any] | None:
    """The stored answer when the lookup has what it needs in hand (the L1 entry, or the Redis
    one the admission script read, and no S3), None on a miss (counted), else `LOOKUP`: await
    `cache_lookup`. One call where a miss found in hand, the common one, may cost only a few
    percent more than no cache (docs/benchmark.md)."""
    plan: CachePlan = ctx.cache
    raw = plan.local
    if raw is not None:
        return _found(ctx, plan, raw, False)
    policy = plan.policy
    if policy.s3 is not None or (policy.redis and not ctx.fetch_taken):
        return LOOKUP  # type: ignore[no-any-return]
    if ctx.fetch_taken:  # read by the admission script (the relay awaited it)
        raw = ctx.fetched
        if raw is not None:
            return _found(ctx, plan, raw, True)
    if plan.semantic is None:  # `_found`'s count of a miss, without its call
        if plan.failed:
            model, organization, team = policy.labels
            cache_request_record(result=ERROR, model=model, organization=organization, team=team)
        else:
            policy.miss()
    return None


async def cache_lookup(ctx: RequestContext) -> dict[str, Any] | None:
    """The stored answer for this request (L1, then Redis, then S3), or None (counted as a
    miss)."""
    plan: CachePlan = ctx.cache
    policy = plan.policy
    raw = plan.local
    promote = False
    if raw is None and policy.redis:
        if ctx.fetch_taken:  # read by the admission script, whose decision the relay awaited
            raw = ctx.fetched
        else:
            raw = await _redis_get(plan)
        promote = raw is not None
    if raw is None and policy.s3 is not None:
        raw, failed = await s3_get(policy.s3, plan.key)
        plan.failed = plan.failed or failed
        promote = raw is not None
    return _found(ctx, plan, raw, promote)


def _found(
    ctx: RequestContext, plan: CachePlan, raw: bytes | None, promote: bool
) -> dict[str, Any] | None:
    """The answer in a tier's entry `raw` (promoted to L1 when `promote`), or None, counted."""
    found: dict[str, Any] | None = None
    if raw is not None:
        policy = plan.policy
        held = policy.parsed
        if held is not None and held[0] == raw:  # a memcmp where a parse costs the whole entry
            _, stored, expires, response, latency = held
        else:
            try:
                entry = orjson.loads(raw)
                stored, expires, response = float(entry["t"]), float(entry["x"]), entry["r"]
                latency = entry.get("l")  # the answer's upstream wait (analytics); older: none
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                logger.warning("unreadable response cache entry %s: ignored", plan.key)
                stored, expires, response, latency = 0.0, 0.0, None, None
            if response is not None and len(raw) <= _PARSED_MAX_BYTES:
                policy.parsed = (raw, stored, expires, response, latency)
        now = time.time()
        if expires <= now:  # an S3 object outlives its deadline until a lifecycle rule runs
            response = None
        if promote and response is not None:
            _local.set(plan.key, raw, ttl=expires - now)
        age = max(now - stored, 0.0)
        if response is not None and (plan.max_age is None or age <= plan.max_age):
            found = response
            plan.entry = raw
            ctx.cache_age = age
            ctx.cache_saved_latency_ms = latency if isinstance(latency, int) else None
    # A hit is counted once it is admitted (cache_respond); after an exact miss, the semantic
    # tier counts its own result.
    if found is None and plan.semantic is None:
        if plan.failed:
            model, organization, team = plan.policy.labels
            cache_request_record(result=ERROR, model=model, organization=organization, team=team)
        else:
            plan.policy.miss()
    return found


async def _redis_get(plan: CachePlan) -> bytes | None:
    if redis_outage.down:
        redis_outage_watch()
        plan.failed = True
        return None
    try:
        lean = redis_lean()  # the hot path's pipelined connection: a fraction of redis-py's CPU
        if lean is not None:
            return await lean.execute("GET", plan.key)
        return await redis_client().get(plan.key)
    except Exception as exc:
        redis_failed(exc, what="cache")
        cache_redis_error_record(operation="get")
        plan.failed = True
        return None


def cache_store(
    ctx: RequestContext, response: dict[str, Any], *, encoded: bytes | None = None
) -> None:
    """Keep a complete answer (Redis with the settle, or L1 now and S3 for a large one, in the
    background), unless it must not be. `encoded`: the answer's JSON as sent, when the caller
    has it."""
    plan: CachePlan | None = ctx.cache
    if plan is None or not plan.write or ctx.status_code != 200 or "error" in response:
        return
    # Never an error, nor a choice cut short or refused; checked here rather than in a function
    # of its own (a call less on every miss). Exact types: an upstream's JSON, and cheaper than
    # isinstance.
    choices = response.get("choices")
    if type(choices) is list:
        for choice in choices:
            if type(choice) is not dict:
                return
            reason = choice.get("finish_reason")
            if reason is None or reason == "content_filter":
                return
    now = time.time()
    ttl = plan.ttl
    policy = plan.policy
    # The answer's bytes as sent, when given, are not written a second time. `l`: what a hit on
    # this entry saves (analytics). A dict and orjson's dump, not a format around the bytes:
    # Python's float repr alone costs more than the dump (callgrind).
    raw = _dumps(
        {
            "t": now,
            "x": now + ttl,
            "l": int(ctx.upstream_seconds * 1000),
            "r": response if encoded is None else _fragment(encoded),
        }
    )
    if plan.semantic is not None:
        plan.semantic.keep(ctx, raw, now=now, ttl=ttl)
    s3 = policy.s3
    if s3 is not None and len(raw) >= s3.min_bytes:
        # Large: the bucket only; Redis keeps nothing (its memory is for the many small ones).
        _local.set(plan.key, raw, ttl=ttl)
        _write(s3_put(s3, plan.key, raw, now + ttl))
    elif policy.redis and not redis_outage.down:
        # Written by the settle script (gateway/governance.py), else by `cache_write_flush`;
        # framed here for the settle, whose command then copies the entry once.
        ttl_ms = policy.ttl_ms if ttl == policy.ttl else max(int(ttl * 1000), 1)
        ctx.settle_write = (plan.key, raw, ttl_ms, framed(raw, ttl_ms))
        if not policy.lean:  # redis-py's SET, in the background: L1 answers meanwhile
            _local.set(plan.key, raw, ttl=ttl)
        # On the pipelined connection the entry is in Redis before this worker reads another
        # request's admission, which returns it (no round trip of its own): L1 takes it when it
        # is first read back (`_found`), so L1 holds the answers asked again and a miss makes
        # no copy (a few percent of a miss's instructions, docs/benchmark.md).
    else:
        _local.set(plan.key, raw, ttl=ttl)


def cache_write_flush(ctx: RequestContext) -> None:
    """Write the Redis entry `cache_store` left for the settle script, which did not take it
    (no Redis admission, a replayed or cancelled settle): with the next command written on the
    pipelined connection, at the end of this loop turn at the latest."""
    write = ctx.settle_write
    if write is None:
        return
    ctx.settle_write = None
    key, raw, ttl_ms, _ = write
    lean = redis_lean()
    written = lean.hold("SET", key, raw, "PX", ttl_ms) if lean is not None else None
    if written is None:
        _write(_redis_set(key, raw, ttl_ms))
    else:
        written.add_done_callback(_redis_set_done)


def _write(write: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(write)
    _writes.add(task)
    task.add_done_callback(_writes.discard)


async def _redis_set(key: str, raw: bytes, ttl_ms: int) -> None:
    try:
        lean = redis_lean()
        if lean is not None:
            await lean.execute("SET", key, raw, "PX", ttl_ms)
            return
        await redis_client().set(key, raw, px=ttl_ms)
    except Exception as exc:
        redis_failed(exc, what="cache")
        cache_redis_error_record(operation="set")


def _redis_set_done(written: asyncio.Future[Any]) -> None:
    if written.cancelled():
        return
    error = written.exception()
    if error is None and isinstance(written.result(), Exception):  # a Redis error reply
        error = written.result()
    if error is not None:
        redis_failed(error, what="cache")
        cache_redis_error_record(operation="set")


async def cache_writes_wait() -> None:
    """Wait for this loop's pending Redis and S3 writes (tests, shutdown)."""
    pending = [task for task in _writes if not task.done()]
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


# ---- a hit ---------------------------------------------------------------------------------------


def cache_answer(
    ctx: RequestContext, response: dict[str, Any], *, result: str = HIT
) -> HttpResponse:
    """The response to a hit, without its headers (the stored JSON, or a stream replayed from
    it), and the hit's usage and savings, kept on the plan. Nothing of the request's changes, so
    the relay does this while the admission's decision is on its way; `cache_respond` applies it
    once admitted."""
    plan: CachePlan = ctx.cache
    plan.usage, plan.saved_cost, plan.usage_source = _hit_usage(
        ctx, plan.policy, response.get("usage")
    )
    if ctx.stream:
        http = StreamingHttpResponse(_replay(ctx, response), content_type="text/event-stream")
        http["Cache-Control"] = "no-cache"
        http["X-Accel-Buffering"] = "no"
        return http
    answer = _answer_bytes(plan.entry) if result == HIT else None
    if answer is None:
        return json_response(response)
    # The answer's bytes as stored: what the miss sent, not encoded a second time.
    return json_bytes_response(answer)


def cache_respond(
    ctx: RequestContext,
    response: dict[str, Any],
    headers: dict[str, str],
    *,
    result: str = HIT,
    http: HttpResponse | None = None,
) -> HttpResponse:
    """Answer from the cache, once admitted: the hit counted, its usage and savings noted, the
    response (`http`: `cache_answer`'s when built already) given its headers. `result` says
    which tier found it (`hit`, or `semantic-hit`)."""
    if http is None:
        http = cache_answer(ctx, response, result=result)
    cache_hit_count(ctx, result)
    headers_apply(http, ctx, headers)
    return http


def cache_hit_count(ctx: RequestContext, result: str = HIT) -> None:
    """A hit admitted: counted, its usage and savings noted on the request (`cache_respond`'s
    work but the headers)."""
    plan: CachePlan = ctx.cache
    policy = plan.policy
    tokens = _hit_mark(ctx, plan, result)
    if result == HIT and policy.hit is not None:
        policy.hit()
    else:
        model, organization, team = plan.labels
        cache_request_record(result=result, model=model, organization=organization, team=team)
    cost = plan.saved_cost
    saved = policy.saved
    if saved is None:
        model, organization, team = plan.labels
        cache_saved_record(
            model=model, organization=organization, team=team, tokens=tokens, cost_usd=float(cost)
        )
    else:
        if tokens > 0:
            saved[0](tokens)
        if cost > 0:
            saved[1](float(cost))


def cache_memo_hit(ctx: RequestContext, memo: PlanMemo) -> bytes | None:
    """A memo'd request answered by its L1 entry: its plan set (`cache_memo_plan`), the entry
    found as `_found` finds it, the hit's usage and savings noted as `cache_answer` notes them;
    the answer's bytes. None, with nothing counted, when the entry is not in L1, unreadable,
    expired or older than the request's max age: the request then takes the relay's path,
    which counts (and logs) it."""
    _plan_set(ctx, memo.policy, *memo.plan)
    plan: CachePlan = ctx.cache
    raw = plan.local
    if raw is None:
        return None
    policy = plan.policy
    held = policy.parsed
    if held is not None and held[0] == raw:
        _, stored, expires, response, latency = held
    else:  # parsed as `_found` parses it; an unreadable entry is the relay's to log
        try:
            entry = orjson.loads(raw)
            stored, expires, response = float(entry["t"]), float(entry["x"]), entry["r"]
            latency = entry.get("l")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if response is None:
            return None
        if len(raw) <= _PARSED_MAX_BYTES:
            policy.parsed = (raw, stored, expires, response, latency)
    now = time.time()
    age = max(now - stored, 0.0)
    if expires <= now or (plan.max_age is not None and age > plan.max_age):
        return None
    plan.entry = raw
    ctx.cache_age = age
    ctx.cache_saved_latency_ms = latency if isinstance(latency, int) else None
    plan.usage, plan.saved_cost, plan.usage_source = _hit_usage(ctx, policy, response.get("usage"))
    answer = _answer_bytes(raw)
    return answer if answer is not None else orjson.dumps(response)


def _hit_mark(ctx: RequestContext, plan: CachePlan, result: str) -> int:
    """Note the hit on the request (its status, usage and savings, for the headers and the usage
    event); its saved tokens."""
    ctx.cache_status = result
    ctx.cache_free = not plan.policy.charge
    usage = plan.usage if plan.usage is not None else ctx.usage
    ctx.usage = usage
    tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    ctx.cache_saved_cost = plan.saved_cost
    ctx.cache_saved_tokens = tokens
    return tokens


def cache_hit_shown(ctx: RequestContext, build: Callable[[], T]) -> T:
    """`build()` run with the request as `cache_respond` will leave a hit whose answer
    `cache_answer` built, and left as it was: the hit's usage event, made before the admission
    that lets it answer (gateway/governance.py), while a refusal must still say `miss`."""
    kept = (ctx.cache_status, ctx.cache_free, ctx.usage, ctx.cache_saved_cost)
    saved_tokens = ctx.cache_saved_tokens
    _hit_mark(ctx, ctx.cache, HIT)
    try:
        return build()
    finally:
        ctx.cache_status, ctx.cache_free, ctx.usage, ctx.cache_saved_cost = kept
        ctx.cache_saved_tokens = saved_tokens


def _answer_bytes(entry: bytes | None) -> bytes | None:
    """The answer's JSON in a tier's entry, as written by `cache_store`: `{"t":…,"x":…,"l":…,
    "r":<answer>}`, the answer last and only numbers before it, so its bytes run from the first
    `"r":` (outside a string a quote is escaped, so it can only be that key) to the closing
    brace. None for anything else (the answer is then encoded from the parsed entry)."""
    if entry is None or not entry.startswith(b'{"t":') or not entry.endswith(b"}"):
        return None
    start = entry.find(b'"r":')
    if start < 0:
        return None
    return entry[start + 4 : -1]


_usage_values = operator.attrgetter(*(item.name for item in fields(Usage)))


def _hit_usage(
    ctx: RequestContext, policy: _Policy, reported: Any
) -> tuple[Usage, Decimal, tuple[dict[str, Any], Any, Usage, Decimal] | None]:
    """A hit's usage (its stored answer's) and what it saved: what the answer would have cost
    from the model group's first deployment. Taken from the policy's last hit when the usage
    block and the price are the same (a new Usage each time: the request's own), and then that
    hit's `hit_usage` too (else the one this hit leaves, if any)."""
    price = deployment_price(deployment=ctx.candidates[0]) if ctx.candidates else None
    held = policy.hit_usage
    if held is not None and (held[1] is price or held[1] == price) and held[0] == reported:
        return Usage(*_usage_values(held[2])), held[3], held
    usage = Usage()
    if isinstance(reported, dict):
        usage_fill(usage, reported, provider="")
    saved = cost_from_price(price=price, usage=usage) if price is not None else Decimal(0)
    # Kept when the prompt and completion counts were reported and possible (an impossible one
    # is counted and logged by `usage_fill`, hit after hit).
    if usage.prompt_reported and usage.completion_reported:
        held = policy.hit_usage = (reported, price, Usage(*_usage_values(usage)), saved)
        return usage, saved, held
    return usage, saved, None


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _replay(ctx: RequestContext, response: dict[str, Any]) -> AsyncIterator[bytes]:
    """The chunks a stream of this answer would have sent: per choice, its content (and tool
    calls), then its finish reason; the usage chunk when the request asked for it."""
    head = {"id": response.get("id", ""), "object": _TEXT[ctx.endpoint]}
    for name in ("created", "model", "system_fingerprint"):
        if name in response:
            head[name] = response[name]
    for choice in response.get("choices") or ():
        index = choice.get("index", 0)
        if ctx.endpoint == Endpoint.CHAT:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant")}
            for name in ("content", "reasoning_content", "refusal"):
                if message.get(name) is not None:
                    delta[name] = message[name]
            calls = message.get("tool_calls")
            if calls:
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
            first = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
            last = {"index": index, "delta": {}, "logprobs": None}
        else:
            text = choice.get("text") or ""
            first = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
            last = {"index": index, "text": "", "logprobs": None}
        last["finish_reason"] = choice.get("finish_reason")
        yield _event({**head, "choices": [first]})
        yield _event({**head, "choices": [last]})
    usage = response.get("usage")
    if ctx.cache.include_usage and isinstance(usage, dict):
        yield _event({**head, "choices": [], "usage": usage})
    yield f": x-ogem-overhead-ms={overhead_ms(ctx)}\n\n".encode()
    yield DONE


# ---- a stream, assembled as it passes ------------------------------------------------------------


class StreamRecorder:
    """Assembles a stream's chunks into the complete answer, stored when the stream ends whole
    (`gateway.streaming.sse_relay` calls `add` for each chunk and `finish` at its end)."""

    __slots__ = ("_choices", "_head", "_usage", "ctx")

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self._head: dict[str, Any] | None = None
        self._usage: dict[str, Any] | None = None
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any], usage: dict[str, Any] | None) -> None:
        if self._head is None:
            self._head = {
                name: chunk[name]
                for name in ("id", "created", "model", "system_fingerprint")
                if name in chunk
            }
        if usage:
            self._usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            slot = self._choices.get(choice.get("index", 0))
            if slot is None:
                slot = self._choices[choice.get("index", 0)] = {
                    "role": None,
                    "parts": [],
                    "reasoning": [],
                    "calls": {},
                    "finish": None,
                }
            if choice.get("finish_reason") is not None:
                slot["finish"] = choice["finish_reason"]
            text = choice.get("text")
            if isinstance(text, str):
                slot["parts"].append(text)
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if delta.get("role"):
                slot["role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                slot["parts"].append(delta["content"])
            if isinstance(delta.get("reasoning_content"), str):
                slot["reasoning"].append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                if not isinstance(call, dict):
                    continue
                held = slot["calls"].setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "name": "", "arguments": []},
                )
                if call.get("id"):
                    held["id"] = call["id"]
                if call.get("type"):
                    held["type"] = call["type"]
                function = call.get("function") or {}
                if function.get("name"):
                    held["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    held["arguments"].append(function["arguments"])

    def finish(self) -> None:
        """The stream ended whole: store the answer it made."""
        ctx = self.ctx
        if self._head is None or not self._choices:
            return
        usage = ctx.usage
        reported = self._usage if usage.prompt_reported and usage.completion_reported else None
        answer: dict[str, Any] = {
            **self._head,
            "object": "chat.completion" if ctx.endpoint == Endpoint.CHAT else "text_completion",
            "choices": [self._choice(index, slot) for index, slot in sorted(self._choices.items())],
            "usage": reported or usage_block(usage),
        }
        cache_store(ctx, answer)

    def _choice(self, index: int, slot: dict[str, Any]) -> dict[str, Any]:
        text = "".join(slot["parts"])
        if self.ctx.endpoint != Endpoint.CHAT:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": slot["finish"]}
        message: dict[str, Any] = {"role": slot["role"] or "assistant"}
        calls = [
            {
                "id": held["id"],
                "type": held["type"],
                "function": {"name": held["name"], "arguments": "".join(held["arguments"])},
            }
            for _, held in sorted(slot["calls"].items())
        ]
        message["content"] = text if text or not calls else None
        if slot["reasoning"]:
            message["reasoning_content"] = "".join(slot["reasoning"])
        if calls:
            message["tool_calls"] = calls
        return {
            "index": index,
            "message": message,
            "logprobs": None,
            "finish_reason": slot["finish"],
        }


def cache_recorder(ctx: RequestContext) -> StreamRecorder | None:
    plan: CachePlan | None = ctx.cache
    if plan is None or not plan.write:
        return None
    return StreamRecorder(ctx)

"""Authentication on /v1: the master key, or a virtual key through a three-level resolver.

    in-process TTL cache  ->  Redis (when REDIS_URL is set)  ->  database

Entries are keyed by sha256(secret) (never the secret) and hold a JSON `Caller`; "no such key" is
cached too, briefly. Changing a key (revoke, rotate, update, delete) deletes its Redis entries
(keys/cache.py, which names them) and broadcasts its prefixes on `ogem_site.broadcast`'s "keys"
topic: every worker process (this one at once, the others through Redis pub/sub) drops them from
its own cache, so every worker forgets the key within milliseconds. Expiry is checked on every
request against the cached `expires_at`. In the steady state a request makes no database query.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import asdict
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest

from gateway.config.cache import cache_setting_valid
from gateway.context import Caller, guardrail_settings_resolve, routing_settings_resolve
from gateway.errors import AuthenticationError
from gateway.jwt_auth import jwt_caller_authenticate
from keys.cache import key_cache_entry, key_cache_index, key_cache_invalidations_flush
from keys.debug import debug_until_parse
from ogem_site.broadcast import KEYS, BroadcastTopic, broadcast_listen, broadcast_topic_register
from ogem_site.caching import LocalCache
from ogem_site.hashing import LEGACY_SHA256, key_lookup_prefix, master_key_matches
from ogem_site.hot_settings import hot_settings
from ogem_site.redis import (
    redis_client,
    redis_failed,
    redis_lean,
    redis_outage,
    redis_recovery_register,
)
from tenants.oidc import looks_like_jwt, oidc_settings

logger = logging.getLogger(__name__)

LOCAL_TTL = 60.0  # seconds a resolved key stays in the process cache
REDIS_TTL = 300
NEGATIVE_TTL = 10  # seconds "no such key" is remembered, here and in Redis

MASTER_CALLER = Caller(is_master=True, key_name="master")


_NOT_FOUND = object()


# sha256(key) -> Caller, or None for "no such key"; tagged with the key's prefix, which is what
# invalidations name.
_local: LocalCache[str, Caller | None] = LocalCache(maxsize=100_000, ttl=LOCAL_TTL)


def credential_from_request(request: HttpRequest) -> str | None:
    """The key from `Authorization: Bearer`, `api-key` or `x-api-key`, in that order."""
    meta = request.META
    return credential_pick(
        authorization=meta.get("HTTP_AUTHORIZATION"),
        api_key=meta.get("HTTP_API_KEY"),
        x_api_key=meta.get("HTTP_X_API_KEY"),
    )


def credential_pick(
    *, authorization: str | None, api_key: str | None, x_api_key: str | None
) -> str | None:
    """The key among the three headers that may carry it (their values, None when absent):
    `Authorization: Bearer`, then `api-key`, then `x-api-key`. The one rule for Django's request
    and the lean edge's raw headers (gateway/asgi.py)."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    for value in (api_key, x_api_key):
        if value and value.strip():
            return value.strip()
    return None


async def caller_authenticate(request: HttpRequest) -> Caller:
    secret = credential_from_request(request)
    if secret is None:
        raise AuthenticationError(
            "Missing API key: send it as `Authorization: Bearer KEY`, `api-key` or `x-api-key`.",
            code="missing_api_key",
        )
    return await caller_from_secret(secret=secret)


async def caller_from_secret(*, secret: str) -> Caller:
    """The Caller a credential is: the master key, an identity provider's JWT or a virtual key
    (the Realtime API's WebSocket handshake calls it with the key it found)."""
    if master_key_matches(secret):
        if hot_settings().REDIS_URL:
            broadcast_listen()  # a worker only the master key reaches hears the others too
        return MASTER_CALLER
    if (idp_caller := await jwt_caller_authenticate(token=secret)) is not None:
        return idp_caller  # an identity provider's JWT (gateway/jwt_auth.py)
    caller = await caller_resolve(secret=secret)
    if caller is None:
        raise AuthenticationError("Invalid, revoked or expired API key.")
    if caller.expires_at is not None and caller.expires_at <= time.time():
        raise AuthenticationError("This API key has expired.", code="expired_api_key")
    return caller


def caller_known(secret: str) -> Caller | None:
    """The virtual key's Caller when the in-process cache holds it and it has not expired: what
    `caller_from_secret` would return without awaiting anything (the lean edge's memo'd hit,
    gateway/asgi.py). None when only `caller_from_secret` can say (the master key, an identity
    provider's JWT, a key not cached here, unknown or expired: its refusal is its own)."""
    if master_key_matches(secret) or (looks_like_jwt(secret) and oidc_settings() is not None):
        return None
    if key_lookup_prefix(secret) is None:
        return None
    caller = _local.get(hashlib.sha256(secret.encode()).hexdigest())
    if caller is None or (caller.expires_at is not None and caller.expires_at <= time.time()):
        return None
    return caller


async def caller_resolve(*, secret: str) -> Caller | None:
    # An Ogem secret's prefix is a slice of it; only an `sk-` secret of another shape (a key
    # imported from LiteLLM) costs a SHA-256 more here.
    prefix = key_lookup_prefix(secret)
    if prefix is None:
        return None
    digest = hashlib.sha256(secret.encode()).hexdigest()
    cached = _local.get(digest, _NOT_FOUND)
    if cached is not _NOT_FOUND:
        return cached  # type: ignore[return-value]
    generation = _local.generation
    if settings.REDIS_URL and not redis_outage.down:
        broadcast_listen()
        found = await _redis_get(digest)
        if found is not _NOT_FOUND:
            ttl = LOCAL_TTL if found else NEGATIVE_TTL
            _local.set(digest, found, ttl=ttl, tag=prefix, generation=generation)  # type: ignore[arg-type]
            return found  # type: ignore[return-value]
    caller = await sync_to_async(_caller_from_database, thread_sensitive=False)(secret)
    ttl = LOCAL_TTL if caller else NEGATIVE_TTL
    _local.set(digest, caller, ttl=ttl, tag=prefix, generation=generation)
    if settings.REDIS_URL and generation == _local.generation and not redis_outage.down:
        await _redis_put(digest, prefix, caller)
    return caller


def _caller_from_database(secret: str) -> Caller | None:
    from django.db import close_old_connections, connection

    from keys.selectors import key_authenticate
    from keys.services import key_digest_upgrade

    close_old_connections()
    try:
        key = key_authenticate(secret=secret)
        if key is None:
            return None
        prefix = key_lookup_prefix(secret)
        if key.prefix == prefix and key.pepper_id == LEGACY_SHA256:
            key_digest_upgrade(key=key, secret=secret)  # LiteLLM's SHA-256 -> Ogem's HMAC
        rotated = key.prefix != prefix  # the pre-rotation secret
        return _caller_of_key(key, previous_secret=rotated)
    finally:
        connection.close()


async def caller_by_key_id(*, key_id: int) -> Caller | None:
    """The Caller of an active key, by its id: for work the gateway does on a key's behalf
    outside a request (a batch's lines run by a Celery worker). None when the key is revoked,
    expired or gone."""
    return await sync_to_async(_caller_by_key_id, thread_sensitive=False)(key_id)


def _caller_by_key_id(key_id: int) -> Caller | None:
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from keys.selectors import key_get_active

    close_old_connections()
    try:
        key = key_get_active(key_id=key_id, now=timezone.now())
        return _caller_of_key(key, previous_secret=False) if key is not None else None
    finally:
        connection.close()


def _caller_of_key(key: Any, *, previous_secret: bool) -> Caller:
    """A key row (its team and organization loaded with it) as the hot path's Caller."""
    expires = [key.expires_at] if key.expires_at else []
    if previous_secret and key.previous_expires_at is not None:
        expires.append(key.previous_expires_at)
    tags, regions, priority = _routing_settings(key)
    return Caller(
        key_id=key.pk,
        key_prefix=key.prefix,
        key_name=key.name,
        organization_id=key.organization_id,
        team_id=key.team_id,
        user_id=key.user_id,
        allowed_models=tuple(str(m) for m in key.allowed_models or ()),
        team_models=_models_of(key.team),
        organization_models=_models_of(key.organization),
        tags=tags,
        metadata=dict(key.metadata or {}),
        regions=regions,
        priority=priority,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        max_parallel_requests=key.max_parallel_requests,
        endpoint_limits=dict(key.endpoint_limits or {}),
        expires_at=min(e.timestamp() for e in expires) if expires else None,
        cache=_cache_settings(key),
        realtime_sessions=_realtime_sessions(key),
        guardrails=_guardrail_settings(key),
        logging=_logging_settings(key),
        debug_until=debug_until_parse((key.metadata or {}).get("debug_until")),
    )


def _models_of(tenant: Any) -> tuple[str, ...]:
    """A team's or organization's allow-list (loaded with the key's row: no query)."""
    return tuple(str(m) for m in tenant.allowed_models or ()) if tenant is not None else ()


def _routing_settings(key: Any) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
    """(tags, regions, priority) for a key: its own (`tags`, its metadata's `regions` and
    `priority`), else its team's metadata, else its organization's. The team and organization
    come with the key's row (no query)."""
    return routing_settings_resolve(
        levels=[
            {**(key.metadata or {}), "tags": key.tags},
            (key.team.metadata or {}) if key.team is not None else {},
            (key.organization.metadata or {}) if key.organization is not None else {},
        ]
    )


def _cache_settings(key: Any) -> dict[str, Any]:
    """The `cache` objects of the organization's, team's and key's metadata, merged in that order
    (the most specific wins, field by field)."""
    merged: dict[str, Any] = {}
    for owner in (key.organization, key.team, key):
        value = (owner.metadata or {}).get("cache") if owner is not None else None
        if isinstance(value, dict):
            # A bad `ignore_params` or `sampled` leaves the less specific level's standing.
            merged.update(
                (name, item) for name, item in value.items() if cache_setting_valid(name, item)
            )
    return merged


def _realtime_sessions(key: Any) -> dict[str, int]:
    """`max_realtime_sessions` of the key's, its team's and its organization's metadata: each a
    limit of its own (a whole number from 0; anything else is no limit)."""
    limits: dict[str, int] = {}
    for scope, owner in (("key", key), ("team", key.team), ("organization", key.organization)):
        value = (owner.metadata or {}).get("max_realtime_sessions") if owner is not None else None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            limits[scope] = value
    return limits


def _guardrail_settings(key: Any) -> dict[str, list[str]]:
    """The guardrails of the key's organization's, team's and own metadata (loaded with the
    key's row: no query)."""
    return guardrail_settings_resolve(
        levels=[
            (owner.metadata or {}) if owner is not None else {}
            for owner in (key.organization, key.team, key)
        ]
    )


def _logging_settings(key: Any) -> list[dict[str, Any]]:
    """LiteLLM's team and key based logging: the key's `logging` metadata, else its team's (the
    team is loaded with the key's row: no query)."""
    for owner in (key, key.team):
        value = (owner.metadata or {}).get("logging") if owner is not None else None
        if isinstance(value, list) and value:
            return [entry for entry in value if isinstance(entry, dict)]
    return []


def _caller_dump(caller: Caller | None) -> bytes:
    return orjson.dumps(asdict(caller) if caller else None)


def _caller_load(raw: bytes) -> Caller | None:
    data: dict[str, Any] | None = orjson.loads(raw)
    if data is None:
        return None
    for name in ("allowed_models", "team_models", "organization_models"):
        data[name] = tuple(data.get(name) or ())
    data["tags"] = tuple(data.get("tags") or ())
    data["regions"] = tuple(data.get("regions") or ())
    return Caller(**data)


async def _redis_get(digest: str) -> Caller | object | None:
    # On the pipelined connection when there is one (ogem_site.redis): a burst of new keys is
    # one connection and a few sends, not a connection each.
    lean = redis_lean()
    try:
        if lean is not None:
            raw = await lean.execute("GET", key_cache_entry(digest))
        else:
            raw = await redis_client().get(key_cache_entry(digest))
    except Exception as exc:
        redis_failed(exc, what="key cache")
        logger.warning("key cache: Redis unavailable, falling back to the database")
        return _NOT_FOUND
    if raw is None:
        return _NOT_FOUND
    try:
        return _caller_load(raw)
    except (orjson.JSONDecodeError, TypeError):
        return _NOT_FOUND


async def _redis_put(digest: str, prefix: str, caller: Caller | None) -> None:
    ttl = REDIS_TTL if caller else NEGATIVE_TTL
    commands = (
        ("SET", key_cache_entry(digest), _caller_dump(caller), "EX", ttl),
        ("SADD", key_cache_index(prefix), digest),
        ("EXPIRE", key_cache_index(prefix), REDIS_TTL),
    )
    lean = redis_lean()
    try:
        if lean is not None:  # written in one send
            await asyncio.gather(*(lean.execute(*command) for command in commands))
        else:
            async with redis_client().pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                await pipe.execute()
    except Exception as exc:
        redis_failed(exc, what="key cache")
        logger.warning("key cache: could not write to Redis")


# In every process that resolves keys: a key change drops its entries here (keys/cache.py has
# already deleted them from Redis); a resubscription forgets everything.
broadcast_topic_register(
    BroadcastTopic(
        name=KEYS,
        receive=lambda message: _local.drop_tags([str(p) for p in message.get("prefixes", ())]),
        resync=_local.clear,
    )
)


async def _missed_invalidations_flush() -> None:
    # A key changed while this worker could not reach Redis may still be cached there: put that
    # right before this worker reads the Redis tier again, and start from an empty process cache.
    await sync_to_async(_invalidations_flush, thread_sensitive=False)()
    _local.clear()


def _invalidations_flush() -> None:
    from django.db import close_old_connections, connection

    close_old_connections()
    try:
        key_cache_invalidations_flush()
    finally:
        connection.close()


redis_recovery_register(_missed_invalidations_flush, before_reopening=True)

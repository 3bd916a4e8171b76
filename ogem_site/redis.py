"""Every Redis client Ogem builds, the names of its keys, and what it does while Redis is away.

`REDIS_URL` says what to connect to (docs/redis.md):

- ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
  ``unix://[[user]:password@]/path[?db=N]``: one Redis server;
- ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``
  (``rediss+sentinel://`` for TLS): the master Redis Sentinel names for ``service``, followed
  across failovers;
- ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` (``rediss+cluster://``): a
  Redis Cluster, the hosts being seed nodes (the others are discovered).

Every client connects within ``OGEM_REDIS_CONNECT_TIMEOUT`` and waits at most
``OGEM_REDIS_TIMEOUT`` for a reply, and never retries by itself: a retry would pay the timeout
again, and each caller has its own fallback. The /v1 hot path talks to a plain ``redis://`` server
through the pipelined client of `ogem_site.redis_pipeline` (`redis_lean`), and to everything else
through redis-py's asyncio clients (`redis_client`).

`redis_outage` is this process's circuit breaker on Redis: the first failed command on the hot
path opens it (`redis_failed`), and until a background probe gets an answer again the hot path
uses its fallbacks at once instead of paying a timeout per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.retry import Retry

from ogem_site.hot_settings import hot_settings
from ogem_site.redis_pipeline import PipelinedRedis

logger = logging.getLogger(__name__)

SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
_SCHEMES = {
    "redis": (SERVER, False),
    "rediss": (SERVER, True),
    "unix": (SERVER, False),
    "redis+sentinel": (SENTINEL, False),
    "rediss+sentinel": (SENTINEL, True),
    "redis+cluster": (CLUSTER, False),
    "rediss+cluster": (CLUSTER, True),
}
_DEFAULT_PORTS = {SERVER: 6379, SENTINEL: 26379, CLUSTER: 6379}


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What a `REDIS_URL` points at."""

    kind: str  # SERVER, SENTINEL or CLUSTER
    url: str
    nodes: tuple[tuple[str, int], ...] = ()  # Sentinels, or a Cluster's seed nodes
    service: str = ""  # Sentinel: the monitored master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # Sentinel's own credentials (`?sentinel_username=`, `?sentinel_password=`), when it has any.
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    options: dict[str, str] = field(default_factory=dict)  # other query parameters


def redis_target(url: str) -> RedisTarget:
    """Parse a `REDIS_URL`; ValueError names what is wrong with it."""
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"REDIS_URL scheme {scheme!r} is not one of {', '.join(sorted(_SCHEMES))}")
    kind, tls = _SCHEMES[scheme]
    if kind == SERVER:
        return RedisTarget(kind=SERVER, url=url, tls=tls)
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":") if ":" in host else (host.strip(), "", "")
        if not name:
            raise ValueError(f"REDIS_URL has an empty host in {hosts!r}")
        try:
            nodes.append((name, int(port) if port else _DEFAULT_PORTS[kind]))
        except ValueError as exc:
            raise ValueError(f"REDIS_URL port {port!r} is not a number") from exc
    path = [segment for segment in parts.path.split("/") if segment]
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    service = ""
    db = 0
    if kind == SENTINEL:
        if not path or len(path) > 2:
            raise ValueError("a Sentinel REDIS_URL ends with /<service name>[/<db>]")
        service = unquote(path[0])
        db = _db_number(path[1]) if len(path) == 2 else 0
    elif path and path != ["0"]:
        raise ValueError("a Redis Cluster has only database 0: leave the REDIS_URL path empty")
    return RedisTarget(
        kind=kind,
        url=url,
        nodes=tuple(nodes),
        service=service,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=tls,
        sentinel_username=query.pop("sentinel_username", None),
        sentinel_password=query.pop("sentinel_password", None),
        options=query,
    )


def _db_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"REDIS_URL database {raw!r} is not a number") from exc


# ---- key names -----------------------------------------------------------------------------------


def redis_key(name: str) -> str:
    """`<OGEM_CACHE_PREFIX>:<name>`: every Redis key, stream and pub/sub channel Ogem writes is
    named here, so installations sharing one Redis never read or drain each other's data."""
    return f"{settings.OGEM_CACHE_PREFIX}:{name}"


def redis_slot_key(name: str) -> str:
    """The key of something the hot path's Lua scripts touch together (limit windows, parallel
    slots, budget counters, worker leases, the usage stream): a script's keys must all live on
    one node of a Redis Cluster, so there they share the hash tag ``{<prefix>}``. Elsewhere the
    name is `redis_key`'s, as it always was (no key moves for an existing installation)."""
    global _slot_prefix
    current = hot_settings()
    url = current.REDIS_URL
    prefix = current.OGEM_CACHE_PREFIX
    cached = _slot_prefix
    if cached[0] != url or cached[1] != prefix:
        cluster = bool(url) and redis_target(url).kind == CLUSTER
        cached = _slot_prefix = (url, prefix, f"{{{prefix}}}:" if cluster else f"{prefix}:")
    return cached[2] + name


_slot_prefix: tuple[str, str, str] = ("", "", "")  # (REDIS_URL, prefix, what keys start with)


# ---- clients -------------------------------------------------------------------------------------


def _timeouts() -> dict[str, Any]:
    return {
        "socket_connect_timeout": settings.OGEM_REDIS_CONNECT_TIMEOUT,
        "socket_timeout": settings.OGEM_REDIS_TIMEOUT,
    }


def _credentials(target: RedisTarget) -> dict[str, Any]:
    options: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.tls:
        options["ssl"] = True
        for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
            if name in target.options:
                options[name] = target.options[name]
    return options


def _sentinel_options(target: RedisTarget, connection: dict[str, Any]) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: `connection` (timeouts, retries), the same TLS,
    their own password."""
    options = {**_credentials(target), **connection}
    options.pop("username", None)
    options.pop("password", None)
    if target.sentinel_password:
        options["password"] = target.sentinel_password
        options["username"] = target.sentinel_username
    return options


class _AsyncCluster(aioredis.RedisCluster):
    """A Cluster client whose MGET spans slots (the routing reads do: one key per deployment)."""

    async def mget(self, keys: Any, *args: Any) -> list[Any]:  # type: ignore[override]
        return await self.mget_nonatomic(keys, *args)


class _SyncCluster(redis.RedisCluster):
    def mget(self, keys: Any, *args: Any) -> list[Any]:  # type: ignore[override]
        return self.mget_nonatomic(keys, *args)

    def mset(self, mapping: Any) -> Any:  # type: ignore[override]
        return self.mset_nonatomic(mapping)


def _async_client_new(url: str, *, command_timeout: bool = True) -> Any:
    target = redis_target(url)
    retry = {"retry": AsyncRetry(NoBackoff(), 0)}
    timeouts = _timeouts()
    if not command_timeout:
        timeouts["socket_timeout"] = None
    size = settings.OGEM_REDIS_MAX_CONNECTIONS
    if target.kind == SERVER:
        # Blocking: in a burst beyond the pool size callers wait for a connection (no longer
        # than a command may take) instead of failing at once.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=size, timeout=settings.OGEM_REDIS_TIMEOUT, **timeouts, **retry
        )
        return aioredis.Redis(connection_pool=pool)
    credentials = _credentials(target)
    if target.kind == SENTINEL:
        sentinel = aioredis.Sentinel(
            list(target.nodes),
            sentinel_kwargs=_sentinel_options(target, {**retry, **_timeouts()}),
            **timeouts,
            **retry,
        )
        return sentinel.master_for(
            target.service, db=target.db, max_connections=size, **credentials
        )
    return _AsyncCluster(
        startup_nodes=[AsyncClusterNode(host, port) for host, port in target.nodes],
        max_connections=size,
        **timeouts,
        **retry,
        **credentials,
    )


def _sync_client_new(url: str) -> Any:
    target = redis_target(url)
    retry = {"retry": Retry(NoBackoff(), 0)}
    if target.kind == SERVER:
        return redis.Redis.from_url(url, **_timeouts(), **retry)
    credentials = _credentials(target)
    if target.kind == SENTINEL:
        sentinel = redis.Sentinel(
            list(target.nodes),
            sentinel_kwargs=_sentinel_options(target, {**retry, **_timeouts()}),
            **_timeouts(),
            **retry,
        )
        return sentinel.master_for(target.service, db=target.db, **credentials)
    return _SyncCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        **_timeouts(),
        **retry,
        **credentials,
    )


# asyncio connections belong to the loop that opened them: a second loop in the same process (a
# test server thread, async_to_sync) gets its own clients instead of another loop's sockets.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_sync_clients: dict[tuple[int, str], Any] = {}
_lean_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, PipelinedRedis]] = (
    weakref.WeakKeyDictionary()
)
_lean_last: tuple[asyncio.AbstractEventLoop, str, PipelinedRedis] | None = None


def redis_client() -> Any:
    """This event loop's asyncio client of `REDIS_URL` (redis-py: a Redis, or a RedisCluster)."""
    url = settings.REDIS_URL
    loop = asyncio.get_running_loop()
    by_url = _async_clients.get(loop)
    if by_url is None:
        by_url = _async_clients[loop] = {}
    client = by_url.get(url)
    if client is None:
        client = by_url[url] = _async_client_new(url)
    return client


def redis_client_sync() -> Any:
    """This process's synchronous client of `REDIS_URL`, for the control plane, Celery and
    threads (thread-safe; a forked child builds its own)."""
    url = settings.REDIS_URL
    key = (os.getpid(), url)
    client = _sync_clients.get(key)
    if client is None:
        client = _sync_clients[key] = _sync_client_new(url)
    return client


def redis_pubsub_client() -> Any:
    """A new asyncio client for a pub/sub subscription, which the caller closes: it connects
    within the connect timeout but waits for messages as long as it takes. On a Cluster it is a
    client of one seed node (a PUBLISH reaches every node's subscribers)."""
    url = settings.REDIS_URL
    target = redis_target(url)
    if target.kind != CLUSTER:
        return _async_client_new(url, command_timeout=False)
    host, port = target.nodes[0]
    return aioredis.Redis(
        host=host,
        port=port,
        socket_connect_timeout=settings.OGEM_REDIS_CONNECT_TIMEOUT,
        retry=AsyncRetry(NoBackoff(), 0),
        **_credentials(target),
    )


def redis_lean() -> PipelinedRedis | None:
    """This event loop's pipelined connection (ogem_site/redis_pipeline.py) to `REDIS_URL`, for
    the scripts of the hot path; None unless it is a plain ``redis://`` server (TLS, Unix
    sockets, Sentinel and Cluster go through `redis_client`)."""
    global _lean_last
    url = hot_settings().REDIS_URL
    loop = asyncio.get_running_loop()
    last = _lean_last
    if last is not None and last[0] is loop and last[1] == url:
        return last[2]  # the common case: one loop, one URL, asked twice a request
    if not url.startswith("redis://"):
        return None
    by_url = _lean_clients.get(loop)
    if by_url is None:
        # A client holds its loop through its transport, so entries of closed loops (tests, a
        # finished async_to_sync) are dropped here rather than by the weak reference.
        for closed in [other for other in _lean_clients if other.is_closed()]:
            del _lean_clients[closed]
        by_url = _lean_clients[loop] = {}
    client = by_url.get(url)
    if client is None:
        client = by_url[url] = PipelinedRedis(
            url,
            connect_timeout=settings.OGEM_REDIS_CONNECT_TIMEOUT,
            timeout=settings.OGEM_REDIS_TIMEOUT,
        )
    _lean_last = (loop, url, client)
    return client


async def redis_clients_close() -> None:
    """Close this event loop's clients (a loop that ends with its task: Celery's asyncio.run)."""
    loop = asyncio.get_running_loop()
    for client in (_async_clients.pop(loop, None) or {}).values():
        await client.aclose()
    _lean_clients.pop(loop, None)


def redis_clients_forget() -> None:
    """Drop every cached client, so the next use builds one from the current settings (tests
    that change REDIS_URL or the timeouts)."""
    global _lean_last
    _async_clients.clear()
    _lean_clients.clear()
    for client in _sync_clients.values():
        client.close()
    _sync_clients.clear()
    _lean_last = None


# ---- the Django cache ----------------------------------------------------------------------------


class OgemCacheClient(DefaultClient):
    """django-redis's client on `redis_client_sync`: any `REDIS_URL` (server, Sentinel, Cluster),
    with Ogem's timeouts, one connection pool per process rather than one per thread."""

    def get_client(self, write: bool = True, tried: list[int] | None = None) -> Any:
        return redis_client_sync()

    def get_client_with_index(
        self, write: bool = True, tried: list[int] | None = None
    ) -> tuple[Any, int]:
        return redis_client_sync(), 0

    def disconnect(self, index: int = 0, client: Any = None) -> None:
        # The client is shared with the rest of the process: Django's request_finished closes
        # caches, and that must not drop the pool under other threads.
        return None

    def get_many(self, keys: Any, version: int | None = None, client: Any = None) -> dict:
        client = client or self.get_client(write=False)
        if not isinstance(client, redis.RedisCluster) or not keys:
            return super().get_many(keys, version=version, client=client)
        # A Cluster refuses MGET across slots; mget_nonatomic groups the keys by slot.
        by_key = {self.make_key(key, version=version): key for key in keys}
        try:
            values = client.mget_nonatomic(list(by_key))
        except redis.RedisError as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return {
            by_key[key]: self.decode(value)
            for key, value in zip(by_key, values, strict=True)
            if value is not None
        }


# ---- the circuit breaker -------------------------------------------------------------------------


class RedisOutage:
    """Whether this process considers Redis away, since when and why. `down` is read by every
    hot-path use of Redis, once a request each: a plain attribute, next to free."""

    __slots__ = ("down", "error", "noticed_by", "since", "spooled")

    def __init__(self) -> None:
        self.down = False
        self.since = 0.0  # unix time the outage began
        self.error = ""
        self.noticed_by = ""  # the use that noticed it first ("limits", "usage", ...)
        self.spooled = 0  # usage events this process kept in its spool during the outage


redis_outage = RedisOutage()
_probes: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
_recovery: list[Callable[[], Awaitable[None]]] = []
_reopening: list[Callable[[], Awaitable[None]]] = []


def redis_unreachable(exc: BaseException) -> bool:
    """True when `exc` says Redis cannot be reached or did not answer in time. An error reply
    (a script error, NOSCRIPT, OOM) says Redis is there, except a Cluster's CLUSTERDOWN."""
    if isinstance(exc, (redis.exceptions.ClusterDownError, redis.exceptions.RedisClusterException)):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        return False
    return isinstance(exc, (OSError, redis.exceptions.RedisError))


def redis_failed(exc: BaseException, *, what: str) -> None:
    """A Redis command of `what` failed; when Redis is unreachable, open the breaker (the hot
    path then uses its fallbacks without waiting) and probe in the background until it answers.

    redis-py times a command out by cancelling it, even when its reply arrived while the event
    loop was busy with other work (a burst of requests): with a plain ``redis://`` server its
    timeouts fail that one call but leave the verdict to the pipelined connection, whose
    timeouts look at the socket (ogem_site/redis_pipeline.py)."""
    if not redis_unreachable(exc):
        return
    if isinstance(exc, redis.exceptions.TimeoutError) and settings.REDIS_URL.startswith("redis://"):
        return
    if not redis_outage.down:
        redis_outage.down = True
        redis_outage.since = time.time()
        redis_outage.noticed_by = what
        redis_outage.spooled = 0
        logger.error("Redis unavailable (%s: %r): using the fallbacks until it answers", what, exc)
    redis_outage.error = f"{type(exc).__name__}: {exc}"[:300]
    redis_outage_watch()


def redis_outage_watch() -> None:
    """Make sure a probe runs on this event loop while Redis is away (the loop that started one
    may have ended since). Cheap: callers check `redis_outage.down` first."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = _probes.get(loop)
    if task is None or task.done():
        for ended in [other for other in _probes if other.is_closed()]:
            del _probes[ended]
        _probes[loop] = loop.create_task(_probe(), name="ogem-redis-probe")


def redis_recovery_register(
    callback: Callable[[], Awaitable[None]], *, before_reopening: bool = False
) -> None:
    """Run `callback` (in the background) each time Redis answers again after an outage; with
    `before_reopening`, before the hot path uses Redis again (what Redis missed meanwhile, such
    as a key revoked during the outage, is put right first)."""
    callbacks = _reopening if before_reopening else _recovery
    if callback not in callbacks:
        callbacks.append(callback)


async def _probe() -> None:
    while redis_outage.down:
        await asyncio.sleep(settings.OGEM_REDIS_PROBE_INTERVAL)
        try:
            await redis_ping()
        except Exception as exc:
            redis_outage.error = f"{type(exc).__name__}: {exc}"[:300]
            continue
        for check in _reopening:
            try:
                await check()
            except Exception:
                # Reopen anyway: its periodic task retries, and the hot path must not stay on
                # its fallbacks because of it.
                logger.exception("a step before using Redis again failed")
        if redis_outage.down:
            logger.warning(
                "Redis answers again after %.1f s; %d usage events spooled meanwhile",
                time.time() - redis_outage.since,
                redis_outage.spooled,
            )
            redis_outage.down = False
            for callback in _recovery:
                try:
                    await callback()
                except Exception:
                    logger.exception("a Redis recovery step failed; it runs again next time")


async def redis_ping() -> None:
    """One PING on each client the hot path uses on this loop (each within its timeouts)."""
    lean = redis_lean()
    if lean is not None:
        await lean.execute("PING")
    await redis_client().ping()


def redis_outage_reset() -> None:
    """Forget an outage (tests: the next test starts with Redis up)."""
    redis_outage.down = False
    redis_outage.since = 0.0
    redis_outage.error = redis_outage.noticed_by = ""
    redis_outage.spooled = 0
    for loop, task in _probes.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)  # a probe may run on another thread's loop
    _probes.clear()


def redis_outage_report() -> dict[str, Any] | None:
    """The outage, for the health endpoints: None while Redis answers."""
    if not redis_outage.down:
        return None
    return {
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(redis_outage.since)),
        "seconds": round(time.time() - redis_outage.since, 3),
        "noticed_by": redis_outage.noticed_by,
        "error": redis_outage.error,
        "failure_policy": settings.OGEM_REDIS_FAILURE_POLICY,
        "usage_spooled": redis_outage.spooled,
    }


# ---- what the settings give Django's cache, Channels and Celery ----------------------------------


def redis_channel_layer(target: RedisTarget, *, prefix: str) -> dict[str, Any]:
    """The Channels layer on `target`. channels_redis speaks to one server or to a Sentinel
    master, not to a Cluster: there the layer stays in process (Ogem sends nothing between
    processes through it; a WebSocket consumer's own channel works in process)."""
    config: dict[str, Any] = {"prefix": f"{prefix}:asgi"}
    if target.kind == SERVER:
        config["hosts"] = [target.url]
    elif target.kind == SENTINEL:
        host: dict[str, Any] = {
            "sentinels": list(target.nodes),
            "master_name": target.service,
            "db": target.db,
            "sentinel_kwargs": _sentinel_options(target, {}),
            **_credentials(target),
        }
        config["hosts"] = [host]
    else:
        return {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config}


def redis_broker_url(target: RedisTarget) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and transport options on `target` (kombu's Redis transport: a server,
    or a plain Sentinel); ValueError where kombu cannot follow (a Cluster, Sentinel over TLS)."""
    if target.kind == SERVER:
        return target.url, {}
    if target.kind == CLUSTER or target.tls:
        raise ValueError(
            "Celery's Redis broker cannot use this REDIS_URL (a Redis Cluster, or Sentinel over "
            "TLS): set CELERY_BROKER_URL to a plain Redis server, or another broker"
        )
    auth = f":{target.password}@" if target.password else ""
    url = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.nodes)
    options: dict[str, Any] = {"master_name": target.service}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
    return url, options

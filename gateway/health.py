"""Deployment health from live traffic: cooldowns and a circuit breaker per deployment.

Each deployment has a circuit:

- closed: traffic flows; failures are counted in a window of `window` seconds.
- open: `allowed_fails` failures in the window (or one 429 with `Retry-After`) open it for
  `cooldown` seconds (the Retry-After's seconds for a 429); the router skips the deployment.
- half-open: once the cooldown has passed, one request (the probe, claimed atomically) may use
  the deployment; its success closes the circuit, its failure opens it again.

With `REDIS_URL` the circuits live in Redis, so every worker process sees the same state: a read
is one MGET for the whole group, a failure one Lua script; successes write only when the circuit
was not already closed and clean. Without Redis, and while it is away, they live in this process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from gateway.config import config_current
from gateway.errors import GatewayError
from gateway.model_health import deployment_probe, probe_endpoint
from gateway.registry import registry_get
from gateway.strategies import strategy_name
from ogem_site.caching import LocalCache
from ogem_site.redis import (
    redis_client,
    redis_client_sync,
    redis_failed,
    redis_key,
    redis_outage,
    redis_outage_watch,
)
from providers.base import Deployment
from providers.registry import adapter_get

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


def _circuit_key(deployment_id: str) -> str:
    # The failure script reads a circuit and its probe together: one hash slot on a Cluster.
    return redis_key(f"routing:circuit:{{{deployment_id}}}")


def _probe_key(deployment_id: str) -> str:
    return redis_key(f"routing:probe:{{{deployment_id}}}")


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    allowed_fails: int = 3
    window: float = 60.0
    cooldown: float = 5.0
    probe_seconds: float = 30.0  # how long one probe holds the half-open slot


@dataclass(frozen=True, slots=True)
class Circuit:
    state: str = CLOSED
    open_until: float = 0.0  # unix time
    fails: int = 0
    since: float = 0.0  # start of the failure window

    def effective(self, now: float) -> str:
        """`open` past its cooldown reads as half-open."""
        if self.state == OPEN and now >= self.open_until:
            return HALF_OPEN
        return self.state

    def encode(self) -> str:
        return f"{self.state}|{self.open_until:.3f}|{self.fails}|{self.since:.3f}"

    @classmethod
    def decode(cls, raw: str | bytes | None) -> Circuit:
        if not raw:
            return cls()
        text = raw.decode() if isinstance(raw, bytes) else raw
        state, open_until, fails, since = text.split("|")
        return cls(state=state, open_until=float(open_until), fails=int(fails), since=float(since))


def health_policy() -> HealthPolicy:
    router = config_current().router
    default = HealthPolicy()
    return HealthPolicy(
        allowed_fails=router.allowed_fails or default.allowed_fails,
        cooldown=router.cooldown_time if router.cooldown_time is not None else default.cooldown,
    )


def circuit_after_failure(
    circuit: Circuit, *, now: float, policy: HealthPolicy, forced: float
) -> Circuit:
    """The next state after a failure; `forced` > 0 opens for that long (a 429's Retry-After)."""
    if forced > 0:
        return Circuit(state=OPEN, open_until=max(circuit.open_until, now + forced), since=now)
    if circuit.effective(now) == HALF_OPEN:
        return Circuit(state=OPEN, open_until=now + policy.cooldown, since=now)
    if circuit.state == OPEN:
        return circuit
    fails, since = circuit.fails, circuit.since
    if not since or now - since > policy.window:
        fails, since = 0, now
    fails += 1
    if fails >= policy.allowed_fails:
        return Circuit(state=OPEN, open_until=now + policy.cooldown, since=now)
    return Circuit(state=CLOSED, fails=fails, since=since)


class HealthStore(Protocol):
    async def circuits(self, ids: list[str]) -> list[Circuit]: ...
    async def failure(self, deployment_id: str, *, policy: HealthPolicy, forced: float) -> None: ...
    async def success(self, deployment_id: str) -> None: ...
    async def probe_claim(self, deployment_id: str, *, seconds: float) -> bool: ...
    async def probe_release(self, deployment_id: str) -> None: ...


class LocalHealthStore:
    def __init__(self) -> None:
        self._circuits: dict[str, Circuit] = {}
        self._probes: dict[str, float] = {}
        self._lock = threading.Lock()

    async def circuits(self, ids: list[str]) -> list[Circuit]:
        return [self._circuits.get(i) or Circuit() for i in ids]

    async def failure(self, deployment_id: str, *, policy: HealthPolicy, forced: float) -> None:
        with self._lock:
            current = self._circuits.get(deployment_id) or Circuit()
            self._circuits[deployment_id] = circuit_after_failure(
                current, now=time.time(), policy=policy, forced=forced
            )
            self._probes.pop(deployment_id, None)

    async def success(self, deployment_id: str) -> None:
        with self._lock:
            self._circuits.pop(deployment_id, None)
            self._probes.pop(deployment_id, None)

    async def probe_claim(self, deployment_id: str, *, seconds: float) -> bool:
        now = time.time()
        with self._lock:
            if self._probes.get(deployment_id, 0.0) > now:
                return False
            self._probes[deployment_id] = now + seconds
            return True

    async def probe_release(self, deployment_id: str) -> None:
        with self._lock:
            self._probes.pop(deployment_id, None)

    def clear(self) -> None:
        with self._lock:
            self._circuits.clear()
            self._probes.clear()


# The same transition as circuit_after_failure, atomically in Redis.
_FAILURE_LUA = """
local raw = redis.call('GET', KEYS[1])
local now = tonumber(ARGV[1]); local window = tonumber(ARGV[2])
local allowed = tonumber(ARGV[3]); local cooldown = tonumber(ARGV[4])
local forced = tonumber(ARGV[5]); local ttl = tonumber(ARGV[6])
local state, open_until, fails, since = 'closed', 0, 0, 0
if raw then
  local s, o, f, w = string.match(raw, '([^|]+)|([^|]+)|([^|]+)|([^|]+)')
  state, open_until, fails, since = s, tonumber(o), tonumber(f), tonumber(w)
end
if forced > 0 then
  state = 'open'; open_until = math.max(open_until, now + forced); fails = 0; since = now
elseif state == 'open' and now >= open_until then
  state = 'open'; open_until = now + cooldown; fails = 0; since = now
elseif state ~= 'open' then
  if since == 0 or now - since > window then fails = 0; since = now end
  fails = fails + 1
  if fails >= allowed then state = 'open'; open_until = now + cooldown; fails = 0; since = now end
end
redis.call('SET', KEYS[1], string.format('%s|%.3f|%d|%.3f', state, open_until, fails, since),
  'EX', ttl)
redis.call('DEL', KEYS[2])
return state
"""


class RedisHealthStore:
    """Circuits in Redis, read through a short per-process cache: a busy group costs one MGET
    per `cache_seconds` rather than one per request. This process's own writes drop its cache
    entry at once; other workers see a change within `cache_seconds`. A Redis failure opens
    Ogem's Redis breaker (ogem_site.redis) and the call goes to this process's store."""

    cache_seconds = 0.25

    def __init__(self) -> None:
        self._cache: LocalCache[str, Circuit] = LocalCache(maxsize=10_000, ttl=self.cache_seconds)

    async def circuits(self, ids: list[str]) -> list[Circuit]:
        cached = [self._cache.get(i) for i in ids]
        if all(hit is not None for hit in cached):
            return cached  # type: ignore[return-value]
        try:
            raw = await redis_client().mget([_circuit_key(i) for i in ids])
        except Exception as exc:
            redis_failed(exc, what="routing circuits")
            return await local_health.circuits(ids)
        circuits = [Circuit.decode(value) for value in raw]
        for deployment_id, circuit in zip(ids, circuits, strict=True):
            self._cache.set(deployment_id, circuit)
        return circuits

    async def failure(self, deployment_id: str, *, policy: HealthPolicy, forced: float) -> None:
        self._cache.pop(deployment_id)
        ttl = int(max(policy.window, policy.cooldown, forced) * 2 + 60)
        try:
            await redis_client().eval(
                _FAILURE_LUA,
                2,
                _circuit_key(deployment_id),
                _probe_key(deployment_id),
                f"{time.time():.3f}",
                policy.window,
                policy.allowed_fails,
                policy.cooldown,
                forced,
                ttl,
            )
        except Exception as exc:
            redis_failed(exc, what="routing circuits")
            await local_health.failure(deployment_id, policy=policy, forced=forced)

    async def success(self, deployment_id: str) -> None:
        self._cache.pop(deployment_id)
        try:
            await redis_client().delete(_circuit_key(deployment_id), _probe_key(deployment_id))
        except Exception as exc:
            redis_failed(exc, what="routing circuits")
            await local_health.success(deployment_id)

    async def probe_claim(self, deployment_id: str, *, seconds: float) -> bool:
        try:
            claimed = await redis_client().set(
                _probe_key(deployment_id), "1", nx=True, px=int(seconds * 1000)
            )
        except Exception as exc:
            redis_failed(exc, what="routing circuits")
            return await local_health.probe_claim(deployment_id, seconds=seconds)
        return bool(claimed)

    async def probe_release(self, deployment_id: str) -> None:
        try:
            await redis_client().delete(_probe_key(deployment_id))
        except Exception as exc:
            redis_failed(exc, what="routing circuits")
            await local_health.probe_release(deployment_id)


local_health = LocalHealthStore()
_redis_health = RedisHealthStore()


def health_store() -> HealthStore:
    """Redis when REDIS_URL is set and answers, else this process's store (read per call: tests
    switch it)."""
    if not settings.REDIS_URL:
        return local_health
    if redis_outage.down:
        redis_outage_watch()
        return local_health
    return _redis_health


async def health_available(
    deployments: tuple[Deployment, ...],
) -> tuple[list[Deployment], dict[str, Circuit], float]:
    """The deployments whose circuit is closed or half-open, every circuit read, and (when none
    is) the seconds until the first cooldown ends. One read for the whole group.

    A half-open deployment may serve only the request that claims its probe
    (`health_probe_claim`), so the caller claims it once it chose it.
    """
    circuits = await health_store().circuits([d.id for d in deployments])
    now = time.time()
    usable: list[Deployment] = []
    states: dict[str, Circuit] = {}
    soonest = float("inf")
    for deployment, circuit in zip(deployments, circuits, strict=True):
        states[deployment.id] = circuit
        if circuit.effective(now) == OPEN:
            soonest = min(soonest, circuit.open_until - now)
        else:
            usable.append(deployment)
    return usable, states, (0.0 if usable else max(soonest, 0.0))


async def health_probe_claim(
    deployment: Deployment, *, circuit: Circuit | None, policy: HealthPolicy
) -> bool:
    """True when this request may use the deployment: its circuit is closed, or it is half-open
    and this request won the probe."""
    if not _probing(circuit):
        return True
    return await health_store().probe_claim(deployment.id, seconds=policy.probe_seconds)


async def health_probe_release(deployment: Deployment, *, circuit: Circuit | None) -> None:
    """Give back a probe this request claimed but will not use (the deployment was at its own
    limits), so another request may probe at once rather than after the probe's lease."""
    if _probing(circuit):
        await health_store().probe_release(deployment.id)


def _probing(circuit: Circuit | None) -> bool:
    # Half-open stays half-open as time passes, so a claim and its release agree.
    return circuit is not None and circuit.effective(time.time()) == HALF_OPEN


async def health_failure(deployment: Deployment, *, policy: HealthPolicy, forced: float) -> None:
    await health_store().failure(deployment.id, policy=policy, forced=forced)


async def health_success(deployment: Deployment, *, circuit: Circuit | None) -> None:
    """Close a deployment's circuit after a success, writing only when it was not clean."""
    if circuit is None or (circuit.state == CLOSED and circuit.fails == 0):
        return
    await health_store().success(deployment.id)


def _circuits_sync(ids: list[str]) -> list[Circuit]:
    """The circuits, read synchronously (control plane: REST, admin, Celery)."""
    if not settings.REDIS_URL:
        return [local_health._circuits.get(i) or Circuit() for i in ids]
    raw = redis_client_sync().mget([_circuit_key(i) for i in ids])
    return [Circuit.decode(value) for value in raw]


def health_status(deployments: list[Deployment]) -> list[dict[str, object]]:
    """Every deployment's circuit, for the status API, admin and the health-check task."""
    if not deployments:
        return []
    circuits = _circuits_sync([d.id for d in deployments])
    now = time.time()
    return [
        {
            "deployment": d.id,
            "model": d.model_name,
            "provider": d.provider,
            "region": d.region,
            "priority": d.priority,
            "weight": d.weight,
            "state": c.effective(now),
            "failures": c.fails,
            "open_for_seconds": round(max(c.open_until - now, 0.0), 3) if c.state == OPEN else 0.0,
        }
        for d, c in zip(deployments, circuits, strict=True)
    ]


def routing_status(*, organization_ids: set[int] | None) -> dict[str, object]:
    """Every model group with its strategy, fallbacks and circuits. `organization_ids` None:
    everything (proxy admin); else shared deployments plus those organizations' own."""

    router = config_current().router
    groups = []
    for name, group in registry_get().by_model.items():
        visible = [
            d
            for d in group
            if organization_ids is None
            or d.organization_id is None
            or d.organization_id in organization_ids
        ]
        if not visible:
            continue
        groups.append(
            {
                "model": name,
                "strategy": strategy_name(group=name, deployments=tuple(visible)),
                "fallbacks": list(router.fallbacks.get(name, router.default_fallbacks)),
                "context_window_fallbacks": list(router.context_window_fallbacks.get(name, ())),
                "content_policy_fallbacks": list(router.content_policy_fallbacks.get(name, ())),
                "deployments": health_status(visible),
            }
        )
    policy = health_policy()
    return {
        "router": {
            "num_retries": router.num_retries or 0,
            "timeout": router.timeout,
            "allowed_fails": policy.allowed_fails,
            "cooldown_time": policy.cooldown,
            "failure_window": policy.window,
        },
        "groups": groups,
    }


async def health_check_run() -> dict[str, int]:
    """Active health checks: one small real request (gateway/model_health.py's, through each
    deployment's own kind of endpoint) to every deployment whose circuit is not closed; a success
    closes the circuit (the deployment is back before live traffic has to probe it), a failure
    keeps or reopens it. Closed deployments are left to passive health, so healthy upstreams
    cost nothing. Returns counts by outcome."""
    deployments = list(registry_get().by_id.values())
    if not deployments:
        return {"checked": 0, "recovered": 0, "failed": 0}
    store = health_store()
    circuits = await store.circuits([d.id for d in deployments])
    policy = health_policy()
    counts = {"checked": 0, "recovered": 0, "failed": 0}
    for deployment, circuit in zip(deployments, circuits, strict=True):
        if circuit.state == CLOSED:
            continue
        adapter = adapter_get(deployment.provider)
        endpoint = probe_endpoint(deployment, adapter) if adapter is not None else None
        if adapter is None or endpoint is None:
            continue
        counts["checked"] += 1
        try:
            await deployment_probe(deployment=deployment, adapter=adapter, endpoint=endpoint)
        except GatewayError:
            counts["failed"] += 1
            await store.failure(deployment.id, policy=policy, forced=0.0)
            continue
        counts["recovered"] += 1
        await store.success(deployment.id)
    return counts

"""The response cache's semantic tier: a request whose exact key missed may be answered by a
stored answer to a prompt that means the same (docs/caching.md#the-semantic-tier).

- **Plan** (`semantic_plan`, with the exact cache's plan): the text to embed is the last user
  message (or the completion's prompt); everything else that can change the answer (the earlier
  messages, the last message's other parts, every other body field but the exact key's
  exclusions) is hashed, with the endpoint and model group, into the entry's **partition**. Only
  entries of the caller's tenant scope, namespace and partition are ever compared, so a different
  temperature, tool list or system prompt never matches.
- **Lookup** (`semantic_lookup`, after the exact tiers missed): the prompt is embedded by the
  configured embedding model group through Ogem's own /v1 pipeline on the caller's behalf (its
  cost and RequestLog row are the caller's), bounded by `timeout`; the partition's vector index
  gives the nearest stored prompt; at `similarity_threshold` or above its answer is served like an
  exact hit (`x-ogem-cache: semantic-hit`, `x-ogem-cache-similarity`).
- **Store** (`SemanticPlan.keep`, from `cache_store`): a complete answer is indexed in this
  process at once, with the lookup's embedding, and queued for the database; a background task
  writes the queue in batches, then broadcasts the new entries to the other workers.
- **Every worker** holds one `gateway.vectors.VectorIndex` per partition, rebuilt from the
  database in the background on its first semantic request (lookups miss until then), kept in
  step by the `semantic_cache` broadcast topic, and caught up by id every few seconds so that a
  lost message heals. Answers are read from the database on a hit and kept in a bounded LRU.
- **Failures** (the embedding call, the database, Redis) serve the request uncached, counted in
  `ogem_cache_semantic_errors_total`; never an error to the caller.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.http import HttpResponse

from gateway.cache import (
    ERROR,
    MISS,
    NOT_IN_KEY,
    SEMANTIC_HIT,
    CachePlan,
    cache_respond,
    owner_cache_settings,
)
from gateway.config.types import SemanticCacheSettings
from gateway.context import Caller, RequestContext
from ogem_site.broadcast import SEMANTIC_CACHE, BroadcastTopic, broadcast_topic_register
from ogem_site.caching import BytesLRU
from ogem_site.metrics import (
    CACHE_SEMANTIC_ENTRIES,
    cache_request_record,
    cache_semantic_error_record,
)
from providers.base import Endpoint

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# Candidates asked of the index: the nearest may be expired or gone, the next ones answer then.
_CANDIDATES = 4
_CATCH_UP_SECONDS = 10.0  # how often a worker reads entries it may have missed
_CATCH_UP_SLACK = 1000  # ids below the highest seen that are read again (commits out of order)
_SWEEP_SECONDS = 60.0  # how often a worker drops expired entries from its indexes
_LOAD_BATCH = 2000
# usearch's insert threads for a rebuild's new indexes (it releases the GIL, so the event loop
# goes on serving meanwhile): half the cores, at most 4, leaving the others to the workers.
_REBUILD_THREADS = max(1, min((os.cpu_count() or 1) // 2, 4))
_WRITE_BATCH = 200
_QUEUE_MAX = 10_000  # entries waiting for the database; past it new ones are dropped (counted)
_BROADCAST_BATCH = 100
_FETCH_TIMEOUT = 2.0  # seconds a hit waits for its answer from the database
_RETRY_SECONDS = 5.0  # after a failed load, before the next try
_BODIES_MAX_BYTES = 32 * 1024 * 1024  # answers kept in process (per process)

# The embedding call: gateway.internal.internal_call, set by gateway/apps.py (it runs the /v1
# pipeline, which runs this module: importing it here would be a cycle).
Embedder = Callable[..., Awaitable[Any]]
_embedder: Embedder | None = None


def semantic_embedder_set(embedder: Embedder) -> None:
    global _embedder
    _embedder = embedder


# ---- the plan ------------------------------------------------------------------------------------


@dataclass(slots=True)
class SemanticPlan:
    """What the semantic tier does for one request."""

    settings: SemanticCacheSettings
    text: str  # what is embedded
    space: tuple[str, str]  # (tenant scope, namespace)
    partition: str  # endpoint, model group and every other field, hashed
    threshold: float
    organization_id: int | None
    group: str
    vector: np.ndarray | None = None
    failed: bool = False  # the embedding call failed: nothing is looked up nor stored
    similarity: float | None = None

    def keep(self, ctx: RequestContext, raw: bytes, *, now: float, ttl: float) -> None:
        """Store a complete answer (`cache_store` calls this once it decided to store)."""
        if self.failed:
            return
        if self.vector is not None:
            _entry_add_new(self, raw, now=now, ttl=ttl)
            return
        # Not looked up (`no-cache`): embed after the answer left, then store.
        task = asyncio.get_running_loop().create_task(_embed_then_keep(ctx, self, raw, now, ttl))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


def semantic_plan(
    ctx: RequestContext, *, settings: SemanticCacheSettings, body: Mapping[str, Any]
) -> None:
    """Attach the semantic plan to the exact cache's plan, when this request can use the tier."""
    plan: CachePlan | None = ctx.cache
    if plan is None or ctx.endpoint.value not in settings.endpoints:
        return
    candidates = ctx.candidates
    group_setting = (
        (candidates[0].params.get("model_info") or {}).get("cache") if candidates else None
    )
    threshold = settings.similarity_threshold
    for setting in (group_setting, owner_cache_settings(ctx)):
        if not isinstance(setting, dict):
            continue
        if setting.get("semantic") is False:
            return
        value = setting.get("similarity_threshold")
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
            threshold = float(value)
    split = _prompt_split(ctx.endpoint, body)
    if split is None:
        return
    text, context = split
    fields = {
        name: value
        for name, value in body.items()
        if name not in NOT_IN_KEY and name not in ("messages", "prompt")
    }
    group = plan.labels[0]
    try:
        canonical = orjson.dumps(
            [ctx.endpoint.value, group, fields, context], option=orjson.OPT_SORT_KEYS
        )
    except (TypeError, orjson.JSONEncodeError):
        return
    plan.semantic = SemanticPlan(
        settings=settings,
        text=text,
        space=(plan.scope, plan.namespace),
        partition=hashlib.blake2b(canonical, digest_size=20).hexdigest(),
        threshold=threshold,
        organization_id=ctx.caller.organization_id,
        group=group,
    )


def _prompt_split(endpoint: Endpoint, body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """(the text to embed, what else the prompt holds), or None when there is no text prompt."""
    if endpoint == Endpoint.COMPLETIONS:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if isinstance(prompt, str) and prompt.strip():
            return prompt, None
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None  # a tool result or an assistant prefill: only the exact key is safe
    content = last.get("content")
    others: list[Any] = []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            else:
                others.append(part)  # an image or a file: part of the partition, exactly
        text = "\n".join(texts)
    else:
        return None
    if not text.strip():
        return None
    extra = {name: value for name, value in last.items() if name not in ("content", "role")}
    return text, [messages[:-1], others, extra]


# ---- the lookup ----------------------------------------------------------------------------------


async def semantic_lookup(ctx: RequestContext) -> dict[str, Any] | None:
    """The stored answer whose prompt is nearest this one's, at the threshold or above, or None
    (counted as a miss, or an error when a tier or the embedding call failed)."""
    plan: CachePlan = ctx.cache
    semantic: SemanticPlan = plan.semantic
    found: dict[str, Any] | None = None
    _maintain(semantic.settings)  # the first lookup starts the rebuild, beside its embedding
    vector = await _embed(ctx, semantic)
    if vector is not None:
        found = await _search(ctx, semantic, vector)
    if found is None:
        model, organization, team = plan.labels
        result = ERROR if (plan.failed or semantic.failed) else MISS
        cache_request_record(result=result, model=model, organization=organization, team=team)
    return found


def semantic_respond(
    ctx: RequestContext, response: dict[str, Any], headers: dict[str, str]
) -> HttpResponse:
    """Answer a semantic hit as an exact one is answered, with its similarity."""
    ctx.cache_similarity = ctx.cache.semantic.similarity
    return cache_respond(ctx, response, headers, result=SEMANTIC_HIT)


async def _embed(ctx: RequestContext, semantic: SemanticPlan) -> np.ndarray | None:
    """The prompt's embedding, normalised, or None (the failure counted)."""
    if _embedder is None:  # gateway.internal not imported: no /v1 view in this process
        cache_semantic_error_record(operation="embed")
        semantic.failed = True
        return None
    import numpy as np  # on use: a process without the tier never loads it

    settings = semantic.settings
    body = {"model": settings.model, "input": semantic.text}
    try:
        answer = await asyncio.wait_for(
            _embedder(
                caller=embedding_caller(ctx.caller, settings.model),
                endpoint=Endpoint.EMBEDDINGS,
                body=body,
            ),
            timeout=settings.timeout,
        )
        if not answer.ok:
            raise _EmbedError(f"{answer.status}: {answer.body.get('error', {}).get('message')}")
        values = answer.body["data"][0]["embedding"]
        vector = np.asarray(values, dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        if vector.ndim != 1 or not vector.size or not norm or not np.isfinite(norm):
            raise _EmbedError("not a usable vector")
    except Exception as exc:  # whatever failed, the request goes on uncached
        logger.warning(
            "semantic cache: embedding with %s failed (%s: %s)",
            settings.model,
            type(exc).__name__,
            exc,
        )
        cache_semantic_error_record(operation="embed")
        semantic.failed = True
        return None
    vector /= norm
    semantic.vector = vector
    return vector


class _EmbedError(Exception):
    pass


def embedding_caller(caller: Caller, model: str) -> Caller:
    """The caller, allowed the embedding model group: the operator chose it (for the cache, for
    vector stores), so a key limited to chat models still has its texts embedded (and pays for
    them)."""
    changes: dict[str, tuple[str, ...]] = {}
    for name in ("allowed_models", "team_models", "organization_models"):
        models: tuple[str, ...] = getattr(caller, name)
        if models and model not in models:
            changes[name] = (*models, model)
    return replace(caller, **changes) if changes else caller


async def _embed_then_keep(
    ctx: RequestContext, semantic: SemanticPlan, raw: bytes, now: float, ttl: float
) -> None:
    if await _embed(ctx, semantic) is not None:
        _entry_add_new(semantic, raw, now=now, ttl=ttl)


async def _search(
    ctx: RequestContext, semantic: SemanticPlan, vector: np.ndarray
) -> dict[str, Any] | None:
    if not _state.ready:
        return None
    partition = _live.partitions.get((*semantic.space, semantic.partition))
    if partition is None:
        return None
    if partition.dimensions != vector.shape[0]:
        return None  # the embedding model changed: its old entries cannot be compared
    nearest = partition.index.search(vector, k=_CANDIDATES)  # the index's own lock
    now = time.time()
    for label, similarity in nearest:
        if similarity < semantic.threshold:
            break
        expires = partition.expires.get(label)
        if expires is None or expires <= now:
            continue
        raw = await _body(label)
        if raw is None:
            continue
        try:
            entry = orjson.loads(raw)
            stored, response = float(entry["t"]), entry["r"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        age = max(now - stored, 0.0)
        max_age = ctx.cache.max_age
        if max_age is not None and age > max_age:
            continue
        ctx.cache_age = age
        latency = entry.get("l")
        ctx.cache_saved_latency_ms = latency if isinstance(latency, int) else None
        semantic.similarity = float(similarity)
        return response
    return None


async def _body(label: int) -> bytes | None:
    """An entry's stored JSON: this process's LRU, else the database (a cold read)."""
    raw = _bodies.get(label)
    if raw is not None:
        return raw
    from gateway.selectors import semantic_cache_entry_get

    try:
        read = sync_to_async(_in_thread, thread_sensitive=False)
        raw = await asyncio.wait_for(
            read(semantic_cache_entry_get, label=label), timeout=_FETCH_TIMEOUT
        )
    except Exception as exc:
        logger.warning("semantic cache: could not read entry %s (%s)", label, type(exc).__name__)
        cache_semantic_error_record(operation="fetch")
        return None
    if raw is None:  # deleted (a purge this process missed, or expired): forget it
        _entries_remove([label])
        return None
    _bodies.set(label, raw, ttl=3600)
    return raw


def _in_thread(function: Callable[..., Any], /, **kwargs: Any) -> Any:
    from django.db import close_old_connections, connection

    close_old_connections()
    try:
        return function(**kwargs)
    finally:
        connection.close()  # a worker thread of its own: hand its connection back


# ---- this process's indexes ----------------------------------------------------------------------


PartitionKey = tuple[str, str, str]  # (scope, namespace, partition)


@dataclass(slots=True)
class _Partition:
    index: Any  # gateway.vectors.VectorIndex
    dimensions: int
    expires: dict[int, float] = field(default_factory=dict)  # label -> unix deadline


@dataclass(slots=True)
class _State:
    ready: bool = False  # the database's entries are indexed: lookups may hit
    generation: int = 0  # bumped by a reset: a load of an older generation stops
    last_id: int = 0  # the highest database id indexed (catch-up reads above it, less a slack)
    loader: asyncio.Task[None] | None = None
    failed_at: float = 0.0
    caught_up_at: float = 0.0
    swept_at: float = 0.0
    max_entries: int = SemanticCacheSettings(model="").max_entries
    max_index_bytes: int = SemanticCacheSettings(model="").max_index_bytes
    rebuilding: bool = False  # a full load fills new indexes in a thread


_lock = threading.RLock()  # `_live`: searched on the event loop, changed by broadcasts too
_state = _State()
_bodies = BytesLRU(max_bytes=_BODIES_MAX_BYTES)
_tasks: set[asyncio.Task[Any]] = set()
# Labels dropped by the bound, whose rows may wait for the expiry task: a catch-up must not bring
# them back (bounded: forgotten wholesale past _EVICTED_MAX).
_EVICTED_MAX = 200_000

Entry = tuple[int, PartitionKey, "np.ndarray", float]  # (label, partition, vector, expires)


def _index_new(dimensions: int) -> Any:
    from gateway.vectors import VectorIndex  # on use: a process without the tier never loads it

    return VectorIndex(dimensions=dimensions, capacity=1024)


class _Indexes:
    """One process's vector indexes: one per partition, and what the bounds need."""

    def __init__(self) -> None:
        self.partitions: dict[PartitionKey, _Partition] = {}
        # (scope, namespace) -> label -> its partition, oldest first: the per-namespace bound.
        self.spaces: dict[tuple[str, str], OrderedDict[int, PartitionKey]] = {}
        self.labels: dict[int, PartitionKey] = {}
        self.evicted: set[int] = set()
        self._memory = (0, 0.0)  # (bytes, when they were summed)

    def memory_bytes(self) -> int:
        """The indexes' memory, summed at most once a second (a rebuild makes many partitions)."""
        now = time.monotonic()
        if now - self._memory[1] >= 1.0:
            total = sum(partition.index.memory_bytes() for partition in self.partitions.values())
            self._memory = (total, now)
        return self._memory[0]

    def add(self, entries: list[Entry], *, threads: int = 1) -> int:
        """Index the entries not indexed yet; how many were new. `threads`: usearch's insert
        threads (a rebuild's indexes, searched by nobody yet)."""
        now = time.time()
        fresh: dict[PartitionKey, list[tuple[int, np.ndarray, float]]] = {}
        for label, key, vector, expires in entries:
            if label not in self.labels and label not in self.evicted and expires > now:
                fresh.setdefault(key, []).append((label, vector, expires))
        added = 0
        for key, items in fresh.items():
            partition = self.partitions.get(key)
            dimensions = items[0][1].shape[0]
            if partition is None:
                if self.partitions and self.memory_bytes() >= _state.max_index_bytes:
                    continue  # this process's bound: the entries wait in the database
                partition = self.partitions[key] = _Partition(
                    index=_index_new(dimensions), dimensions=dimensions
                )
            items = [item for item in items if item[1].shape[0] == partition.dimensions]
            if not items:
                continue
            partition.index.add_many(
                [item[0] for item in items], [item[1] for item in items], threads=threads
            )
            space = self.spaces.setdefault((key[0], key[1]), OrderedDict())
            for label, _, expires in items:
                partition.expires[label] = expires
                self.labels[label] = key
                space[label] = key
            added += len(items)
            while len(space) > _state.max_entries:
                oldest, _ = space.popitem(last=False)
                self.forget(oldest)
                if len(self.evicted) >= _EVICTED_MAX:
                    self.evicted.clear()
                self.evicted.add(oldest)
        return added

    def migrate_all(self, *, threads: int) -> None:
        """Every partition's index wholly in its graph (a rebuild's, before it goes live)."""
        for partition in self.partitions.values():
            partition.index.migrate_all(threads=threads)

    def forget(self, label: int) -> None:
        key = self.labels.pop(label, None)
        if key is None:
            return
        partition = self.partitions.get(key)
        if partition is not None:
            partition.index.remove(label)
            partition.expires.pop(label, None)
            if not partition.expires:
                del self.partitions[key]
        space = self.spaces.get((key[0], key[1]))
        if space is not None:
            space.pop(label, None)
            if not space:
                del self.spaces[(key[0], key[1])]
        _bodies.pop(label)

    def drop(self, match: Callable[[PartitionKey], bool]) -> None:
        for label in [label for label, key in self.labels.items() if match(key)]:
            self.forget(label)

    def expired(self, now: float) -> list[int]:
        return [
            label
            for partition in self.partitions.values()
            for label, expires in partition.expires.items()
            if expires <= now
        ]


_live = _Indexes()
# While a rebuild fills its own `_Indexes` in a thread, what changed the live ones meanwhile,
# replayed onto the new ones before they replace the live ones.
_rebuild_adds: list[list[Entry]] = []
_rebuild_drops: list[Callable[[PartitionKey], bool]] = []
_rebuild_removes: set[int] = set()


def _entries_add(entries: list[Entry]) -> int:
    """Index entries (label, partition, vector, expires) in this process; how many were new."""
    with _lock:
        if _state.rebuilding:
            _rebuild_adds.append(entries)
        added = _live.add(entries)
        size = len(_live.labels)
    if added:
        CACHE_SEMANTIC_ENTRIES.set(size)
    return added


def _entries_remove(labels: list[int]) -> None:
    with _lock:
        if _state.rebuilding:
            _rebuild_removes.update(labels)
        for label in labels:
            _live.forget(label)
        size = len(_live.labels)
    CACHE_SEMANTIC_ENTRIES.set(size)


def _partitions_drop(match: Callable[[PartitionKey], bool]) -> None:
    with _lock:
        if _state.rebuilding:
            _rebuild_drops.append(match)
        _live.drop(match)
        size = len(_live.labels)
    CACHE_SEMANTIC_ENTRIES.set(size)


def semantic_index_reset() -> None:
    """Forget every indexed entry; the next semantic request rebuilds from the database (tests,
    and a broadcast subscription that may have missed messages)."""
    global _live
    with _lock:
        _live = _Indexes()
        _bodies.clear()
        _rebuild_adds.clear()
        _rebuild_drops.clear()
        _rebuild_removes.clear()
        _state.ready = False
        _state.rebuilding = False
        _state.generation += 1
        _state.last_id = 0
        _state.loader = None
        _state.failed_at = 0.0
    CACHE_SEMANTIC_ENTRIES.set(0)


def semantic_index_size() -> int:
    return len(_live.labels)


def semantic_index_ready() -> bool:
    """Whether this process has indexed the database's entries (lookups may hit)."""
    return _state.ready


def semantic_catch_up_soon() -> None:
    """Make the next lookup read the entries this process may have missed (tests)."""
    _state.caught_up_at = 0.0


def semantic_idle() -> bool:
    """No entry of this process waits to be embedded or written (tests poll it from another
    thread)."""
    running = [task for task in (*_tasks, *_flushers.values()) if not task.done()]
    return not _queue and not running


def _entry_add_new(semantic: SemanticPlan, raw: bytes, *, now: float, ttl: float) -> None:
    """A new answer: indexed here at once, its answer kept, its row queued for the database."""
    assert semantic.vector is not None
    label = secrets.randbits(63)
    key: PartitionKey = (*semantic.space, semantic.partition)
    expires = now + ttl
    _bodies.set(label, raw, ttl=ttl)
    _entries_add([(label, key, semantic.vector, expires)])
    row = {
        "label": label,
        "organization_id": semantic.organization_id,
        "scope": key[0],
        "namespace": key[1],
        "partition": key[2],
        "model": semantic.group[:200],
        "vector": semantic.vector.astype("<f4").tobytes(),
        "entry": raw,
        "created_at": datetime.fromtimestamp(now, tz=UTC),
        "expires_at": datetime.fromtimestamp(expires, tz=UTC),
    }
    if len(_queue) >= _QUEUE_MAX:
        cache_semantic_error_record(operation="dropped")
        return
    _queue.append(row)
    _flush_start()


# ---- keeping the indexes in step: load, catch-up, sweep, broadcast -------------------------------


def _maintain(settings: SemanticCacheSettings) -> None:
    """On a lookup: start the rebuild if this process has none, catch up and sweep when due."""
    _state.max_entries = settings.max_entries
    _state.max_index_bytes = settings.max_index_bytes
    now = time.monotonic()
    loader = _state.loader
    loop = asyncio.get_running_loop()
    running = loader is not None and not loader.done() and loader.get_loop() is loop
    if running:
        return
    if not _state.ready:
        if now - _state.failed_at < _RETRY_SECONDS:
            return
        _state.loader = _spawn(_load(_state.generation, full=True))
    elif now - _state.caught_up_at >= _CATCH_UP_SECONDS:
        _state.caught_up_at = now
        _state.loader = _spawn(_load(_state.generation, full=False))
    if _state.ready and now - _state.swept_at >= _SWEEP_SECONDS:
        _state.swept_at = now
        _sweep()
        if not django_settings.REDIS_URL:  # no Celery beat: this process deletes the rows
            _spawn(_expire_rows(settings.max_entries))


def _spawn(coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def _load(generation: int, *, full: bool) -> None:
    """Index the database's entries above what this process has (all of them on a rebuild), in
    a worker thread: reading and indexing thousands of rows never holds up the event loop."""
    after = 0 if full else max(_state.last_id - _CATCH_UP_SLACK, 0)
    if full:
        with _lock:  # from now on, what changes the live indexes is replayed onto the new ones
            _state.rebuilding = True
            _rebuild_adds.clear()
            _rebuild_drops.clear()
            _rebuild_removes.clear()
    try:
        await sync_to_async(_load_in_thread, thread_sensitive=False)(generation, after, full)
    except Exception as exc:
        logger.warning("semantic cache: could not read entries (%s)", type(exc).__name__)
        cache_semantic_error_record(operation="load")
        _state.failed_at = time.monotonic()
        with _lock:
            if generation == _state.generation:
                _state.rebuilding = False
                _rebuild_adds.clear()
                _rebuild_drops.clear()
                _rebuild_removes.clear()
        return
    if generation == _state.generation and full:
        _state.caught_up_at = time.monotonic()


def _load_in_thread(generation: int, after: int, full: bool) -> None:
    """A catch-up adds to the live indexes; a rebuild fills new ones, without the lock (lookups
    and new entries go on meanwhile), then replays what changed meanwhile and swaps them in."""
    global _live
    from django.db import close_old_connections, connection

    from gateway.selectors import semantic_cache_entries_after

    target = _Indexes() if full else None
    close_old_connections()
    try:
        while generation == _state.generation:  # a reset meanwhile: a newer load takes over
            rows = semantic_cache_entries_after(
                after_id=after, limit=_LOAD_BATCH, now=datetime.now(tz=UTC)
            )
            entries = [_row_entry(row) for row in rows]
            if target is not None:
                target.add(entries, threads=_REBUILD_THREADS)
            else:
                _entries_add(entries)
            if rows:
                after = rows[-1]["id"]
                _state.last_id = max(_state.last_id, after)
            if len(rows) < _LOAD_BATCH:
                break
    finally:
        connection.close()
    if target is None:
        return
    target.migrate_all(threads=_REBUILD_THREADS)
    with _lock:
        if generation != _state.generation:
            return
        for added in _rebuild_adds:
            target.add(added)
        for match in _rebuild_drops:
            target.drop(match)
        for label in _rebuild_removes:
            target.forget(label)
        _rebuild_adds.clear()
        _rebuild_drops.clear()
        _rebuild_removes.clear()
        _live = target
        _state.rebuilding = False
        _state.ready = True
        size = len(target.labels)
    CACHE_SEMANTIC_ENTRIES.set(size)


async def _expire_rows(max_entries: int) -> None:
    from gateway.services import semantic_cache_expire

    try:
        await sync_to_async(_in_thread, thread_sensitive=False)(
            semantic_cache_expire, now=datetime.now(tz=UTC), max_entries=max_entries
        )
    except Exception as exc:
        logger.warning("semantic cache: could not delete expired entries (%s)", exc)


def _row_entry(row: Mapping[str, Any]) -> tuple[int, PartitionKey, np.ndarray, float]:
    import numpy as np

    vector = np.frombuffer(bytes(row["vector"]), dtype="<f4")
    key = (row["scope"], row["namespace"], row["partition"])
    return row["label"], key, vector, row["expires_at"].timestamp()


def _sweep() -> None:
    with _lock:
        for label in _live.expired(time.time()):
            _live.forget(label)
        size = len(_live.labels)
    CACHE_SEMANTIC_ENTRIES.set(size)


def _receive(message: dict[str, Any]) -> None:
    if message.get("op") == "add":
        import numpy as np

        entries = []
        for item in message.get("entries") or ():
            try:
                vector = np.frombuffer(base64.b64decode(item["v"]), dtype="<f4")
                key = (str(item["s"]), str(item["n"]), str(item["p"]))
                entries.append((int(item["l"]), key, vector, float(item["x"])))
                if item.get("i"):
                    _state.last_id = max(_state.last_id, int(item["i"]))
            except (KeyError, TypeError, ValueError):
                continue
        _entries_add(entries)
    elif message.get("op") == "remove":
        labels = [label for label in message.get("labels") or () if isinstance(label, int)]
        _entries_remove(labels)
    elif message.get("op") == "purge":
        organization = f"o{message.get('organization')}"
        scope = message.get("scope")
        namespace = message.get("namespace")

        def match(key: PartitionKey) -> bool:
            if namespace and key[1] != namespace:
                return False
            if scope:
                return key[0] == scope
            return key[0] == organization or key[0].startswith(organization + ".")

        _partitions_drop(match)


def _resync() -> None:
    # Messages may have been lost while the listener was away: rebuild from the database. A
    # ready index goes on answering while its successor is built, then is swapped for it; one
    # being rebuilt, or a process without a loop here, starts over at the next lookup.
    if not _state.ready:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        semantic_index_reset()
        return
    if _state.rebuilding:
        semantic_index_reset()
        return
    _state.loader = _spawn(_load(_state.generation, full=True))


broadcast_topic_register(BroadcastTopic(name=SEMANTIC_CACHE, receive=_receive, resync=_resync))


# ---- the database writer -------------------------------------------------------------------------

_queue: list[dict[str, Any]] = []
_flushers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def _flush_start() -> None:
    loop = asyncio.get_running_loop()
    task = _flushers.get(loop)
    if task is None or task.done():
        for ended in [other for other, running in _flushers.items() if running.done()]:
            del _flushers[ended]
        _flushers[loop] = loop.create_task(_flush())


async def _flush() -> None:
    while _queue:
        batch = _queue[:_WRITE_BATCH]
        del _queue[:_WRITE_BATCH]
        try:
            await sync_to_async(_write_in_thread, thread_sensitive=False)(batch)
        except Exception as exc:
            # The database is away: these entries stay in this process's index until they
            # expire, and are lost to the others.
            logger.warning("semantic cache: %d entries not written (%s)", len(batch), exc)
            cache_semantic_error_record(operation="write")


def _write_in_thread(batch: list[dict[str, Any]]) -> None:
    from gateway.services import semantic_cache_entries_create
    from ogem_site.broadcast import broadcast_publish

    ids = _in_thread(semantic_cache_entries_create, rows=batch)
    for start in range(0, len(batch), _BROADCAST_BATCH):
        entries = [
            {
                "l": row["label"],
                "i": pk,
                "s": row["scope"],
                "n": row["namespace"],
                "p": row["partition"],
                "v": base64.b64encode(row["vector"]).decode(),
                "x": row["expires_at"].timestamp(),
            }
            for row, pk in zip(
                batch[start : start + _BROADCAST_BATCH],
                ids[start : start + _BROADCAST_BATCH],
                strict=True,
            )
        ]
        broadcast_publish(topic=SEMANTIC_CACHE, message={"op": "add", "entries": entries})


async def semantic_writes_wait() -> None:
    """Wait for this process's queued entries and background embeddings (tests, shutdown)."""
    while True:
        pending = [task for task in (*_tasks, *_flushers.values()) if not task.done()]
        pending = [task for task in pending if task.get_loop() is asyncio.get_running_loop()]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)

"""Rate limits and budget reservations: every check of one request in one atomic step.

A request is admitted against a list of rules, and either every rule takes its share or none does:

- ``w`` (window): requests or tokens per minute. A sliding window of sixty 1-second buckets in one
  Redis hash per limit (field = unix second, value = amount). What counts is the sum of the buckets
  of the last 60 seconds, so an admitted request stops counting 59 to 60 s after it was admitted,
  and no 60 s span ever admits more than the limit. Token rules are settled afterwards: the
  difference between the reserved and the real token count is applied to the admission bucket.
  The hash also keeps the running sum ``t`` and the oldest live second ``c``, so a check reads
  only the seconds that left the window since the last one (in Redis; the in-process store sums).
- ``p`` (parallel): requests in flight, a sorted set of ``<worker lease>|<request id>`` scored
  by admission time. Settling removes the member. Before refusing, the check frees the slots of
  workers whose lease expired (gateway/leases.py: a crashed worker's slots come back within
  seconds); any slot older than ``OGEM_PARALLEL_SLOT_TTL`` expires regardless.
- ``b`` (budget): a hash with the settled spend ``s`` and the reserved worst case ``r`` of one
  budget period, in units of 1e-8 USD. A request is admitted while ``s + r + cost <= limit``;
  settling moves its reservation into the spend at the real cost. ``s`` is seeded from the durable
  ``Budget.spend`` when the counter is missing (a new period, or a Redis that lost its data).
  With Redis each reservation is also noted in the hash (``q:<request id>`` = amount and
  admission time); one older than ``OGEM_PARALLEL_SLOT_TTL`` belongs to a crashed worker and is
  released when it would otherwise refuse a request. Settling releases only a reservation still
  noted, so a late settle never releases twice.

With Redis (``REDIS_URL``) both steps are one Lua script each (EVALSHA, falling back to EVAL), so
limits hold across every worker and process; a script's keys share one hash slot on a Redis
Cluster (`ogem_site.redis.redis_slot_key`). Without it (the embedded default: one process), a
lock-protected in-process store applies the same algorithm; while Redis is away, another one
(`outage_limiter`) stands in for it (gateway/governance.py). Settling also appends the request's
usage event: to the Redis stream inside the same script, or to the in-process buffer.

A settle that could not reach Redis is kept in the usage spool (gateway/spool.py) and replayed
later through the same script in a marked mode (``m`` or ``n``): the script first sets a marker
for the request id, so a settle replayed twice is applied once, and in mode ``n`` (a settle whose
admission Redis made) a budget takes the spend only while the admission's reservation note is
there, which a settle that reached Redis after all has removed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from billing.counters import budget_counter_local_register
from billing.usage import usage_stream_key
from gateway.accounting import usage_buffered
from gateway.leases import LEASE_UNKNOWN_GRACE_MS, leases_key, worker_lease, worker_lease_id
from ogem_site.hot_settings import hot_settings
from ogem_site.redis import redis_client, redis_lean, redis_slot_key
from ogem_site.redis_pipeline import Framed, ScriptCall, encoded, packed, pieces

WINDOW_SECONDS = 60
# A period counter outlives its period by this much, so the last spend can still be persisted.
BUDGET_KEY_GRACE_MS = 7 * 24 * 3600 * 1000
# Retry-After for a budget that never resets: a day, when someone may have raised it.
NO_RESET_RETRY_MS = 24 * 3600 * 1000
UNLIMITED = -1
# How long a replayed settle's marker is kept: longer than any spool waits to be replayed again.
SETTLED_MARKER_MS = 7 * 24 * 3600 * 1000


# Rule and Settlement are built for every request: not frozen, whose __init__ costs five times as
# much (object.__setattr__ per field). Nothing changes them once built.
@dataclass(slots=True)
class Rule:
    kind: str  # "w" window, "p" parallel, "b" budget
    key: str  # the Redis key (tenant-scoped, with the installation's prefix: redis_slot_key)
    limit: int  # UNLIMITED: count only (a budget without max, kept for its spend)
    amount: int  # what this request takes: 1 request, N tokens, or N cost units
    name: str = ""  # "key:rpm", "team:budget", ... for headers and messages
    audit: bool = False  # budget in audit mode: report, never refuse
    seed: int = 0  # budget: durable spend to start a missing counter from
    ttl_ms: int = 0  # budget: ms until the period resets (0: never); parallel: slot lifetime


@dataclass(slots=True)
class RuleState:
    limit: int
    remaining: int
    reset_ms: int


@dataclass(slots=True)
class Decision:
    allowed: bool
    refused: int | None  # index of the first rule that refused
    retry_after_ms: int
    bucket: int  # the unix second window rules were counted in
    states: list[RuleState]
    audit_exceeded: list[int]  # budgets in audit mode this request went over
    available: list[int]  # per rule: what was left before this request (limit - used)
    fetched: bytes | None = None  # the entry the admission read (`fetch`); None: none there
    leased: int = 0  # units taken beyond the amounts on the rules that asked for a lease


@dataclass(slots=True)
class Settlement:
    rule: Rule
    actual: int  # window: real tokens; budget: real cost units; parallel: unused


def rule_key(*, tenant: str, entity: str, metric: str) -> str:
    """``<prefix>:<tenant>:rl:<entity>:<metric>``; tenant is e.g. ``o:3`` or ``u:7``."""
    return redis_slot_key(f"{tenant}:rl:{entity}:{metric}")


def settled_marker_key(request_id: str) -> str:
    """Set by a settle in a marked mode, so that it is applied once (gateway/spool.py)."""
    return redis_slot_key(f"usage:settled:{request_id}")


# ---- Redis ----------------------------------------------------------------------------------

_ADMIT_LUA = """
local now = tonumber(ARGV[1])
-- Two arguments past the rules' (the usage stream's length bound and a usage event): a free
-- response cache hit that answers once admitted (gateway/governance.py), whose event is
-- recorded here, the usage stream's key after the leases': it has no settle of its own, and
-- its parallel slots are checked but not taken (it holds none once answered).
local settling = (#ARGV - 6) % 6 == 2
local n = math.floor((#ARGV - 6) / 6)
-- Else one key past the rules' and the leases': a response cache entry (gateway/cache.py) to
-- read once admitted, so that a cache lookup costs no command of its own.
-- A window rule's second extra (0 otherwise): a lease asked for (gateway/governance.py), units
-- taken beyond the amount once admitted, as many on each rule that asks, at most what every such
-- rule has room for; the worker spends them on its next free cache hits of the same second.
local fetch = nil
local stream = nil
if #KEYS == n + 2 then
  if settling then stream = KEYS[#KEYS] else fetch = KEYS[#KEYS] end
end
-- Worker leases (gateway/leases.py): lease id -> expiry. A slot whose lease expired belongs to a
-- dead worker; one whose lease is unknown too, once older than a new worker's first refresh.
-- The admitting worker's own lease is alive whatever the set says (its refresh may not have run
-- yet on this event loop).
local leases = KEYS[n + 1]
local lease_expiry = {}
local function slots_reclaim(key, own)
  local held = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  local freed = 0
  for j = 1, #held, 2 do
    local lease = string.match(held[j], '^([^|]+)|')
    if lease and lease ~= own then
      local expiry = lease_expiry[lease]
      if expiry == nil then
        expiry = tonumber(redis.call('ZSCORE', leases, lease)) or -1
        lease_expiry[lease] = expiry
      end
      if expiry < now and (expiry >= 0 or tonumber(held[j + 1]) < now - LEASE_UNKNOWN_GRACE_MS) then
        redis.call('ZREM', key, held[j])
        freed = freed + 1
      end
    end
  end
  return freed
end
local rid = ARGV[2]
local window = tonumber(ARGV[3])
local grace = tonumber(ARGV[4])
local no_reset_wait = tonumber(ARGV[5])
local stale_before = now - tonumber(ARGV[6])
local sec = math.floor(now / 1000)
local refused = 0
local retry = 0
local out = {}
local audit = {}
-- Per rule, what the checks read, for the writes: window total, its oldest second and this
-- second's bucket; a budget's reservations.
local oldest = {}
local totals = {}
local counted = {}
local reserved_now = {}
local written = {}
local room = {}
for i = 1, n do
  local a = 6 + (i - 1) * 6
  local kind = ARGV[a + 1]
  local limit = tonumber(ARGV[a + 2])
  local amount = tonumber(ARGV[a + 3])
  local extra = tonumber(ARGV[a + 4])
  local flag = ARGV[a + 6]
  local key = KEYS[i]
  local used = 0
  local reset = 0
  local wait = 0
  local over = false
  if kind == 'w' then
    -- 't' is the sum of the live buckets and 'c' the oldest of them (0: none), so a check reads
    -- only the seconds that left the window since the last one, not all sixty buckets.
    local lo = sec - window + 1
    local meta = redis.call('HMGET', key, 't', 'c', sec)
    local total = tonumber(meta[1])
    local cursor = tonumber(meta[2])
    counted[i] = tonumber(meta[3])  -- this second's bucket, nil while it has none
    local moved = false
    if total == nil or cursor == nil or (cursor > 0 and cursor < lo - window - 2) then
      -- A new hash, one long idle, or one from before the running sum: count it once.
      local h = redis.call('HGETALL', key)
      total = 0
      cursor = 0
      for j = 1, #h, 2 do
        local b = tonumber(h[j])
        if b ~= nil then  -- a bucket, not 't' or 'c'
          if b < lo then
            redis.call('HDEL', key, h[j])
          else
            total = total + tonumber(h[j + 1])
            if cursor == 0 or b < cursor then cursor = b end
          end
        end
      end
      moved = true
    elseif cursor > 0 and cursor < lo then
      local gone = {}
      for b = cursor, lo - 1 do gone[#gone + 1] = b end
      local counts = redis.call('HMGET', key, unpack(gone))
      local stale = {}
      for j = 1, #gone do
        if counts[j] then
          total = total - tonumber(counts[j])
          stale[#stale + 1] = gone[j]
        end
      end
      if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
      -- The new oldest: the first second of the window that holds a bucket.
      cursor = 0
      local live = {}
      for b = lo, sec do live[#live + 1] = b end
      local held = redis.call('HMGET', key, unpack(live))
      for j = 1, #live do
        if held[j] then
          cursor = live[j]
          break
        end
      end
      if cursor == 0 then total = 0 end
      moved = true
    end
    if moved then
      redis.call('HSET', key, 't', total, 'c', cursor)
      redis.call('PEXPIRE', key, (window + 1) * 1000)
    end
    if cursor == 0 then
      reset = window * 1000 + sec * 1000 - now
    else
      reset = (cursor + window) * 1000 - now
    end
    used = total
    oldest[i] = cursor
    totals[i] = total
    if limit >= 0 and used + amount > limit then
      over = true
      wait = window * 1000
      local h = redis.call('HGETALL', key)
      local buckets = {}
      for j = 1, #h, 2 do
        local b = tonumber(h[j])
        if b ~= nil and b >= lo then
          buckets[#buckets + 1] = {b, tonumber(h[j + 1])}
        end
      end
      table.sort(buckets, function(x, y) return x[1] < y[1] end)
      local freed = 0
      for j = 1, #buckets do
        freed = freed + buckets[j][2]
        if used - freed + amount <= limit then
          wait = (buckets[j][1] + window) * 1000 - now
          break
        end
      end
    end
    if limit >= 0 and tonumber(ARGV[a + 5]) > 0 then room[i] = limit - used - amount end
  elseif kind == 'p' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - extra)
    used = redis.call('ZCARD', key)
    if limit >= 0 and used + amount > limit then
      used = used - slots_reclaim(key, ARGV[a + 5])
      if used + amount > limit then
        over = true
        wait = 1000
      end
    end
  else
    local counters = redis.call('HMGET', key, 's', 'r')
    local spent = tonumber(counters[1])
    if spent == nil then
      -- A new period's counter, from the durable spend: it lives until the period ends, and a
      -- grace after.
      spent = tonumber(ARGV[a + 4])
      redis.call('HSET', key, 's', ARGV[a + 4])
      local ttl = tonumber(ARGV[a + 5])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl + grace) end
    end
    local reserved = tonumber(counters[2]) or 0
    if limit >= 0 and spent + reserved + amount > limit and reserved > 0 then
      -- Before refusing, release what requests of crashed workers still hold.
      local h = redis.call('HGETALL', key)
      for j = 1, #h, 2 do
        if string.sub(h[j], 1, 2) == 'q:' then
          local held, at = string.match(h[j + 1], '^(%d+):(%d+)$')
          if at and tonumber(at) < stale_before then
            reserved = reserved - tonumber(held)
            redis.call('HDEL', key, h[j])
          end
        end
      end
      if reserved < 0 then reserved = 0 end
      -- As an integer string whatever its size (Lua may give a large number in exponent form,
      -- which HINCRBY refuses).
      redis.call('HSET', key, 'r', string.format('%d', reserved))
    end
    used = spent + reserved
    reserved_now[i] = reserved
    if limit >= 0 and used + amount > limit then
      if flag == 'a' then
        audit[#audit + 1] = i
      else
        over = true
        wait = tonumber(ARGV[a + 5])
        if wait <= 0 then wait = no_reset_wait end
      end
    end
  end
  if over and refused == 0 then
    refused = i
    retry = wait
  end
  local remaining = limit - used - amount
  if limit < 0 then remaining = -1 end
  out[#out + 1] = limit
  out[#out + 1] = remaining
  out[#out + 1] = reset
  out[#out + 1] = limit - used
end
local leased = -1
if refused == 0 then
  for i = 1, n do
    local a = 6 + (i - 1) * 6
    if ARGV[a + 1] == 'w' then
      local want = tonumber(ARGV[a + 5])
      if want > 0 then
        if leased < 0 or want < leased then leased = want end
        if room[i] and room[i] < leased then leased = room[i] end
      end
    end
  end
end
if leased < 0 then leased = 0 end
if refused == 0 then
  for i = 1, n do
    local a = 6 + (i - 1) * 6
    local kind = ARGV[a + 1]
    local key = KEYS[i]
    if kind == 'w' then
      -- One write for the bucket, the total and (when it changes) the oldest second: the script
      -- runs alone, so what the check read is still there. Integers as strings: Lua may give a
      -- large number in exponent form.
      local amount = tonumber(ARGV[a + 3])
      if ARGV[a + 5] ~= '0' then amount = amount + leased end
      if written[key] then
        -- The same key twice in one admission: count both, as increments.
        redis.call('HINCRBY', key, sec, amount)
        redis.call('HINCRBY', key, 't', amount)
      else
        local fields = {
          't', string.format('%d', totals[i] + amount),
          sec, string.format('%d', (counted[i] or 0) + amount),
        }
        if oldest[i] == 0 or sec < oldest[i] then
          fields[#fields + 1] = 'c'
          fields[#fields + 1] = sec
        end
        redis.call('HSET', key, unpack(fields))
      end
      -- The newest bucket keeps the hash alive until it leaves the window: the expiry is set
      -- when a second's bucket is created, not again on every request of that second.
      if counted[i] == nil or written[key] then
        redis.call('PEXPIRE', key, (window + 1) * 1000)
      end
      written[key] = true
    elseif kind == 'p' then
      if not settling then
        redis.call('ZADD', key, now, ARGV[a + 5] .. '|' .. rid)
        redis.call('PEXPIRE', key, ARGV[a + 4])
      end
    else
      -- The reservation and its note in one write (in-flight reservations stay far below 2^53,
      -- where a Lua number stops being exact).
      local reserved = string.format('%d', reserved_now[i] + tonumber(ARGV[a + 3]))
      redis.call('HSET', key, 'r', reserved, 'q:' .. rid, ARGV[a + 3] .. ':' .. ARGV[1])
    end
  end
end
if stream and refused == 0 then
  local stream_len = ARGV[#ARGV - 1]
  if stream_len == '0' then
    redis.call('XADD', stream, '*', 'e', ARGV[#ARGV])
  else
    redis.call('XADD', stream, 'MAXLEN', '~', stream_len, '*', 'e', ARGV[#ARGV])
  end
end
local entry = false
if fetch and refused == 0 then entry = redis.call('GET', fetch) end
return {refused, retry, sec, out, audit, leased, entry}
""".replace("LEASE_UNKNOWN_GRACE_MS", str(LEASE_UNKNOWN_GRACE_MS))

_SETTLE_LUA = """
local rid = ARGV[1]
local sec = ARGV[2]
local stream_len = ARGV[3]
local event = ARGV[4]
-- '': a settle as it happens; 'm' and 'n': marked (KEYS[#KEYS] is the marker), applied once.
local mode = ARGV[5]
local n = #KEYS - 1
-- Two arguments past the settlements': a response cache entry to write (gateway/cache.py), its
-- key after the usage stream's. First, and protected: its failure spoils nothing of the settle.
local done = 1
if (#ARGV - 6) % 3 == 2 then
  n = n - 1
  local written = redis.pcall('SET', KEYS[n + 2], ARGV[#ARGV - 1], 'PX', ARGV[#ARGV])
  if type(written) == 'table' and written.err then done = 2 end
end
if mode ~= '' then
  n = n - 1
  if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'PX', ARGV[6]) then return 0 end
end
for i = 1, n do
  local a = 6 + (i - 1) * 3
  local kind = ARGV[a + 1]
  local key = KEYS[i]
  if kind == 'w' then
    if ARGV[a + 2] ~= '0' and redis.call('HEXISTS', key, sec) == 1 then
      local delta = tonumber(ARGV[a + 2])
      local count = redis.call('HINCRBY', key, sec, delta)
      if count < 0 then
        redis.call('HSET', key, sec, 0)
        delta = delta - count
      end
      if redis.call('HINCRBY', key, 't', delta) < 0 then redis.call('HSET', key, 't', 0) end
    end
  elseif kind == 'p' then
    redis.call('ZREM', key, ARGV[a + 2] .. '|' .. rid)
  else
    local noted = redis.call('HDEL', key, 'q:' .. rid)
    if noted == 1 then
      if redis.call('HINCRBY', key, 'r', ARGV[a + 2]) < 0 then redis.call('HSET', key, 'r', 0) end
    end
    -- Only admission creates a counter (seeded from the durable spend, with its expiry): one
    -- that Redis lost meanwhile is left for the next admission to seed. Mode 'n': the admission
    -- noted a reservation, and a settle that reached Redis already has removed it.
    if noted == 1 or (mode ~= 'n' and redis.call('EXISTS', key) == 1) then
      redis.call('HINCRBY', key, 's', ARGV[a + 3])
    end
  end
end
if event ~= '' then
  if stream_len == '0' then
    redis.call('XADD', KEYS[n + 1], '*', 'e', event)
  else
    redis.call('XADD', KEYS[n + 1], 'MAXLEN', '~', stream_len, '*', 'e', event)
  end
end
return done
"""

# What the settle script answers when it settled but could not write the response cache entry
# it carried (`settle_write`).
SETTLE_WRITE_FAILED = 2


def _admit_args(
    rules: list[Rule],
    *,
    now_ms: int,
    request_id: str,
    window: int = WINDOW_SECONDS,
    lease: Callable[[], str] = worker_lease,
) -> list[Any]:
    runs = _admit_fixed(rules, window=window)
    values = _admit_values(rules, now_ms=now_ms, request_id=request_id, lease=lease)
    args: list[Any] = []
    for run, value in zip(runs[:-1], values, strict=True):
        args += run
        args.append(value)
    args += runs[-1]
    return args


def _admit_fixed(rules: list[Rule], *, window: int) -> list[list[Any]]:
    """The admission's arguments that do not change from one request to the next, as the runs
    between `_admit_values`' (one run more): after the time and the request id, the script's
    settings; then each rule's kind, limit, amount*, first extra, second extra*, audit mode
    (* `_admit_values`')."""
    # The last one: a budget reservation older than this belongs to a crashed worker.
    slot_ms = hot_settings().OGEM_PARALLEL_SLOT_TTL * 1000
    runs: list[list[Any]] = [[], []]
    run: list[Any] = [window, BUDGET_KEY_GRACE_MS, NO_RESET_RETRY_MS, slot_ms]
    for rule in rules:
        extra = rule.seed if rule.kind == "b" else rule.ttl_ms if rule.kind == "p" else 0
        run += [rule.kind, rule.limit]
        runs += [run, [extra]]
        run = ["a" if rule.audit else "e"]
    runs.append(run)
    return runs


def _admit_values(
    rules: list[Rule],
    *,
    now_ms: int,
    request_id: str,
    lease: Callable[[], str],
    units: int = 0,
) -> list[Any]:
    """The admission's arguments that change from one request to the next (`_admit_fixed`):
    the time, the request id, and each rule's amount and second extra (a budget's time to its
    reset, a parallel slot's lease; `units`, a lease of request allowance asked of each window
    rule whose amount is not 0: `Decision.leased`)."""
    values: list[Any] = [now_ms, request_id]
    for rule in rules:
        kind = rule.kind
        if kind == "w":
            values += (rule.amount, units if rule.amount else 0)
        else:
            values += (rule.amount, rule.ttl_ms if kind == "b" else lease())
    return values


class AdmitPacking:
    """The admission's EVALSHA for one list of rules with what does not change from one request
    to the next (the keys, the rules' kinds, limits, seeds and audit modes, the script's
    settings) encoded once: a request encodes only its `_admit_values` (`call`). Valid while
    the rules' fixed fields and the settings stay the same: governance keeps one with a caller's
    rule plan (gateway/governance.py), for the plan's rules."""

    __slots__ = ("_fetching", "_keys", "_plain", "_settling", "size")

    def __init__(self, rules: list[Rule]) -> None:
        self.size = len(rules)
        fixed = _admit_fixed(rules, window=WINDOW_SECONDS)
        runs = [pieces(*run) for run in fixed]
        keys = self._keys = _admit_keys(rules)
        # numkeys, the keys, the fixed arguments and one value between each two runs.
        count = 1 + len(keys) + sum(map(len, fixed)) + len(fixed) - 1
        self._plain = (count, (pieces(len(keys), *keys), *runs[1:]))
        # With a key to read (`fetch`) after the others: one key and one value more.
        self._fetching = (count + 1, (pieces(len(keys) + 1, *keys), b"", *runs[1:]))
        self._settling: tuple[int, tuple[bytes, ...]] | None = None  # made on first use

    def call(
        self,
        rules: list[Rule],
        *,
        now_ms: int,
        request_id: str,
        fetch: str | None,
        event: bytes | None = None,
        lease_units: int = 0,
    ) -> ScriptCall:
        """`event`: a free cache hit's usage event, recorded by the script once it admits (and
        no `fetch` then: the hit's entry is in hand). `lease_units`: request allowance to take
        beyond the amounts (`_admit_values`' `units`)."""
        values = _admit_values(
            rules, now_ms=now_ms, request_id=request_id, lease=worker_lease, units=lease_units
        )
        if event is not None:
            settling = self._settling
            if settling is None:
                settling = self._settling = self._settling_runs()
            count, runs = settling
            values.append(encoded(event))  # sent once: not hashed for the kept pieces
        elif fetch is None:
            count, runs = self._plain
        else:
            count, runs = self._fetching
            values.insert(0, fetch)
        return ScriptCall(count, packed(runs, values))

    def _settling_runs(self) -> tuple[int, tuple[bytes, ...]]:
        """The runs with a usage event: the usage stream's key after the others, its length
        bound after the fixed arguments, then the event (one key and two values more)."""
        count, runs = self._plain
        keys = self._keys
        head = pieces(len(keys) + 1, *keys, usage_stream_key())
        tail = runs[-1] + pieces(hot_settings().OGEM_USAGE_STREAM_MAXLEN)
        return count + 3, (head, *runs[1:-1], tail, b"")


def _decision(raw: list[Any], rules: list[Rule]) -> Decision:
    # Lua numbers arrive as Redis integers: ints already, nothing to convert.
    refused, retry, sec, flat, audit, leased, fetched = raw if len(raw) == 7 else (*raw, None)
    states = [
        RuleState(flat[i], flat[i + 1], flat[i + 2] if flat[i + 2] > 0 else 0)
        for i in range(0, 4 * len(rules), 4)
    ]
    return Decision(
        allowed=refused == 0,
        refused=refused - 1 if refused else None,
        retry_after_ms=retry if retry > 0 else 0,
        bucket=sec,
        states=states,
        audit_exceeded=[i - 1 for i in audit],
        available=flat[3::4],
        fetched=fetched,
        leased=leased,
    )


class PendingDecision:
    """An admission written to Redis; awaiting it gives its Decision (as often as needed)."""

    __slots__ = ("_reply", "_rules")

    def __init__(self, reply: Awaitable[Any], rules: list[Rule]) -> None:
        self._reply = reply
        self._rules = rules

    def __await__(self) -> Any:
        return self._decide().__await__()

    async def _decide(self) -> Decision:
        return _decision(await self._reply, self._rules)


def settle_script(
    settlements: list[Settlement], *, request_id: str, bucket: int, event: bytes, mode: str = ""
) -> tuple[list[str], list[Any]]:
    """The settle script's keys and arguments; `mode` "m" or "n" marks it (applied once)."""
    keys = [s.rule.key for s in settlements]
    args: list[Any] = [
        request_id, bucket, hot_settings().OGEM_USAGE_STREAM_MAXLEN, event, mode, SETTLED_MARKER_MS
    ]  # fmt: skip
    for item in settlements:
        rule = item.rule
        if rule.kind == "w":
            args += ["w", item.actual - rule.amount, 0]
        elif rule.kind == "p":
            args += ["p", worker_lease_id(), 0]
        else:
            args += ["b", -rule.amount, item.actual]
    keys.append(usage_stream_key())
    if mode:
        keys.append(settled_marker_key(request_id))
    return keys, args


def settle_write(keys: list[str], args: list[Any], *, key: str, entry: Framed) -> None:
    """Make a settle as it happens also write `key` (a response cache entry, plain Redis only:
    on a Cluster it lives in another slot), so that the write costs no command of its own.
    `entry`: the value and its TTL in milliseconds, framed (`redis_pipeline.framed`: joined
    once with the command); `settle_issue(..., wrote=True)` sends it. A settle kept for a
    replay (the spool) is the one without it: `settle_unwrite`."""
    keys.append(key)
    args.append(entry)


def settle_unwrite(keys: list[str], args: list[Any]) -> tuple[list[str], list[Any]]:
    """The settle that `settle_write` changed, without its write."""
    return keys[:-1], args[:-1]


def settle_marked(keys: list[str], args: list[Any]) -> tuple[list[str], list[Any]]:
    """A settle's keys and arguments in a marked mode, to be applied once however often it is
    replayed: a settle as it happens becomes mode "n" (its admission was made in Redis)."""
    if args[4]:
        return keys, args
    return [*keys, settled_marker_key(args[0])], [*args[:4], "n", *args[5:]]


def _no_lease() -> str:
    return ""


def _admit_keys(rules: list[Rule]) -> list[str]:
    keys = [rule.key for rule in rules]
    keys.append(leases_key())
    return keys


class RedisLimiter:
    """The Lua scripts on the pipelined connection (`redis_lean`), else redis-py's client."""

    def __init__(self) -> None:
        self._scripts: dict[int, tuple[Any, Any]] = {}

    def _bound(self) -> tuple[Any, Any]:
        client = redis_client()
        scripts = self._scripts.get(id(client))
        if scripts is None or scripts[0] is not client:
            # register_script runs EVALSHA and falls back to EVAL (loading it) on NOSCRIPT.
            scripts = (
                client,
                (client.register_script(_ADMIT_LUA), client.register_script(_SETTLE_LUA)),
            )
            self._scripts = {id(client): scripts}
        return scripts[1]

    async def admit(
        self, rules: list[Rule], *, now_ms: int, request_id: str, window: int = WINDOW_SECONDS
    ) -> Decision:
        keys = _admit_keys(rules)
        args = _admit_args(rules, now_ms=now_ms, request_id=request_id, window=window)
        lean = redis_lean()
        if lean is not None:
            raw = await lean.evalsha(lean.script(_ADMIT_LUA), keys, args)
        else:
            admit, _ = self._bound()
            raw = await admit(keys=keys, args=args)
        return _decision(raw, rules)

    async def admit_issue(
        self,
        rules: list[Rule],
        *,
        now_ms: int,
        request_id: str,
        fetch: str | None = None,
        packing: AdmitPacking | None = None,
        event: bytes | None = None,
        lease_units: int = 0,
    ) -> PendingDecision | None:
        """`admit`, returning once the script is written to Redis, with its decision left to
        await (again after a cancelled wait, if need be); None when that is not possible without
        waiting for a connection (use `admit`). `fetch`: a key the script reads once it admits
        (a response cache entry: `Decision.fetched`). `packing`: the command's fixed part for
        the first `packing.size` rules, used when there are no others. `event`: a free response
        cache hit's usage event, recorded once admitted (its parallel slots are then checked,
        not taken): that hit has no settle. `lease_units`: request allowance to take beyond the
        amounts (`AdmitPacking.call`), granted in `Decision.leased`."""
        lean = redis_lean()
        if lean is None:
            return None
        if packing is None or packing.size != len(rules):
            packing = AdmitPacking(rules)
        call = packing.call(
            rules,
            now_ms=now_ms,
            request_id=request_id,
            fetch=fetch,
            event=event,
            lease_units=lease_units,
        )
        reply = await lean.call_issue(lean.script(_ADMIT_LUA), call)
        if reply is None:
            return None
        return PendingDecision(reply, rules)

    async def settle(
        self, settlements: list[Settlement], *, request_id: str, bucket: int, event: bytes
    ) -> None:
        keys, args = settle_script(settlements, request_id=request_id, bucket=bucket, event=event)
        await self.settle_run(keys, args)

    async def settle_run(self, keys: list[str], args: list[Any]) -> None:
        """The settle script with these keys and arguments (`settle_script`)."""
        lean = redis_lean()
        if lean is not None:
            await lean.evalsha(lean.script(_SETTLE_LUA), keys, args)
            return
        _, settle = self._bound()
        await settle(keys=keys, args=args)

    async def settle_issue(
        self, keys: list[str], args: list[Any], wrote: bool = False
    ) -> Awaitable[Any] | None:
        """`settle_run`, returning once the script is written to Redis (with the other commands
        of this event-loop turn), with only its reply left to await; None when that is not
        possible without waiting for a connection (use `settle_run`). `wrote`: the settle
        carries a write (`settle_write`)."""
        lean = redis_lean()
        if lean is None:
            return None
        return await lean.evalsha_issue(lean.script(_SETTLE_LUA), keys, args, wrote)


def redis_settle_sync(client: Any, keys: list[str], args: list[Any]) -> Any:
    """The settle script on a synchronous client (the spool's replay, in a thread)."""
    return client.register_script(_SETTLE_LUA)(keys=keys, args=args)


def redis_admit_sync(client: Any, rules: list[Rule], *, now_ms: int, request_id: str) -> Decision:
    """The same admission on a synchronous client (other processes, Celery, tests); its slots
    belong to no lease (nothing refreshes one here): they last until ``OGEM_PARALLEL_SLOT_TTL``."""
    raw = client.register_script(_ADMIT_LUA)(
        keys=_admit_keys(rules),
        args=_admit_args(rules, now_ms=now_ms, request_id=request_id, lease=_no_lease),
    )
    return _decision(raw, rules)


# ---- In process (no Redis) --------------------------------------------------------------------


@dataclass(slots=True)
class _Store:
    windows: dict[str, dict[int, int]] = field(default_factory=dict)
    slots: dict[str, dict[str, int]] = field(default_factory=dict)
    budgets: dict[str, dict[str, int]] = field(default_factory=dict)
    # Request ids whose usage was applied once (`settle_once`), oldest first.
    marked: dict[str, None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


# How many request ids the in-process store remembers as settled once.
_MARKED_MAX = 1_000_000


class LocalLimiter:
    """The Lua scripts' semantics for one process. Usage events go to the in-process buffer."""

    def __init__(self) -> None:
        self.store = _Store()

    def reset(self) -> None:
        self.store = _Store()

    def budget_counters(self, key: str) -> dict[str, int]:
        with self.store.lock:
            return dict(self.store.budgets.get(key, {}))

    def admit_now(
        self, rules: list[Rule], *, now_ms: int, request_id: str, window: int = WINDOW_SECONDS
    ) -> Decision:
        store = self.store
        sec = now_ms // 1000
        refused: int | None = None
        retry = 0
        states: list[RuleState] = []
        available: list[int] = []
        audit: list[int] = []
        with store.lock:
            for index, rule in enumerate(rules):
                used, reset, wait, over = 0, 0, 0, False
                if rule.kind == "w":
                    buckets = store.windows.setdefault(rule.key, {})
                    for b in [b for b in buckets if b <= sec - window]:
                        del buckets[b]
                    ordered = sorted(buckets.items())
                    used = sum(count for _, count in ordered)
                    oldest = ordered[0][0] if ordered else sec
                    reset = (oldest + window) * 1000 - now_ms
                    if rule.limit >= 0 and used + rule.amount > rule.limit:
                        over, wait, freed = True, window * 1000, 0
                        for b, count in ordered:
                            freed += count
                            if used - freed + rule.amount <= rule.limit:
                                wait = (b + window) * 1000 - now_ms
                                break
                elif rule.kind == "p":
                    slots = store.slots.setdefault(rule.key, {})
                    for rid in [r for r, at in slots.items() if at <= now_ms - rule.ttl_ms]:
                        del slots[rid]
                    used = len(slots)
                    if rule.limit >= 0 and used + rule.amount > rule.limit:
                        over, wait = True, 1000
                else:
                    counter = store.budgets.setdefault(rule.key, {})
                    counter.setdefault("s", rule.seed)
                    used = counter["s"] + counter.get("r", 0)
                    if rule.limit >= 0 and used + rule.amount > rule.limit:
                        if rule.audit:
                            audit.append(index)
                        else:
                            over, wait = True, rule.ttl_ms or NO_RESET_RETRY_MS
                if over and refused is None:
                    refused, retry = index, wait
                remaining = rule.limit - used - rule.amount if rule.limit >= 0 else UNLIMITED
                states.append(RuleState(rule.limit, remaining, max(reset, 0)))
                available.append(rule.limit - used)
            if refused is None:
                for rule in rules:
                    if rule.kind == "w":
                        buckets = store.windows[rule.key]
                        buckets[sec] = buckets.get(sec, 0) + rule.amount
                    elif rule.kind == "p":
                        store.slots[rule.key][request_id] = now_ms
                    else:
                        counter = store.budgets[rule.key]
                        counter["r"] = counter.get("r", 0) + rule.amount
        return Decision(
            allowed=refused is None,
            refused=refused,
            retry_after_ms=max(retry, 0),
            bucket=sec,
            states=states,
            audit_exceeded=audit,
            available=available,
        )

    async def admit(
        self, rules: list[Rule], *, now_ms: int, request_id: str, window: int = WINDOW_SECONDS
    ) -> Decision:
        return self.admit_now(rules, now_ms=now_ms, request_id=request_id, window=window)

    def settle_now(self, settlements: list[Settlement], *, request_id: str, bucket: int) -> None:
        store = self.store
        with store.lock:
            for item in settlements:
                rule = item.rule
                if rule.kind == "w":
                    buckets = store.windows.get(rule.key, {})
                    if bucket in buckets:
                        buckets[bucket] = max(buckets[bucket] + item.actual - rule.amount, 0)
                elif rule.kind == "p":
                    store.slots.get(rule.key, {}).pop(request_id, None)
                else:
                    counter = store.budgets.setdefault(rule.key, {"s": rule.seed})
                    counter["r"] = max(counter.get("r", 0) - rule.amount, 0)
                    counter["s"] = counter.get("s", 0) + item.actual

    async def settle(
        self, settlements: list[Settlement], *, request_id: str, bucket: int, event: bytes
    ) -> None:
        self.settle_now(settlements, request_id=request_id, bucket=bucket)
        if event:
            usage_buffered(event)

    def settle_once(self, settlements: list[Settlement], *, request_id: str, bucket: int) -> bool:
        """`settle_now`, applied once per request id (the marked settle of the Lua script);
        whether it was applied now."""
        store = self.store
        with store.lock:
            if request_id in store.marked:
                return False
            store.marked[request_id] = None
            if len(store.marked) > _MARKED_MAX:
                del store.marked[next(iter(store.marked))]
        self.settle_now(settlements, request_id=request_id, bucket=bucket)
        return True


_redis_limiter = RedisLimiter()
# The store without Redis (the embedded default).
local_limiter = LocalLimiter()
# With Redis, while it is away: each process counts on its own, from what the budget snapshots
# say was spent, and forgets it all when Redis answers again (gateway/governance.py).
outage_limiter = LocalLimiter()


def _local_spend(key: str) -> int | None:
    return local_limiter.budget_counters(key).get("s")


budget_counter_local_register(_local_spend)


def limiter() -> RedisLimiter | LocalLimiter:
    """Redis when REDIS_URL is set, else the in-process store (read per call: tests switch it)."""
    return _redis_limiter if hot_settings().REDIS_URL else local_limiter


def now_ms() -> int:
    return int(time.time() * 1000)

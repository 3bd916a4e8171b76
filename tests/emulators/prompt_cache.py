"""Provider prompt caches as the emulators keep them, written from each API's reference.

Two kinds:
- `BreakpointCache` (Anthropic `cache_control`, Bedrock `cachePoint`): the prompt is a list of
  blocks in the order the model reads them (tools, system, messages); a breakpoint caches the
  prefix that ends at its block. A request reads the longest cached breakpoint prefix and writes
  the prefixes of its later breakpoints, each at its own TTL; a prefix shorter than the model's
  minimum is never cached (silently, as the APIs do).
- `PrefixCache` (OpenAI's and DeepSeek's automatic caching): the prompt's tokens; a request reads
  the longest prefix it shares with an earlier prompt, in the provider's units.

Tokens are counted by one simple rule (`block_tokens`), so tests compare exact numbers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

TTL_SECONDS = {"5m": 300, "1h": 3600}


def block_tokens(block: Any) -> int:
    """A block's tokens: one per whitespace-separated word of its JSON (markers left out)."""
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return max(1, len(orjson.dumps(block, option=orjson.OPT_SORT_KEYS).split()))


@dataclass(frozen=True)
class Block:
    """One block of a prompt: its tokens, its content key and, when it ends a cached prefix,
    that breakpoint's TTL ("5m" or "1h")."""

    tokens: int
    key: bytes
    breakpoint_ttl: str | None = None


def block_of(value: Any, *, ttl: str | None = None) -> Block:
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return Block(tokens=block_tokens(value), key=raw, breakpoint_ttl=ttl)


@dataclass
class Counted:
    """What one request's prompt did to the cache."""

    input_tokens: int  # neither read nor written
    read: int
    written_5m: int
    written_1h: int

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h


class BreakpointCache:
    def __init__(self, *, minimum_tokens: int = 1024) -> None:
        self.minimum_tokens = minimum_tokens
        self._entries: dict[str, float] = {}  # prefix digest -> expiry (monotonic)
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, *, scope: str, blocks: list[Block]) -> Counted:
        """Read the longest cached breakpoint prefix, write the later ones (refreshing a read
        entry's TTL, as a hit does)."""
        digest = hashlib.sha256(scope.encode())
        total = 0
        points: list[tuple[int, str, str]] = []  # (prefix tokens, prefix digest, ttl)
        for block in blocks:
            digest.update(len(block.key).to_bytes(8, "big") + block.key)
            total += block.tokens
            if block.breakpoint_ttl is not None:
                points.append((total, digest.copy().hexdigest(), block.breakpoint_ttl))
        now = time.monotonic()
        with self._lock:
            read = 0
            for tokens, key, _ in points:
                if self._entries.get(key, 0.0) > now:
                    read = max(read, tokens)
            written = {"5m": 0, "1h": 0}
            start = read
            for tokens, key, ttl in points:
                if tokens < self.minimum_tokens:
                    continue
                self._entries[key] = now + TTL_SECONDS.get(ttl, 300)
                if tokens > start:
                    written[ttl if ttl in written else "5m"] += tokens - start
                    start = tokens
        return Counted(
            input_tokens=total - start,
            read=read,
            written_5m=written["5m"],
            written_1h=written["1h"],
        )


class PrefixCache:
    """Automatic prefix caching: `minimum` tokens at least, matched in `unit`-token steps
    (OpenAI: 1024 then 128), or only whole earlier prompts (`whole_prompts`, DeepSeek's
    units persisted at the end of each request's input)."""

    def __init__(self, *, minimum: int, unit: int, whole_prompts: bool = False) -> None:
        self.minimum = minimum
        self.unit = unit
        self.whole_prompts = whole_prompts
        self._prompts: dict[str, list[tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()

    def count(self, *, scope: str, tokens: list[str]) -> int:
        """The cached tokens of this prompt; remembers it for the next requests."""
        prompt = tuple(tokens)
        with self._lock:
            seen = self._prompts.setdefault(scope, [])
            best = 0
            for earlier in seen:
                if self.whole_prompts:
                    if len(earlier) <= len(prompt) and prompt[: len(earlier)] == earlier:
                        best = max(best, len(earlier))
                    continue
                shared = 0
                for a, b in zip(earlier, prompt, strict=False):
                    if a != b:
                        break
                    shared += 1
                best = max(best, shared)
            seen.append(prompt)
        if best < self.minimum:
            return 0
        return self.minimum + (best - self.minimum) // self.unit * self.unit

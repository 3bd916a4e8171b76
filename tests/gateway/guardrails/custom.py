"""A custom guardrail class, named by a dotted path in the tests' configurations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.guardrails.types import Finding


class SlowWordFlag:
    """Flags texts containing `word` after `delay` seconds (a vendor's round trip)."""

    def __init__(self, *, word: str, delay: float = 0.0) -> None:
        self.word = word
        self.delay = delay

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        await asyncio.sleep(self.delay)
        return [
            Finding("FORBIDDEN_WORD", 0.8, index)
            for index, text in enumerate(texts)
            if self.word in text
        ]


class Broken:
    def __init__(self) -> None:
        pass

    def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        raise RuntimeError("the vendor is down")

"""What a guardrail check reports, and the check's interface every kind implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# When a guardrail runs (LiteLLM's `mode` names).
PRE_CALL = "pre_call"
DURING_CALL = "during_call"
POST_CALL = "post_call"
MODES = (PRE_CALL, DURING_CALL, POST_CALL)

# What a flagged guardrail does.
BLOCK = "block"
MASK = "mask"
WARN = "warn"
ACTIONS = (BLOCK, MASK, WARN)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check flagged: its category (`EMAIL_ADDRESS`, `OPENAI_API_KEY`, a topic...)
    and, for detectors that locate it, where: `text` indexes the texts the check was given and
    `start`/`end` the span inside it (needed to mask; vendors that only classify give none).
    `action` overrides the guardrail's own for this category (LiteLLM's pii_entities_config)."""

    category: str
    confidence: float = 1.0
    text: int = -1
    start: int = -1
    end: int = -1
    action: str | None = None

    @property
    def located(self) -> bool:
        return self.text >= 0 and self.end > self.start >= 0


class GuardrailCheck(Protocol):
    """A guardrail's check: built-in detectors, vendors (one module each) and custom classes
    named by a dotted path all implement it. `texts` are the request's (pre/during call) or the
    answer's (post call) text fields, in order; a check returns what it flagged, [] for clean.
    Raising (or timing out) follows the guardrail's `fail_open`."""

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]: ...

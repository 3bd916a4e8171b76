"""Reversible masking: personal data replaced by stable placeholders (`<EMAIL_ADDRESS_1>`) before
the call, and put back in the answer; in streams, through a bounded hold-back window so that a
placeholder split across chunks is still restored."""

from __future__ import annotations

import re

from gateway.guardrails.types import Finding

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{0,48}_\d{1,6})>")
# The longest placeholder: the most a stream holds back of one choice's text.
HOLD_BACK = 58
_OPEN = re.compile(r"<[A-Z0-9_]*$")


class Masker:
    """One request's placeholders: the same value is the same placeholder wherever it occurs
    (every message, every guardrail), so the model can still refer to it consistently."""

    def __init__(self) -> None:
        self.by_value: dict[tuple[str, str], str] = {}
        self.values: dict[str, str] = {}  # placeholder without brackets -> original
        self.counts: dict[str, int] = {}

    def placeholder(self, category: str, value: str) -> str:
        key = (category, value)
        found = self.by_value.get(key)
        if found is None:
            number = self.counts.get(category, 0) + 1
            self.counts[category] = number
            found = f"{category}_{number}"
            self.by_value[key] = found
            self.values[found] = value
        return f"<{found}>"

    def mask(self, text: str, findings: list[Finding]) -> str:
        """`text` with the spans of `findings` (located, sorted, not overlapping) replaced."""
        parts: list[str] = []
        at = 0
        for finding in findings:
            parts.append(text[at : finding.start])
            parts.append(self.placeholder(finding.category, text[finding.start : finding.end]))
            at = finding.end
        parts.append(text[at:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        if "<" not in text or not self.values:
            return text
        return PLACEHOLDER.sub(lambda m: self.values.get(m.group(1), m.group(0)), text)


def redact(text: str, findings: list[Finding]) -> str:
    """`text` with each span replaced by its category (`<EMAIL_ADDRESS>`): masking of an answer,
    which is never restored."""
    parts: list[str] = []
    at = 0
    for finding in findings:
        parts.append(text[at : finding.start])
        parts.append(f"<{finding.category}>")
        at = finding.end
    parts.append(text[at:])
    return "".join(parts)


def spans_disjoint(findings: list[Finding]) -> list[Finding]:
    """Located findings sorted by position, each overlapping an earlier one left out."""
    kept: list[Finding] = []
    end = -1
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start >= end:
            kept.append(finding)
            end = finding.end
    return kept


class StreamRestorer:
    """Restores placeholders in a stream's text, choice by choice: a text ending in what may be
    the start of a placeholder (`<EMAIL_AD`) keeps that tail back, at most HOLD_BACK characters,
    until the next piece completes or refutes it."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.pending: dict[int, str] = {}

    def feed(self, index: int, text: str) -> str:
        text = self.pending.pop(index, "") + text
        tail = _OPEN.search(text, max(len(text) - HOLD_BACK, 0))
        if tail is not None:
            self.pending[index] = text[tail.start() :]
            text = text[: tail.start()]
        return self.masker.restore(text)

    def flush(self, index: int) -> str:
        return self.masker.restore(self.pending.pop(index, ""))

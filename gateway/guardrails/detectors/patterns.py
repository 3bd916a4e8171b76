"""Operators' own lists: regular expressions, words and topics, each a named category."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from gateway.guardrails.types import Finding


class PatternDetector:
    """Each (category, compiled pattern) reports its matches under its category."""

    def __init__(self, patterns: Sequence[tuple[str, re.Pattern[str]]]) -> None:
        self.patterns = tuple(patterns)

    def find(self, text: str, *, index: int = 0) -> list[Finding]:
        found = [
            Finding(category, 1.0, index, *match.span())
            for category, pattern in self.patterns
            for match in pattern.finditer(text)
            if match.end() > match.start()
        ]
        found.sort(key=lambda finding: finding.start)
        return found

    def find_all(self, texts: Sequence[str]) -> list[Finding]:
        return [
            finding for index, text in enumerate(texts) for finding in self.find(text, index=index)
        ]


def phrases_pattern(phrases: Sequence[str], *, case_sensitive: bool = False) -> re.Pattern[str]:
    """One pattern matching any of `phrases` as whole words (longest first)."""
    ordered = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
    body = "|".join(re.escape(p) for p in ordered) or r"(?!x)x"
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", 0 if case_sensitive else re.IGNORECASE)


def words_detector(
    lists: Mapping[str, Sequence[str]], *, case_sensitive: bool = False
) -> PatternDetector:
    """Word lists and topic deny-lists: {category: [word or phrase, ...]}."""
    return PatternDetector(
        [
            (category, phrases_pattern(words, case_sensitive=case_sensitive))
            for category, words in lists.items()
        ]
    )

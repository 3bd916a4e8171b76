"""Credentials in text: API keys of known providers by their documented shapes, private keys
(PEM), JSON Web Tokens, and long high-entropy tokens that look like a secret of unknown kind."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from gateway.config.guardrails import SECRET_CATEGORIES
from gateway.guardrails.types import Finding

PRIVATE_KEY = "PRIVATE_KEY"
JWT = "JWT"
HIGH_ENTROPY_SECRET = "HIGH_ENTROPY_SECRET"

# Category -> shape. The more specific shapes come first (an Anthropic key also starts `sk-`).
# Each shape is looked for only where one of its literal prefixes occurs (_HINTS): str.find
# runs at memchr speed, a pattern starting with \b would visit every position.
_KNOWN: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        PRIVATE_KEY,
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----)?"
        ),
    ),
    ("ANTHROPIC_API_KEY", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("OPENAI_API_KEY", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("AWS_ACCESS_KEY_ID", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    ("GITHUB_TOKEN", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("GITLAB_TOKEN", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("SLACK_TOKEN", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("GOOGLE_API_KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("STRIPE_API_KEY", re.compile(r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}")),
    ("HUGGINGFACE_TOKEN", re.compile(r"\bhf_[A-Za-z0-9]{34,}")),
    (JWT, re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)
_HINTS: dict[str, tuple[str, ...]] = {
    PRIVATE_KEY: ("-----BEGIN",),
    "ANTHROPIC_API_KEY": ("sk-ant-",),
    "OPENAI_API_KEY": ("sk-",),
    "AWS_ACCESS_KEY_ID": ("AKIA", "ASIA", "ABIA", "ACCA"),
    "GITHUB_TOKEN": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "GITLAB_TOKEN": ("glpat-",),
    "SLACK_TOKEN": ("xox",),
    "GOOGLE_API_KEY": ("AIza",),
    "STRIPE_API_KEY": ("_live_", "_test_"),
    "HUGGINGFACE_TOKEN": ("hf_",),
    JWT: ("eyJ",),
}
_TOKEN = re.compile(r"[A-Za-z0-9+/_=-]{32,}")


def shannon_entropy(text: str) -> float:
    """Bits per character of `text`'s own character distribution."""
    counts = Counter(text)
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _looks_random(token: str, threshold: float) -> bool:
    # Words and identifiers are long too: a secret mixes letter cases and digits.
    classes = (
        any(c.islower() for c in token)
        + any(c.isupper() for c in token)
        + any(c.isdigit() for c in token)
    )
    return classes >= 3 and shannon_entropy(token) >= threshold


class SecretsDetector:
    """`categories`: which to report (all of SECRET_CATEGORIES by default); `entropy`: bits per
    character a 32+ character token needs to be reported as HIGH_ENTROPY_SECRET."""

    def __init__(
        self, *, categories: Iterable[str] = SECRET_CATEGORIES, entropy: float = 4.0
    ) -> None:
        self.categories = frozenset(categories)
        self.entropy = entropy
        self._known = tuple(item for item in _KNOWN if item[0] in self.categories)

    def find(self, text: str, *, index: int = 0) -> list[Finding]:
        taken: list[tuple[int, int]] = []
        found: list[Finding] = []
        for category, pattern in self._known:
            if not any(hint in text for hint in _HINTS[category]):
                continue
            for match in pattern.finditer(text):
                start, end = match.span()
                if all(end <= s or start >= e for s, e in taken):
                    taken.append((start, end))
                    found.append(Finding(category, 1.0, index, start, end))
        if HIGH_ENTROPY_SECRET in self.categories and any(len(word) >= 32 for word in text.split()):
            for match in _TOKEN.finditer(text):
                start, end = match.span()
                if all(end <= s or start >= e for s, e in taken) and _looks_random(
                    match.group(), self.entropy
                ):
                    taken.append((start, end))
                    found.append(Finding(HIGH_ENTROPY_SECRET, 0.7, index, start, end))
        found.sort(key=lambda finding: finding.start)
        return found

    def find_all(self, texts: Sequence[str]) -> list[Finding]:
        return [
            finding for index, text in enumerate(texts) for finding in self.find(text, index=index)
        ]

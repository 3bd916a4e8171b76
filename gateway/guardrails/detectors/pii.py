"""Personal data found by pattern and confirmed by a validator: emails, phone numbers
(`phonenumbers`), payment cards (Luhn), IBANs (ISO 7064 check digits and each country's length,
`python-stdnum`), US social security numbers (`python-stdnum`'s rules) and IP addresses.

Presidio is not used: its recognizers need spaCy and an English model, and the official spaCy
models are not published on the package registry (docs/guardrails.md). The cheap patterns run
first and only their candidates reach a validator, so a 2 KB prompt costs well under 0.3 ms
(docs/benchmark.md).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

from gateway.config.guardrails import PII_ENTITIES
from gateway.guardrails.types import Finding

# Presidio's entity names, so LiteLLM's pii_entities_config reads as written.
EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS = PII_ENTITIES

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\w-])\d{3}[- ]\d{2}[- ]\d{4}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Phone-like runs: digits with the separators people write, 7 digits at least.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d ().-]{5,18})\d(?![\w])")
# Where the numbers are: every numeric entity holds a run like this (a scan at C speed that
# starts with a character class). The entities' own patterns then read only the windows around
# the runs, so ordinary prose costs one scan, not one per entity (docs/benchmark.md).
_NUMERIC_RUN = re.compile(r"\d[\d ().:+/-]{5,}\d")
_WINDOW_BEFORE = 42  # an IBAN's country code, check digits and bank code precede its digit run

Validator = Callable[[str], bool]


def _card_valid(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


def _iban_valid(candidate: str) -> bool:
    return iban.is_valid(candidate)


def _ssn_valid(candidate: str) -> bool:
    return ssn.is_valid(candidate.replace(" ", "-"))


def _ip_valid(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


# The numeric entities in priority order: a span taken by one is not reported again by a later
# one (a card number is not also a phone number).
_NUMERIC: tuple[tuple[str, re.Pattern[str], Validator], ...] = (
    (IBAN_CODE, _IBAN, _iban_valid),
    (CREDIT_CARD, _CARD, _card_valid),
    (US_SSN, _SSN, _ssn_valid),
    (IP_ADDRESS, _IPV4, _ip_valid),
)


class PIIDetector:
    """Finds `entities` (all of PII_ENTITIES by default); `region` is the country phone numbers
    without a +country prefix are read in (ISO 3166 alpha-2, default US)."""

    def __init__(self, *, entities: Iterable[str] = PII_ENTITIES, region: str = "US") -> None:
        self.entities = frozenset(entities)
        self.region = region.upper()
        self._numeric = tuple(r for r in _NUMERIC if r[0] in self.entities)
        if PHONE_NUMBER in self.entities:
            self._numeric += ((PHONE_NUMBER, _PHONE, self._phone_valid),)

    def find(self, text: str, *, index: int = 0) -> list[Finding]:
        found: list[Finding] = []
        if EMAIL_ADDRESS in self.entities and "@" in text:
            found.extend(self._emails(text, index))
        if self._numeric:
            windows = _windows(text)
            if windows:
                found.extend(self._numbers(text, index, windows, taken=found))
        if IP_ADDRESS in self.entities and ("::" in text or text.count(":") >= 2):
            for match in _IPV6.finditer(text):
                start, end = match.span()
                if _free(found, start, end) and _ip_valid(match.group()):
                    found.append(Finding(IP_ADDRESS, 1.0, index, start, end))
        found.sort(key=lambda finding: finding.start)
        return found

    def _emails(self, text: str, index: int) -> list[Finding]:
        found = []
        at = text.find("@")
        while at > 0:
            start = at
            while start > 0 and at - start < 64 and text[start - 1] in _LOCAL_CHARS:
                start -= 1
            domain = _DOMAIN.match(text, at + 1)
            if start < at and domain is not None:
                found.append(Finding(EMAIL_ADDRESS, 1.0, index, start, domain.end()))
            at = text.find("@", at + 1)
        return found

    def _numbers(
        self, text: str, index: int, windows: list[tuple[int, int]], *, taken: list[Finding]
    ) -> list[Finding]:
        found: list[Finding] = []
        for entity, pattern, valid in self._numeric:
            confidence = 0.9 if entity == PHONE_NUMBER else 1.0
            for window_start, window_end in windows:
                for match in pattern.finditer(text, window_start, window_end):
                    start, end = match.span()
                    if (
                        _free(taken, start, end)
                        and _free(found, start, end)
                        and valid(match.group())
                    ):
                        found.append(Finding(entity, confidence, index, start, end))
        return found

    def _phone_valid(self, candidate: str) -> bool:
        try:
            number = phonenumbers.parse(candidate, self.region)
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.is_valid_number(number)

    def find_all(self, texts: Sequence[str]) -> list[Finding]:
        return [
            finding for index, text in enumerate(texts) for finding in self.find(text, index=index)
        ]


def _free(findings: list[Finding], start: int, end: int) -> bool:
    return all(end <= f.start or start >= f.end for f in findings)


def _windows(text: str) -> list[tuple[int, int]]:
    """The merged stretches of `text` around its numeric runs (with the character after each,
    so that the entities' look-aheads see it)."""
    windows: list[tuple[int, int]] = []
    for match in _NUMERIC_RUN.finditer(text):
        start = max(match.start() - _WINDOW_BEFORE, 0)
        end = min(match.end() + 1, len(text))
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows

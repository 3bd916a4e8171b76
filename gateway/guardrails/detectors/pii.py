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

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN = re.compile(r"(?<![\w-])\d{3}[- ]\d{2}[- ]\d{4}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Phone-like runs: digits with the separators people write, 7 digits at least.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d ().-]{5,18})\d(?![\w])")

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


# In priority order: a span taken by one entity is not reported again by a later one (a card
# number is not also a phone number).
_RECOGNIZERS: tuple[tuple[str, re.Pattern[str], Validator | None, str], ...] = (
    (EMAIL_ADDRESS, _EMAIL, None, "@"),
    (IBAN_CODE, _IBAN, _iban_valid, ""),
    (CREDIT_CARD, _CARD, _card_valid, ""),
    (US_SSN, _SSN, _ssn_valid, ""),
    (IP_ADDRESS, _IPV4, _ip_valid, "."),
    (IP_ADDRESS, _IPV6, _ip_valid, ":"),
)


class PIIDetector:
    """Finds `entities` (all of PII_ENTITIES by default); `region` is the country phone numbers
    without a +country prefix are read in (ISO 3166 alpha-2, default US)."""

    def __init__(self, *, entities: Iterable[str] = PII_ENTITIES, region: str = "US") -> None:
        self.entities = frozenset(entities)
        self.region = region.upper()
        self._recognizers = tuple(r for r in _RECOGNIZERS if r[0] in self.entities)

    def find(self, text: str, *, index: int = 0) -> list[Finding]:
        taken: list[tuple[int, int]] = []
        found: list[Finding] = []

        def free(start: int, end: int) -> bool:
            return all(end <= s or start >= e for s, e in taken)

        for entity, pattern, valid, hint in self._recognizers:
            if hint and hint not in text:
                continue  # the pattern cannot match: skip its scan
            for match in pattern.finditer(text):
                start, end = match.span()
                if not free(start, end) or (valid is not None and not valid(match.group())):
                    continue
                taken.append((start, end))
                found.append(Finding(entity, 1.0, index, start, end))
        if PHONE_NUMBER in self.entities:
            for match in _PHONE.finditer(text):
                start, end = match.span()
                if free(start, end) and self._phone_valid(match.group()):
                    taken.append((start, end))
                    found.append(Finding(PHONE_NUMBER, 0.9, index, start, end))
        found.sort(key=lambda finding: finding.start)
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

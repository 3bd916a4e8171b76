"""The offline detectors, table-driven: each sample says what it must (and must not) find."""

from __future__ import annotations

import pytest

from gateway.guardrails.detectors.patterns import PatternDetector, words_detector
from gateway.guardrails.detectors.pii import PIIDetector
from gateway.guardrails.detectors.schema import SchemaDetector
from gateway.guardrails.detectors.secrets import SecretsDetector
from gateway.guardrails.masking import Masker, StreamRestorer, spans_disjoint

PII_SAMPLES = [
    # (text, [(category, matched text), ...])
    ("write to jane.doe@example.com today", [("EMAIL_ADDRESS", "jane.doe@example.com")]),
    ("no address at example dot com", []),
    ("card 4111 1111 1111 1111 please", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("card 4111-1111-1111-1111", [("CREDIT_CARD", "4111-1111-1111-1111")]),
    ("amex 378282246310005", [("CREDIT_CARD", "378282246310005")]),
    ("bad card 4111 1111 1111 1112", []),  # fails Luhn
    ("bad card 1234567812345678", []),  # fails Luhn
    ("iban GB82 WEST 1234 5698 7654 32", [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]),
    ("iban DE89370400440532013000", [("IBAN_CODE", "DE89370400440532013000")]),
    ("bad iban GB82 WEST 1234 5698 7654 33", []),  # wrong check digits
    ("bad iban DE8937040044053201300", []),  # a German IBAN is 22 characters
    ("ssn 536-22-1234", [("US_SSN", "536-22-1234")]),
    ("bad ssn 666-22-1234", []),  # area 666 is never issued
    ("bad ssn 000-12-3456", []),
    ("server 192.168.10.20 is up", [("IP_ADDRESS", "192.168.10.20")]),
    ("version 999.1.1.1 is not an address", []),
    ("v6 2001:db8::8a2e:370:7334 here", [("IP_ADDRESS", "2001:db8::8a2e:370:7334")]),
    ("call +1 415-555-2671 now", [("PHONE_NUMBER", "+1 415-555-2671")]),
    ("call (415) 555-2671", [("PHONE_NUMBER", "(415) 555-2671")]),
    ("london +44 20 7946 0958", [("PHONE_NUMBER", "+44 20 7946 0958")]),
    ("order 12345 shipped on 2024-01-05", []),
    ("not a phone +1 000-000-0000", []),
]


@pytest.mark.parametrize(("text", "expected"), PII_SAMPLES)
def test_pii_detector(text: str, expected: list[tuple[str, str]]) -> None:
    found = PIIDetector().find(text)
    assert [(f.category, text[f.start : f.end]) for f in found] == expected


def test_pii_detector_reads_national_numbers_in_its_region() -> None:
    text = "appelle 01 42 68 53 00"
    assert PIIDetector().find(text) == []  # not a valid US number
    found = PIIDetector(region="FR").find(text)
    assert [(f.category, text[f.start : f.end]) for f in found] == [
        ("PHONE_NUMBER", "01 42 68 53 00")
    ]


def test_pii_detector_finds_only_its_entities() -> None:
    text = "jane@example.com 4111 1111 1111 1111"
    found = PIIDetector(entities=["CREDIT_CARD"]).find(text)
    assert [f.category for f in found] == ["CREDIT_CARD"]


SECRET_SAMPLES = [
    ("key sk-proj-AbCdEf0123456789AbCdEf0123456789", "OPENAI_API_KEY"),
    ("key sk-ant-api03-AbCdEf0123456789AbCdEf0123", "ANTHROPIC_API_KEY"),
    ("aws AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"),
    ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "GITHUB_TOKEN"),
    ("slack xoxb-1234567890-abcdefghij", "SLACK_TOKEN"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "GOOGLE_API_KEY"),
    ("stripe sk_live_abcdefghijklmnopqrstuvwx", "STRIPE_API_KEY"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        "PRIVATE_KEY",
    ),
    (
        "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
        ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "JWT",
    ),
    ("blob q8Zr3Lx9Vt2Mw7Kp4Nb6Hy1Jd5Fs0Gc8Qe3Ra7Tu", "HIGH_ENTROPY_SECRET"),
]


@pytest.mark.parametrize(("text", "category"), SECRET_SAMPLES)
def test_secrets_detector_finds(text: str, category: str) -> None:
    assert [f.category for f in SecretsDetector().find(text)] == [category]


@pytest.mark.parametrize(
    "text",
    [
        "the task list has a skeleton outline",
        "sk-short",
        "an identifier like this_is_a_very_long_snake_case_name_indeed",  # one letter case
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaAAAA1111",  # long, but low entropy
        "AKIA1234",
    ],
)
def test_secrets_detector_leaves_ordinary_text(text: str) -> None:
    assert SecretsDetector().find(text) == []


def test_words_and_topics_match_whole_words_in_any_case() -> None:
    detector = words_detector(
        {"BLOCKED_WORD": ["darn"], "medical_advice": ["dosage", "diagnose me"]}
    )
    text = "What DOSAGE should I take? Please Diagnose me. darnation is fine, darn is not."
    found = detector.find(text)
    assert [(f.category, text[f.start : f.end]) for f in found] == [
        ("medical_advice", "DOSAGE"),
        ("medical_advice", "Diagnose me"),
        ("BLOCKED_WORD", "darn"),
    ]


def test_regex_detector_names_its_category() -> None:
    import re

    detector = PatternDetector([("TICKET", re.compile(r"TCK-\d{4}"))])
    text = "see TCK-1234 and TCK-12"
    assert [(f.category, text[f.start : f.end]) for f in detector.find(text)] == [
        ("TICKET", "TCK-1234")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "Ada", "age": 36}', []),
        ('{"name": "Ada"}', ["JSON_SCHEMA_MISMATCH"]),
        ("Sure! Here it is: {", ["JSON_INVALID"]),
    ],
)
def test_schema_detector(text: str, expected: list[str]) -> None:
    schema = {
        "type": "object",
        "required": ["name", "age"],
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    assert [f.category for f in SchemaDetector(schema).find_all([text])] == expected


def test_masker_is_stable_and_reversible() -> None:
    masker = Masker()
    text = "mail a@example.com, then b@example.com, then a@example.com"
    found = spans_disjoint(PIIDetector().find(text))
    masked = masker.mask(text, found)
    assert masked == ("mail <EMAIL_ADDRESS_1>, then <EMAIL_ADDRESS_2>, then <EMAIL_ADDRESS_1>")
    assert masker.restore(masked) == text
    assert masker.restore("unknown <EMAIL_ADDRESS_9> stays") == "unknown <EMAIL_ADDRESS_9> stays"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 64])
def test_stream_restorer_restores_placeholders_split_anywhere(size: int) -> None:
    masker = Masker()
    original = "reach me at jane@example.com or +1 415-555-2671 <b>bold</b> x < y"
    masked = masker.mask(original, spans_disjoint(PIIDetector().find(original)))
    restorer = StreamRestorer(masker)
    pieces = [masked[at : at + size] for at in range(0, len(masked), size)]
    out = "".join(restorer.feed(0, piece) for piece in pieces) + restorer.flush(0)
    assert out == original


def test_stream_restorer_holds_back_a_bounded_window() -> None:
    restorer = StreamRestorer(Masker())
    # An unterminated "<" followed by more than a placeholder's length is released.
    assert restorer.feed(0, "<" + "A" * 100) == "<" + "A" * 100
    assert restorer.feed(0, "text <EMAIL_ADD") == "text "
    assert restorer.pending == {0: "<EMAIL_ADD"}

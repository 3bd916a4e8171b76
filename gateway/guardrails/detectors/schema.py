"""JSON-schema validation of an answer: the model's output must be JSON that fits the schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from gateway.guardrails.types import Finding

JSON_INVALID = "JSON_INVALID"
JSON_SCHEMA_MISMATCH = "JSON_SCHEMA_MISMATCH"


class SchemaDetector:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        Draft202012Validator.check_schema(schema)
        self.validator = Draft202012Validator(schema)

    def find_all(self, texts: Sequence[str]) -> list[Finding]:
        """Every non-empty text (each choice's answer) must validate."""
        found: list[Finding] = []
        for index, text in enumerate(texts):
            if not text.strip():
                continue
            try:
                document = orjson.loads(text)
            except orjson.JSONDecodeError:
                found.append(Finding(JSON_INVALID, 1.0, index))
                continue
            if not self.validator.is_valid(document):
                found.append(Finding(JSON_SCHEMA_MISMATCH, 1.0, index))
        return found

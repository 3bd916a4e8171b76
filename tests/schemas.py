"""Validate payloads against the schemas of OpenAI's OpenAPI document (loaded once per session)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# The schemas the tests use, extracted from OpenAI's document by tests/specs/refresh.py.
SPEC_PATH = Path(__file__).resolve().parent / "specs" / "openai-schemas.yaml"
_URI = "urn:openai-openapi"


def _nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` (still used in places) as JSON Schema's null type."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@cache
def _registry() -> Registry:
    with SPEC_PATH.open("rb") as handle:
        spec = yaml.load(handle, Loader=yaml.CSafeLoader)
    spec = _nullable(spec)
    return Registry().with_resource(_URI, Resource.from_contents(spec, DRAFT202012))


@cache
def _validator(name: str) -> Draft202012Validator:
    schemas = _registry().contents(_URI)["components"]["schemas"]
    assert name in schemas, f"{name} is not extracted: run python -m tests.specs.refresh"
    return Draft202012Validator(
        {"$ref": f"{_URI}#/components/schemas/{name}"}, registry=_registry()
    )


def schema_validate(name: str, payload: Any) -> None:
    """Raise jsonschema.ValidationError (with the best match) if `payload` is not a `name`."""
    errors = sorted(_validator(name).iter_errors(payload), key=lambda e: e.path)
    if errors:
        from jsonschema.exceptions import best_match

        raise best_match(errors)

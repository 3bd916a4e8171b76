"""Bounds on the numeric and size-like parameters of /v1 request bodies, checked before routing.

The ranges are OpenAI's (specs/openai-openapi.yaml) where it sets them, and otherwise maxima no
real request reaches but that keep one request from tying up a worker, an upstream or the usage
ledger (`dimensions: 100000000`, `n: -1`). The check is the same whichever provider serves the
model, and answers OpenAI's 400s (`invalid_type`, `integer_below_min_value`, ...) naming the
parameter. Multipart bodies carry numbers as strings: they are read as numbers. docs/providers.md
lists the bounds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import InvalidRequestError
from providers.base import Endpoint

MAX_OUTPUT_TOKENS = 1_000_000  # above every model's output limit
MAX_EMBEDDING_DIMENSIONS = 8192
MAX_BATCH_INPUTS = 2048  # items of an embeddings, moderations or completions batch
MAX_RERANK_DOCUMENTS = 10_000
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 16
MAX_LOGIT_BIAS = 1024
MAX_IMAGE_SIDE = 8192
INT64 = 2**63


def _invalid(message: str, name: str, code: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=name, code=code)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else "a value"


def _wrong_type(name: str, expected: str, value: Any) -> InvalidRequestError:
    return _invalid(
        f"Invalid type for '{name}': expected {expected}, but got {_type_name(value)} instead.",
        name,
        "invalid_type",
    )


class Check(Protocol):
    def __call__(self, name: str, value: Any, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Range:
    """A number in [low, high]; `integer`: an integer (OpenAI's `integer` beside `number`)."""

    low: int | float
    high: int | float
    integer: bool = False

    def __call__(self, name: str, value: Any, /) -> None:
        expected, word = ("an integer", "integer") if self.integer else ("a number", "decimal")
        kinds = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or math.isnan(value):
            raise _wrong_type(name, expected, value)
        for bound, side, sign, code, outside in (
            (self.low, "below minimum", ">=", "below_min", value < self.low),
            (self.high, "above maximum", "<=", "above_max", value > self.high),
        ):
            if outside:
                shown = (bound, value) if self.integer else (f"{bound:g}", f"{value:g}")
                raise _invalid(
                    f"Invalid '{name}': {word} {side} value. Expected a value {sign} {shown[0]}, "
                    f"but got {shown[1]} instead.",
                    name,
                    f"{word}_{code}_value",
                )


def _int(low: int, high: int) -> Range:
    return Range(low, high, integer=True)


def _num(low: float, high: float) -> Range:
    return Range(low, high)


@dataclass(frozen=True, slots=True)
class Boolean:
    def __call__(self, name: str, value: Any, /) -> None:
        if not isinstance(value, bool):
            raise _wrong_type(name, "a boolean", value)


def _too_long(name: str, most: int, length: int) -> InvalidRequestError:
    return _invalid(
        f"Invalid '{name}': array too long. Expected an array with maximum length {most}, "
        f"but got an array with length {length} instead.",
        name,
        "array_above_max_length",
    )


@dataclass(frozen=True, slots=True)
class Text:
    most: int

    def __call__(self, name: str, value: Any, /) -> None:
        if not isinstance(value, str):
            raise _wrong_type(name, "a string", value)
        if len(value) > self.most:
            raise _invalid(
                f"Invalid '{name}': string too long. Expected a string with maximum length "
                f"{self.most}, but got a string with length {len(value)} instead.",
                name,
                "string_above_max_length",
            )


@dataclass(frozen=True, slots=True)
class Items:
    """An array of at most `most` items (`strings`: of strings only); `or_text`: a string too."""

    most: int
    strings: bool = False
    or_text: bool = False

    def __call__(self, name: str, value: Any, /) -> None:
        if self.or_text and isinstance(value, str):
            return
        if not isinstance(value, list):
            expected = "a string or an array" if self.or_text else "an array"
            raise _wrong_type(name, expected, value)
        if len(value) > self.most:
            raise _too_long(name, self.most, len(value))
        if self.strings:
            for index, item in enumerate(value):
                if not isinstance(item, str):
                    raise _wrong_type(f"{name}[{index}]", "a string", item)


@dataclass(frozen=True, slots=True)
class LogitBias:
    """Token ids to a bias in [-100, 100]."""

    def __call__(self, name: str, value: Any, /) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(name, "an object", value)
        if len(value) > MAX_LOGIT_BIAS:
            raise _invalid(
                f"Invalid '{name}': too many entries. Expected at most {MAX_LOGIT_BIAS}, "
                f"but got {len(value)} instead.",
                name,
                "object_above_max_properties",
            )
        bias = _num(-100, 100)
        for token, amount in value.items():
            bias(f"{name}.{token}", amount)


_SIZE = re.compile(r"([1-9][0-9]{0,4})x([1-9][0-9]{0,4})")


@dataclass(frozen=True, slots=True)
class ImageSize:
    """`auto` or `WIDTHxHEIGHT`, each side at most MAX_IMAGE_SIDE pixels."""

    def __call__(self, name: str, value: Any, /) -> None:
        if not isinstance(value, str):
            raise _wrong_type(name, "a string", value)
        match = _SIZE.fullmatch(value)
        if value != "auto" and (
            match is None or max(int(match[1]), int(match[2])) > MAX_IMAGE_SIDE
        ):
            raise _invalid(
                f"Invalid '{name}': expected 'auto' or WIDTHxHEIGHT with sides of at most "
                f"{MAX_IMAGE_SIDE} pixels, but got '{value[:32]}' instead.",
                name,
                "invalid_value",
            )


_SAMPLING: dict[str, Check] = {
    "n": _int(1, 128),
    "temperature": _num(0, 2),
    "top_p": _num(0, 1),
    "top_k": _int(-1, 100_000),
    "frequency_penalty": _num(-2, 2),
    "presence_penalty": _num(-2, 2),
    "seed": _int(-INT64, INT64 - 1),
    "logit_bias": LogitBias(),
    "stop": Items(MAX_STOP_SEQUENCES, strings=True, or_text=True),
    "user": Text(256),
}
_IMAGES: dict[str, Check] = {
    "n": _int(1, 10),
    "size": ImageSize(),
    "partial_images": _int(0, 3),
    "output_compression": _int(0, 100),
    "user": Text(256),
}
_TRANSCRIPTION: dict[str, Check] = {"temperature": _num(0, 1), "prompt": Text(100_000)}

PARAMS: dict[Endpoint, dict[str, Check]] = {
    Endpoint.CHAT: {
        **_SAMPLING,
        "max_tokens": _int(1, MAX_OUTPUT_TOKENS),
        "max_completion_tokens": _int(1, MAX_OUTPUT_TOKENS),
        "logprobs": Boolean(),
        "top_logprobs": _int(0, 20),
        "tools": Items(MAX_TOOLS),
        "functions": Items(MAX_TOOLS),
    },
    Endpoint.COMPLETIONS: {
        **_SAMPLING,
        "max_tokens": _int(0, MAX_OUTPUT_TOKENS),
        "best_of": _int(0, 20),
        "logprobs": _int(0, 5),
        "prompt": Items(MAX_BATCH_INPUTS, or_text=True),
    },
    Endpoint.EMBEDDINGS: {
        "dimensions": _int(1, MAX_EMBEDDING_DIMENSIONS),
        "input": Items(MAX_BATCH_INPUTS, or_text=True),
        "user": Text(256),
    },
    Endpoint.IMAGES_GENERATIONS: {**_IMAGES, "prompt": Text(32_000)},
    Endpoint.IMAGES_EDITS: {**_IMAGES, "prompt": Text(32_000)},
    Endpoint.IMAGES_VARIATIONS: _IMAGES,
    Endpoint.AUDIO_SPEECH: {
        "input": Text(4096),
        "instructions": Text(4096),
        "speed": _num(0.25, 4),
    },
    Endpoint.AUDIO_TRANSCRIPTIONS: _TRANSCRIPTION,
    Endpoint.AUDIO_TRANSLATIONS: _TRANSCRIPTION,
    Endpoint.MODERATIONS: {"input": Items(MAX_BATCH_INPUTS, or_text=True)},
    Endpoint.RESPONSES: {
        "temperature": _num(0, 2),
        "top_p": _num(0, 1),
        "max_output_tokens": _int(1, MAX_OUTPUT_TOKENS),
        "top_logprobs": _int(0, 20),
        "tools": Items(MAX_TOOLS),
        "user": Text(256),
    },
    Endpoint.RERANK: {
        "query": Text(100_000),
        "documents": Items(MAX_RERANK_DOCUMENTS),
        "top_n": _int(1, MAX_RERANK_DOCUMENTS),
        "max_chunks_per_doc": _int(1, MAX_RERANK_DOCUMENTS),
    },
}


_FORM_BOOLEANS = {"true": True, "false": False}


def form_fields_parse(*, endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Multipart fields all arrive as strings (`n=2`, `temperature=0.2`, `stream=false`): read the
    numbers and booleans among them as OpenAI does, in place, so that the checks, the translations
    and the forwarded form see typed values. A value that does not parse stays a string, and its
    check names it."""
    checks = PARAMS.get(endpoint, {})
    for name, value in body.items():
        if not isinstance(value, str):
            continue
        check = checks.get(name)
        if name == "stream" or isinstance(check, Boolean):
            parsed = _FORM_BOOLEANS.get(value.lower())
            if parsed is not None:
                body[name] = parsed
        elif isinstance(check, Range):
            try:
                number = int(value) if check.integer else float(value)
            except ValueError:
                continue
            body[name] = number


def params_check(*, endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise a 400 naming the first parameter of `body` out of its type or bounds (null: unset).

    One dict lookup per field the request carries: nothing else on the hot path."""
    checks = PARAMS.get(endpoint)
    if not checks:
        return
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and value is not None:
            check(name, value)

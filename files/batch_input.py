"""Validation of a `batch` purpose file, line by line as it streams (never read whole).

Each non-blank line is a JSON object `{"custom_id", "method": "POST", "url", "body"}` (OpenAI's
batch input format). The first bad line stops the validation with a 400 naming it and why: not
JSON, a missing or invalid field, a `url` Ogem's batches do not serve, a duplicate `custom_id`, a
body the endpoint would refuse, a model the caller may not use, or a second model where one is
required (docs/files.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.body import Inbound, body_check
from gateway.context import Caller
from gateway.errors import GatewayError, InvalidRequestError
from gateway.registry import registry_get
from gateway.router import deployments_for
from providers.base import Endpoint

# The endpoints a batch line may name, and the /v1 endpoint each is.
BATCH_ENDPOINTS: dict[str, Endpoint] = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/completions": Endpoint.COMPLETIONS,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
    "/v1/moderations": Endpoint.MODERATIONS,
}
CUSTOM_ID_MAX = 512


@dataclass(frozen=True, slots=True)
class BatchInputSummary:
    """What a valid batch file holds: its request count, its one `url`, its models in order."""

    lines: int
    url: str
    models: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "url": self.url, "models": list(self.models)}


class BatchInputError(InvalidRequestError):
    code = "invalid_batch_input"

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"Line {line} of the batch file is invalid: {reason}", param="file")
        self.line = line
        self.reason = reason


def batch_lines(*, chunks: Iterable[bytes]) -> Iterable[tuple[int, bytes]]:
    """(line number from 1, line) for the non-blank lines of a stream of byte chunks, holding
    one line at a time."""
    number = 0
    buffer = bytearray()
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            buffer += chunk[start:end]
            number += 1
            if buffer.strip():
                yield number, bytes(buffer)
            buffer.clear()
            start = end + 1
        buffer += chunk[start:]
    if buffer.strip():
        yield number + 1, bytes(buffer)


def batch_line_parse(*, number: int, line: bytes) -> tuple[str, str, dict[str, Any]]:
    """(custom_id, url, body) of one line, or BatchInputError naming it."""
    try:
        request = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BatchInputError(number, f"not valid JSON ({exc}).") from None
    if not isinstance(request, dict):
        raise BatchInputError(number, "a line must be a JSON object.")
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchInputError(number, "`custom_id` must be a non-empty string.")
    if len(custom_id) > CUSTOM_ID_MAX:
        raise BatchInputError(number, f"`custom_id` is longer than {CUSTOM_ID_MAX} characters.")
    if request.get("method") != "POST":
        raise BatchInputError(number, '`method` must be "POST".')
    url = request.get("url")
    if not isinstance(url, str) or url not in BATCH_ENDPOINTS:
        raise BatchInputError(
            number,
            f"`url` {orjson.dumps(url).decode()} is not one batches serve "
            f"({', '.join(BATCH_ENDPOINTS)}).",
        )
    body = request.get("body")
    if not isinstance(body, dict):
        raise BatchInputError(number, "`body` must be a JSON object.")
    unknown = sorted(set(request) - {"custom_id", "method", "url", "body"})
    if unknown:
        raise BatchInputError(number, f"unknown field `{unknown[0]}`.")
    return custom_id, url, body


def batch_input_validate(
    *,
    chunks: Iterable[bytes],
    caller: Caller,
    mixed_models_allowed: bool,
    endpoint: str | None = None,
) -> BatchInputSummary:
    """Check a batch input file for `caller` (see the module's docstring); `endpoint`, when
    given, is the url every line must name (a batch's). Memory: the custom ids, not the lines."""
    registry = registry_get()
    seen: set[str] = set()
    models: dict[str, int] = {}  # model -> the first line naming it
    first_url = endpoint
    count = 0
    for number, line in batch_lines(chunks=chunks):
        custom_id, url, body = batch_line_parse(number=number, line=line)
        if first_url is None:
            first_url = url
        elif url != first_url:
            raise BatchInputError(
                number,
                f"`url` {url} differs from {first_url}: every line of a batch names one url.",
            )
        if custom_id in seen:
            raise BatchInputError(number, f"duplicate `custom_id` {custom_id!r}.")
        seen.add(custom_id)
        target = BATCH_ENDPOINTS[url]
        if body.get("stream"):
            raise BatchInputError(number, "`body.stream` cannot be true in a batch.")
        try:
            checked = body_check(endpoint=target, inbound=Inbound(body=body))
        except InvalidRequestError as exc:
            raise BatchInputError(number, f"`body`: {exc.message}") from None
        model = checked.model
        if model not in models:
            if models and not mixed_models_allowed:
                first = next(iter(models))
                raise BatchInputError(
                    number,
                    f"model `{model}` differs from `{first}` (line {models[first]}): a batch "
                    "file names one model.",
                )
            try:
                deployments_for(caller=caller, model=model, endpoint=target, registry=registry)
            except GatewayError as exc:
                raise BatchInputError(number, exc.message) from None
            models[model] = number
        count += 1
    if count == 0:
        raise InvalidRequestError(
            "The batch file holds no request.", param="file", code="invalid_batch_input"
        )
    return BatchInputSummary(lines=count, url=first_url or "", models=tuple(models))

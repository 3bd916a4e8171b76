"""Requests Ogem makes to its own /v1 pipeline on a caller's behalf.

The semantic cache embeds prompts, a batch runs its lines, a vector store embeds its chunks: each
goes through `gateway.relay.relay` exactly as a client's request would (the caller's model
allow-lists, routing and fallbacks, rate limits, budgets, caching and accounting, a RequestLog of
its own), with the Caller given instead of a credential. `internal_call` gives the JSON answer,
`internal_stream` the chunks of a streamed chat completion as they arrive (a streamed Assistants
run, a streamed Responses file_search).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.http import HttpRequest, StreamingHttpResponse

from gateway.body import body_read_json
from gateway.context import Caller
from gateway.errors import GatewayError
from gateway.guardrails.pipeline import guard_pipeline_set
from gateway.relay import relay
from gateway.semantic import semantic_embedder_set
from providers.base import Endpoint
from providers.sse import SSEParser


@dataclass(frozen=True, slots=True)
class InternalAnswer:
    """What /v1 answered: its status, its JSON body (OpenAI's error shape when not 200) and the
    headers Ogem set (x-ogem-*, x-request-id, rate-limit headers)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


class InternalStreamError(Exception):
    """A streamed internal call refused (before its first chunk: the status a client would have
    had) or failed mid-stream (the error event's body, status 500 unless it said otherwise)."""

    def __init__(self, answer: InternalAnswer) -> None:
        super().__init__(str((answer.body.get("error") or {}).get("message") or answer.status))
        self.answer = answer


def _request(
    *,
    endpoint: Endpoint,
    payload: dict[str, Any],
    headers: Mapping[str, str] | None,
    request_id: str | None,
) -> HttpRequest:
    request = HttpRequest()
    request.method = "POST"
    request.path = request.path_info = f"/v1/{endpoint.value}"
    request.META["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        request.META["HTTP_" + name.upper().replace("-", "_")] = value
    request.ogem_request_id = request_id or uuid.uuid4().hex  # type: ignore[attr-defined]
    request._body = orjson.dumps(payload)  # type: ignore[attr-defined]
    return request


async def internal_call(
    *,
    caller: Caller,
    endpoint: Endpoint,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    recorded_as: Endpoint | None = None,
    batch_id: str = "",
) -> InternalAnswer:
    """Run one request through the pipeline as `caller`. Never raises a GatewayError: the error
    comes back as the answer a client would have had. `recorded_as`: as `relay`'s. `batch_id`
    makes it a line of that batch: its cost is recorded at the batch price factor, and its usage
    once per `request_id` however often the line is run again (a resumed batch)."""
    payload = {name: value for name, value in body.items() if name != "stream"}
    request = _request(endpoint=endpoint, payload=payload, headers=headers, request_id=request_id)
    try:
        response = await relay(
            request,
            endpoint=endpoint,
            reader=body_read_json,
            caller=caller,
            recorded_as=recorded_as,
            batch_id=batch_id,
        )
    except GatewayError as error:
        return InternalAnswer(
            status=error.status, body=error.to_body(), headers=dict(error.headers)
        )
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = {"error": {"message": "not a JSON answer", "type": "api_error"}}
    return InternalAnswer(
        status=response.status_code,
        body=answer if isinstance(answer, dict) else {"data": answer},
        headers={name.lower(): value for name, value in response.items()},
    )


async def internal_stream(
    *,
    caller: Caller,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    recorded_as: Endpoint | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Run one chat completion through the pipeline as `caller`, streamed: its chunks as the
    upstream sends them (the last one with the usage: `stream_options.include_usage` is set).
    A refusal or a failure raises InternalStreamError with the answer a client would have had.
    Leaving the iteration early (aclose) ends the stream as a client going away would: the
    upstream is cancelled and the request recorded at the usage so far."""
    payload = {
        **body,
        "stream": True,
        "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
    }
    request = _request(
        endpoint=Endpoint.CHAT, payload=payload, headers=headers, request_id=request_id
    )
    try:
        response = await relay(
            request,
            endpoint=Endpoint.CHAT,
            reader=body_read_json,
            caller=caller,
            recorded_as=recorded_as,
        )
    except GatewayError as error:
        raise InternalStreamError(
            InternalAnswer(status=error.status, body=error.to_body(), headers=dict(error.headers))
        ) from error
    answered = {name.lower(): value for name, value in response.items()}
    if not isinstance(response, StreamingHttpResponse):  # an error answered as JSON
        try:
            refused = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            refused = {"error": {"message": "not a JSON answer", "type": "api_error"}}
        raise InternalStreamError(
            InternalAnswer(status=response.status_code, body=refused, headers=answered)
        )
    content: AsyncIterator[bytes] = response.streaming_content  # type: ignore[assignment]
    parser = SSEParser()
    done = False
    try:
        # Read to the end even after [DONE]: the relay settles the request (accounting, logs)
        # once its generator finishes; closing it before would record a client gone away.
        async for part in content:
            for data in parser.feed(part):
                if done or data == "[DONE]":
                    done = True
                    continue
                chunk = orjson.loads(data)
                if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                    error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                    status = error.get("status") if isinstance(error.get("status"), int) else 500
                    raise InternalStreamError(
                        InternalAnswer(status=status, body=chunk, headers=answered)
                    )
                if isinstance(chunk, dict):
                    yield chunk
    finally:
        await content.aclose()  # type: ignore[attr-defined]


# The semantic cache embeds prompts through this pipeline, and guardrails ask model groups through
# it; neither can import this module (the pipeline runs them), so they are given the call here.
# /v1's views import this module.
semantic_embedder_set(internal_call)
guard_pipeline_set(internal_call)

"""The Anthropic-compatible ingress: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

A Messages request is translated into an OpenAI chat request (providers/anthropic/inbound.py) and
runs through the ordinary /v1 pipeline (`gateway.relay.relay`: the same keys, `x-api-key`
included, limits, accounting, and routing to any model with gateway.resilience's retries,
fallbacks, circuits, deployment limits and queue); its OpenAI-shaped answer is translated back,
streams event by event. Errors on these routes use Anthropic's shape,
`{"type": "error", "error": {"type", "message"}}`, with Ogem's status codes; a stream that fails
after its first byte ends with an Anthropic `error` event.

`count_tokens` asks Anthropic when the chosen deployment (one whose circuit is not open, when
there is one) is an Anthropic one, and otherwise answers with the mock provider's documented
approximation of the prompt's tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import NinjaAPI

from gateway.auth import caller_authenticate
from gateway.body import Inbound, body_read_json
from gateway.errors import GatewayError
from gateway.health import health_available
from gateway.registry import registry_get, wildcard_match
from gateway.relay import relay
from gateway.responses import request_id_for
from gateway.router import deployment_choose, deployments_for
from providers.adapter import translating
from providers.anthropic.adapter import AnthropicAdapter
from providers.anthropic.inbound import (
    ChunkTranslator,
    anthropic_error_body,
    chat_response_to_message,
    chat_strip_anthropic_fields,
    messages_request_to_chat,
    openai_error_to_anthropic,
    sse_event,
)
from providers.base import Endpoint
from providers.mock.adapter import mock_token_count
from providers.registry import adapter_get
from providers.sse import SSEParser

logger = logging.getLogger(__name__)

_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
# Headers of the pipeline's response that do not describe the translated body.
_NOT_COPIED = frozenset({"content-type", "content-length"})


def _error(error: GatewayError, request: HttpRequest) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(anthropic_error_body(error)),
        status=error.status,
        content_type="application/json",
    )
    _request_id_set(response, request_id_for(request))
    for name, value in error.headers.items():
        response[name] = value
    return response


def _unexpected(request: HttpRequest) -> HttpResponse:
    logger.exception("unhandled error on /v1/messages (request %s)", request_id_for(request))
    return _error(GatewayError("The server had an error while processing your request."), request)


def _request_id_set(response: HttpResponse, request_id: str) -> None:
    # Anthropic's SDKs expose the `request-id` header as the response's `_request_id`.
    response["x-request-id"] = request_id
    response["request-id"] = request_id


def _copy_headers(source: HttpResponse, target: HttpResponse) -> HttpResponse:
    for name, value in source.items():
        if name.lower() not in _NOT_COPIED:
            target[name] = value
    if source.has_header("x-request-id"):
        _request_id_set(target, source["x-request-id"])
    return target


def _anthropic_fields_kept(model: str) -> bool:
    """Whether every deployment of `model` maps Anthropic-only fields (`cache_control`,
    `thinking_blocks`) itself: Anthropic, Claude on Vertex AI, Bedrock's cache points, Gemini,
    which drops them; an upstream that is passed the body as it is would refuse them."""
    registry = registry_get()
    group = registry.by_model.get(model) or wildcard_match(registry, model)

    def maps(provider: str) -> bool:
        adapter = adapter_get(provider)
        return adapter is not None and adapter.maps_anthropic_fields

    return bool(group) and all(maps(d.provider) for d in group)


async def _events(upstream: AsyncIterator[bytes], *, model: str) -> AsyncIterator[bytes]:
    """The pipeline's OpenAI SSE bytes → Anthropic's SSE events (comments are passed on)."""
    translator = ChunkTranslator(model=model)
    parser = SSEParser()
    try:
        async for part in upstream:
            if part.startswith(b":"):
                yield part
                continue
            for data in parser.feed(part):
                if data == "[DONE]":
                    for event in translator.finish():
                        yield event
                    return
                chunk = orjson.loads(data)
                if "error" in chunk and "choices" not in chunk:
                    yield sse_event("error", openai_error_to_anthropic(chunk["error"]))
                    return
                for event in translator.feed(chunk):
                    yield event
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


async def messages_create(request: HttpRequest) -> HttpResponse:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]
    requested: list[str] = []  # the model the client named, for the translated answer

    def read_translated(request: HttpRequest) -> Inbound:
        inbound = body_read_json(request)
        with translating("anthropic"):
            chat = messages_request_to_chat(inbound.body)
        if not _anthropic_fields_kept(chat["model"]):
            chat = chat_strip_anthropic_fields(chat)
        if "mock_response" in inbound.body:  # LiteLLM's test field: the relay judges it
            chat["mock_response"] = inbound.body["mock_response"]
        inbound.body = chat
        requested.append(chat["model"])
        return inbound

    try:
        response = await relay(request, endpoint=Endpoint.CHAT, reader=read_translated)
    except GatewayError as error:
        return _error(error, request)
    except Exception:
        return _unexpected(request)
    if response.status_code != 200:
        return response
    model = requested[0]
    if isinstance(response, StreamingHttpResponse):
        translated = StreamingHttpResponse(
            _events(response.streaming_content, model=model),  # type: ignore[arg-type]
            content_type="text/event-stream",
        )
        return _copy_headers(response, translated)
    completion = orjson.loads(response.content)
    message = chat_response_to_message(completion, model=completion.get("model") or model)
    translated_json = HttpResponse(orjson.dumps(message), content_type="application/json")
    return _copy_headers(response, translated_json)


async def messages_count_tokens(request: HttpRequest) -> HttpResponse:
    try:
        caller = await caller_authenticate(request)
        inbound = body_read_json(request)
        with translating("anthropic"):
            chat = messages_request_to_chat(inbound.body, count_only=True)
        candidates = deployments_for(
            caller=caller, model=chat["model"], endpoint=Endpoint.CHAT, registry=registry_get()
        )
        usable, _, _ = await health_available(candidates)
        deployment = deployment_choose(candidates=tuple(usable) or candidates)
        adapter = adapter_get(deployment.provider)
        if isinstance(adapter, AnthropicAdapter):
            tokens = await adapter.count_tokens(deployment=deployment, body=chat)
        else:
            tokens = _approximate_tokens(chat)
    except GatewayError as error:
        return _error(error, request)
    except Exception:
        return _unexpected(request)
    response = HttpResponse(orjson.dumps({"input_tokens": tokens}), content_type="application/json")
    _request_id_set(response, request_id_for(request))
    return response


def _approximate_tokens(chat: dict[str, Any]) -> int:
    texts: list[str] = []
    for message in chat["messages"]:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "text":
                texts.append(part["text"])
        for call in message.get("tool_calls") or []:
            texts.append(str((call.get("function") or {}).get("arguments") or ""))
    for tool in chat.get("tools") or []:
        texts.append(orjson.dumps(tool).decode())
    return sum(mock_token_count(text) for text in texts)


def ingress_mount(api: NinjaAPI) -> None:
    """Add the two routes to the /v1 API (before its catch-all unknown-route handler)."""
    api.post(
        "/messages",
        summary="Create a message (Anthropic Messages API)",
        openapi_extra=_JSON_BODY,
        operation_id="messages_create",
    )(messages_create)
    api.post(
        "/messages/count_tokens",
        summary="Count a message's input tokens (Anthropic Messages API)",
        openapi_extra=_JSON_BODY,
        operation_id="messages_count_tokens",
    )(messages_count_tokens)

"""The /v1 inference endpoints: thin async views over the pipeline in gateway/relay.py."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse

from gateway.body import Inbound, body_read_json, body_read_multipart
from gateway.context import RequestContext
from gateway.errors import NotFoundError
from gateway.registry import registry_get
from gateway.relay import relay
from gateway.router import models_visible
from providers.base import Endpoint


def _start(request: HttpRequest) -> None:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]


def _default_moderation_model(ctx: RequestContext) -> str | None:
    """Moderations may omit `model`: use the first visible model named like a moderation one."""
    for name in models_visible(caller=ctx.caller, registry=registry_get()):
        if "moderation" in name:
            return name
    return None


async def chat_completions(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.CHAT, reader=body_read_json)


async def completions(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.COMPLETIONS, reader=body_read_json)


async def embeddings(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.EMBEDDINGS, reader=body_read_json)


async def images_generations(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.IMAGES_GENERATIONS, reader=body_read_json)


async def images_edits(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.IMAGES_EDITS, reader=body_read_multipart)


async def images_variations(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.IMAGES_VARIATIONS, reader=body_read_multipart)


async def audio_transcriptions(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.AUDIO_TRANSCRIPTIONS, reader=body_read_multipart)


async def audio_translations(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.AUDIO_TRANSLATIONS, reader=body_read_multipart)


async def audio_speech(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.AUDIO_SPEECH, reader=body_read_json)


async def moderations(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(
        request,
        endpoint=Endpoint.MODERATIONS,
        reader=body_read_json,
        default_model=_default_moderation_model,
    )


async def rerank(request: HttpRequest) -> HttpResponse:
    _start(request)
    return await relay(request, endpoint=Endpoint.RERANK, reader=body_read_json)


_MULTIPART = frozenset(
    {
        Endpoint.IMAGES_EDITS,
        Endpoint.IMAGES_VARIATIONS,
        Endpoint.AUDIO_TRANSCRIPTIONS,
        Endpoint.AUDIO_TRANSLATIONS,
    }
)
_BY_PATH = {endpoint.value: endpoint for endpoint in Endpoint}


async def azure_deployment(request: HttpRequest, deployment: str, operation: str) -> HttpResponse:
    """Azure OpenAI clients' paths (`/deployments/{name}/chat/completions?api-version=...`):
    the deployment name is the model, the api-version is ignored."""
    _start(request)
    endpoint = _BY_PATH.get(operation)
    if endpoint is None:
        raise NotFoundError(
            f"Unknown request URL: POST /v1/deployments/{deployment}/{operation}.",
            code="unknown_url",
        )
    reader = body_read_multipart if endpoint in _MULTIPART else body_read_json

    def read(incoming: HttpRequest) -> Inbound:
        inbound = reader(incoming)
        inbound.body.setdefault("model", deployment)
        return inbound

    return await relay(request, endpoint=endpoint, reader=read)

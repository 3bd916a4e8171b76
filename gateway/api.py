"""The OpenAI-compatible /v1 API (Django Ninja, async).

Views read their bodies themselves (gateway/body.py) so that fields Ogem does not know pass through
to OpenAI-compatible upstreams untouched. Every error, Ogem's own, Ninja's or unexpected, is turned
into OpenAI's error shape by the one handler below.
"""

from __future__ import annotations

import logging

from django.db.utils import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError as NinjaAuthenticationError
from ninja.errors import HttpError, ValidationError

from gateway.anthropic_ingress import ingress_mount
from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
)
from gateway.responses import error_response, request_id_for
from gateway.responses_api import views as responses_api
from gateway.views import cost, inference, models, realtime, stored

logger = logging.getLogger(__name__)

api = NinjaAPI(
    title="Ogem",
    version="1",
    description="Ogem's OpenAI-compatible API. Request and response bodies follow OpenAI's API.",
    urls_namespace="v1",
    docs_url=None,
)

_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object"}}},
    }
}


def _post(path: str, view, *, multipart: bool = False, summary: str) -> None:  # type: ignore[no-untyped-def]
    api.post(
        path,
        summary=summary,
        openapi_extra=_MULTIPART_BODY if multipart else _JSON_BODY,
        operation_id=path.strip("/").replace("/", "_"),
    )(view)


_post("/chat/completions", inference.chat_completions, summary="Create a chat completion")
api.get(
    "/chat/completions",
    summary="List stored chat completions",
    operation_id="chat_completions_list",
)(stored.chat_completions_list)
api.get(
    "/chat/completions/{completion_id}",
    summary="Retrieve a stored chat completion",
    operation_id="chat_completions_retrieve",
)(stored.chat_completion_retrieve)
api.post(
    "/chat/completions/{completion_id}",
    summary="Update a stored chat completion's metadata",
    openapi_extra=_JSON_BODY,
    operation_id="chat_completions_update",
)(stored.chat_completion_update)
api.delete(
    "/chat/completions/{completion_id}",
    summary="Delete a stored chat completion",
    operation_id="chat_completions_delete",
)(stored.chat_completion_delete)
api.get(
    "/chat/completions/{completion_id}/messages",
    summary="List a stored chat completion's request messages",
    operation_id="chat_completions_messages_list",
)(stored.chat_completion_messages)
_post("/completions", inference.completions, summary="Create a (legacy) completion")
_post("/embeddings", inference.embeddings, summary="Create embeddings")
_post("/images/generations", inference.images_generations, summary="Create images")
_post("/images/edits", inference.images_edits, multipart=True, summary="Edit an image")
_post("/images/variations", inference.images_variations, multipart=True, summary="Image variations")
_post(
    "/audio/transcriptions",
    inference.audio_transcriptions,
    multipart=True,
    summary="Transcribe audio",
)
_post(
    "/audio/translations", inference.audio_translations, multipart=True, summary="Translate audio"
)
_post("/audio/speech", inference.audio_speech, summary="Create speech (binary audio)")
_post("/moderations", inference.moderations, summary="Classify text for moderation")
_post("/rerank", inference.rerank, summary="Rerank documents (Cohere/Jina shape)")
api.get("/models", summary="List the models this key may use", operation_id="models_list")(
    models.models_list
)
api.get("/models/{path:model}", summary="Retrieve a model", operation_id="models_retrieve")(
    models.models_retrieve
)

_post(
    "/realtime/client_secrets",
    realtime.realtime_client_secrets,
    summary="Create a Realtime client secret (an ephemeral key for one model)",
)
_post(
    "/realtime/calls",
    realtime.realtime_calls,
    multipart=True,
    summary="Set up a WebRTC Realtime call (SDP offer in, SDP answer out; OpenAI deployments)",
)
api.post(
    "/realtime/calls/{call_id}/hangup",
    summary="End a WebRTC Realtime call set up through Ogem",
    operation_id="realtime_calls_hangup",
)(realtime.realtime_call_hangup)
_post(
    "/realtime/sessions",
    realtime.realtime_sessions,
    summary="Create a Realtime session's ephemeral key (the beta's form)",
)
_post("/responses", responses_api.responses_create, summary="Create a model response")
api.get(
    "/responses/{response_id}",
    summary="Retrieve a model response",
    operation_id="responses_retrieve",
)(responses_api.response_retrieve)
api.delete(
    "/responses/{response_id}",
    summary="Delete a model response",
    operation_id="responses_delete",
)(responses_api.response_delete)
api.post(
    "/responses/{response_id}/cancel",
    summary="Cancel a background response",
    operation_id="responses_cancel",
)(responses_api.response_cancel)
api.get(
    "/responses/{response_id}/input_items",
    summary="List a response's input items",
    operation_id="responses_input_items_list",
)(responses_api.response_input_items)
_post("/cost/estimate", cost.cost_estimate, summary="Estimate the most a request would cost")
api.post(
    "/deployments/{deployment}/{path:operation}",
    summary="Azure OpenAI-style deployment paths (the deployment name is the model)",
    openapi_extra=_JSON_BODY,
    operation_id="azure_deployment",
)(inference.azure_deployment)
ingress_mount(api)  # Anthropic-compatible /v1/messages, before the catch-all


async def unknown_route(request: HttpRequest, path: str) -> HttpResponse:
    raise NotFoundError(f"Unknown request URL: {request.method} /v1/{path}.", code="unknown_url")


def api_routes_end() -> None:
    """The catch-all 404 route, added last: the URL configuration (ogem_site/urls.py) mounts the
    apps above the gateway that serve /v1 routes (files/api.py) first, then calls this."""
    api.api_operation(
        ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:path}", include_in_schema=False
    )(unknown_route)


@api.exception_handler(Exception)
def on_exception(request: HttpRequest, exc: Exception) -> HttpResponse:
    error: GatewayError
    if isinstance(exc, GatewayError):
        error = exc
    elif isinstance(exc, ValidationError):
        error = InvalidRequestError(_validation_message(exc))
    elif isinstance(exc, Http404):
        error = NotFoundError("Not found.")
    elif isinstance(exc, NinjaAuthenticationError):
        error = AuthenticationError("Invalid API key.")
    elif isinstance(exc, HttpError) and exc.status_code < 500:
        error = InvalidRequestError(str(exc.message), status=exc.status_code)
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # The database is down or unreachable (a key or budget not cached yet needed it).
        logger.warning("database unavailable on /v1 (request %s): %s", request_id_for(request), exc)
        error = GatewayError(
            "The database is unavailable; retry shortly.",
            status=503,
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
    else:
        logger.exception("unhandled error on /v1 (request %s)", request_id_for(request))
        error = GatewayError("The server had an error while processing your request.")
    return error_response(error, request=request)


for _exc in (ValidationError, Http404, NinjaAuthenticationError, HttpError, GatewayError):
    api.add_exception_handler(_exc, on_exception)


def _validation_message(exc: ValidationError) -> str:
    errors = getattr(exc, "errors", None) or []
    if errors and isinstance(errors[0], dict):
        first = errors[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return f"Invalid value for `{where}`: {first.get('msg', 'invalid')}."
    return "Invalid request."

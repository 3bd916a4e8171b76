"""The provider adapter interface, and the one path that performs an upstream exchange.

An adapter turns an OpenAI-shaped request into its upstream's wire format and the upstream's
answer back into OpenAI's shape. Four small pure-ish steps, composed by `call` and `stream`:

    build_request  -> UpstreamRequest       (url, headers, body; auth applied)
    parse_response -> OpenAI-shaped dict    (or bytes for binary endpoints such as audio/speech)
    translate_stream -> OpenAI chunk dicts  (from the upstream's raw byte stream)
    error_parse    -> UpstreamFailure       (what the upstream's error body says; the status
                                             decides Ogem's error, in providers/errors.py)

Every round trip goes through `exchange` (send, read, close, status) or `exchange_open` (send
and status; the caller reads the body in chunks and closes it), so transport failures and error
statuses are judged the same way for every provider. Providers whose API needs several round
trips (Replicate's predictions, AssemblyAI's jobs) override `call`/`stream` and make each one
with `exchange`. Adapters are stateless singletons: one instance per provider per process,
registered in `providers/registry.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from providers.addresses import AddressRefusedError
from providers.base import Deployment, Endpoint
from providers.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamFailure,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    error_body_parse,
    upstream_error,
)
from providers.events import STREAM_FIELDS, events_from_result
from providers.http import (
    UploadFile,
    UpstreamHTTPResponse,
    UpstreamRequest,
    request_body,
    upstream_send,
)


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class BinaryStream:
    """A binary upstream body (audio/speech), relayed chunk by chunk; closing `chunks` closes it."""

    content_type: str
    chunks: AsyncIterator[bytes]


def upstream_refusal(*, provider: str, error: AddressRefusedError) -> UpstreamError:
    """A connection the deployment's address policy refused: nothing was sent, nothing relayed."""
    return UpstreamError(
        f"Ogem refused to connect to the upstream of provider {provider}: {error}.",
        provider=provider,
        code="upstream_address_refused",
    )


def transport_error(*, provider: str, error: BaseException) -> UpstreamError:
    """The upstream error a failed send or read (one of TRANSPORT_ERRORS) is."""
    if isinstance(error, TimeoutError):
        return UpstreamTimeoutError(
            f"The upstream provider {provider} timed out.", provider=provider
        )
    if isinstance(error, aiohttp.ClientPayloadError):
        return UpstreamError(
            f"The upstream provider {provider} ended its response early.", provider=provider
        )
    if isinstance(error, AddressRefusedError):
        return upstream_refusal(provider=provider, error=error)
    return UpstreamUnavailableError(
        f"The upstream provider {provider} is unreachable ({type(error).__name__}).",
        provider=provider,
    )


TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def json_parse(raw: bytes, *, provider: str) -> Any:
    """An upstream's JSON answer; an invalid one is the upstream's failure (502)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{provider} answered with invalid JSON.", provider=provider) from exc


class translating:
    """Translating the client's body for an upstream: a failure there is the body's fault (a shape
    the translation did not expect), answered 400 `invalid_request_error`, never 500. Only the
    request's translation runs inside; upstream answers are judged elsewhere (502/503/504)."""

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, GatewayError) or not isinstance(exc, Exception):
            return False
        raise InvalidRequestError(
            f"The request could not be translated for provider {self.provider}: a field has an "
            "unexpected type or shape."
        ) from exc


class ProviderAdapter:
    name: ClassVar[str]
    endpoints: ClassVar[frozenset[Endpoint]]
    # The event-streaming endpoints (providers/events.py) its upstream streams itself; the
    # others are answered in full and relayed as events.
    event_stream_endpoints: ClassVar[frozenset[Endpoint]] = frozenset()
    # Whether the adapter builds its upstream body from the OpenAI request (mapping Anthropic's
    # `cache_control` markers, dropping fields its API does not know) rather than passing the
    # body through: Anthropic-only fields are then safe to send it.
    maps_anthropic_fields: ClassVar[bool] = False

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        raise NotImplementedError

    def request_translate(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        """`build_request` for the client's body, its failures answered 400 (`translating`)."""
        with translating(self.name):
            return self.build_request(
                endpoint=endpoint, deployment=deployment, body=body, stream=stream, files=files
            )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any] | bytes:
        raise NotImplementedError

    def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield OpenAI-shaped chunk dicts from the upstream's raw body chunks."""
        raise NotImplementedError

    def error_parse(self, response: UpstreamResponse) -> UpstreamFailure:
        """What the upstream's error answer says; overridden where the body or headers carry
        more than `error_body_parse` reads (Google's retry delay, Bedrock's exception name)."""
        return error_body_parse(response.body, response.headers)

    def map_error(self, *, deployment: Deployment, response: UpstreamResponse) -> GatewayError:
        """The upstream's error answer as Ogem's error: one map for every provider."""
        return upstream_error(
            provider=self.name,
            status=response.status,
            failure=self.error_parse(response),
            secrets=deployment.secrets,
        )

    def realtime_target(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """The WebSocket URL and headers of a Realtime session (adapters with
        `Endpoint.REALTIME` in `endpoints` override it)."""
        raise InvalidRequestError(f"Provider {self.name} does not serve the Realtime API.")

    async def realtime_address(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """`realtime_target`, for adapters whose credentials must be awaited (Vertex AI)."""
        return self.realtime_target(deployment)

    async def realtime_call(
        self, *, deployment: Deployment, sdp: str, session: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Set up a WebRTC Realtime call: the SDP answer and the call's `Location` (OpenAI's
        `POST /realtime/calls`, overridden where the provider serves it)."""
        raise InvalidRequestError(f"Provider {self.name} does not serve WebRTC Realtime calls.")

    async def realtime_call_hangup(self, *, deployment: Deployment, call_id: str) -> None:
        """End a WebRTC call (OpenAI's `POST /realtime/calls/{call_id}/hangup`)."""
        raise InvalidRequestError(f"Provider {self.name} does not serve WebRTC Realtime calls.")

    def realtime_live_model(self, deployment: Deployment) -> str | None:
        """The model resource of a Gemini Live API session (`setup.model`); None for an
        upstream that speaks OpenAI's Realtime protocol itself."""
        return None

    def stream_usage(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The usage block a translated stream chunk carries, if any."""
        return chunk.get("usage")

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        """One non-streaming round trip through the shared HTTP client."""
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False, files=files
        )
        response = await self.exchange(request, deployment=deployment)
        return self.parse_response(endpoint=endpoint, deployment=deployment, response=response)

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI-shaped chunks as the upstream sends them; closing the generator closes the
        upstream connection (a client disconnect cancels the upstream request)."""
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=True, files=files
        )
        response = await self.exchange_open(request, deployment=deployment)
        try:
            translated = self.translate_stream(
                endpoint=endpoint, deployment=deployment, chunks=self.body_chunks(response)
            )
            async for chunk in translated:
                yield chunk
        finally:
            response.close()

    async def stream_events(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The typed events of a streamed image or transcription request (providers/events.py):
        the upstream's own stream where it has one, else its complete answer as those events."""
        if endpoint not in self.event_stream_endpoints:
            whole = {k: v for k, v in body.items() if k not in STREAM_FIELDS}
            result = await self.call(
                endpoint=endpoint, deployment=deployment, body=whole, files=files
            )
            for event in events_from_result(endpoint=endpoint, body=body, result=result):
                yield event
            return
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=True, files=files
        )
        response = await self.exchange_open(request, deployment=deployment)
        try:
            if "event-stream" in response.headers.get("Content-Type", ""):
                translated = self.translate_stream(
                    endpoint=endpoint, deployment=deployment, chunks=self.body_chunks(response)
                )
                async for event in translated:
                    yield event
                return
            # An upstream may ignore `stream` for a model (OpenAI's whisper-1 does): its
            # complete answer becomes the events.
            whole = await self._read(response)
        finally:
            response.close()
        result = self.parse_response(endpoint=endpoint, deployment=deployment, response=whole)
        for event in events_from_result(endpoint=endpoint, body=body, result=result):
            yield event

    async def open_binary(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any]
    ) -> BinaryStream:
        """Start a binary response (audio/speech); raises before any byte is relayed on error."""
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False
        )
        response = await self.exchange_open(request, deployment=deployment)
        content_type = response.headers.get("Content-Type", "application/octet-stream")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in self.body_chunks(response):
                    yield chunk
            finally:
                response.close()

        return BinaryStream(content_type=content_type, chunks=chunks())

    async def exchange(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamResponse:
        """One whole round trip: send, read the body, close; an error status raises
        `map_error`'s error, a transport failure its upstream error."""
        response = await self._read(await self._open(request, deployment=deployment))
        if response.status >= 400:
            raise self.map_error(deployment=deployment, response=response)
        return response

    async def exchange_open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        """Send, and return at a successful response's head: the caller reads the body
        (`body_chunks`) and closes it. An error status is read, closed and raised."""
        response = await self._open(request, deployment=deployment)
        if response.status < 400:
            return response
        raise self.map_error(deployment=deployment, response=await self._read(response))

    async def _read(self, response: UpstreamHTTPResponse) -> UpstreamResponse:
        """The whole response, read and closed."""
        try:
            raw = await response.read()
        except TRANSPORT_ERRORS as exc:
            raise transport_error(provider=self.name, error=exc) from exc
        finally:
            response.close()
        return UpstreamResponse(status=response.status, headers=response.headers, body=raw)

    async def _open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        """Send `request`, returning at the response's head (adapters that sign or authenticate
        requests override this and call it)."""
        with translating(self.name):
            body = request_body(request)
        try:
            return await upstream_send(
                method=request.method,
                url=request.url,
                headers=request.headers,
                body=body,
                timeouts=deployment.timeouts,
                proxy=deployment.proxy,
                encoded=request.encoded,
                policy=deployment.address_policy,
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_error(provider=self.name, error=exc) from exc

    async def body_chunks(self, response: UpstreamHTTPResponse) -> AsyncIterator[bytes]:
        """The response body as it arrives; transport failures are upstream errors."""
        content = response.content
        while True:
            try:
                chunk = await content.readany()
            except TRANSPORT_ERRORS as exc:
                raise transport_error(provider=self.name, error=exc) from exc
            if not chunk:
                return
            yield chunk

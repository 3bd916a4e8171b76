"""The provider adapter interface.

An adapter turns an OpenAI-shaped request into its upstream's wire format and the upstream's
answer back into OpenAI's shape. Four small pure-ish steps, composed by `call` and `stream`:

    build_request  -> UpstreamRequest       (url, headers, body; auth applied)
    parse_response -> OpenAI-shaped dict    (or bytes for binary endpoints such as audio/speech)
    translate_stream -> OpenAI chunk dicts  (from the upstream's raw byte stream)
    map_error      -> GatewayError          (status and message, provider named, no secret)

Providers whose API needs several round trips (Replicate's predictions, AssemblyAI's jobs)
override `call`/`stream`. Adapters are stateless singletons: one instance per provider per
process, registered in `providers/registry.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from providers.addresses import AddressRefusedError
from providers.base import Deployment, Endpoint
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

    def map_error(self, *, deployment: Deployment, response: UpstreamResponse) -> GatewayError:
        raise NotImplementedError

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
        response = await self._open(request, deployment=deployment)
        try:
            raw = await self._guard(response.read())
        finally:
            response.close()
        upstream = UpstreamResponse(status=response.status, headers=response.headers, body=raw)
        if response.status >= 400:
            raise self.map_error(deployment=deployment, response=upstream)
        return self.parse_response(endpoint=endpoint, deployment=deployment, response=upstream)

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
        response = await self._open(request, deployment=deployment)
        try:
            await self._raise_for_status(response, deployment=deployment)
            translated = self.translate_stream(
                endpoint=endpoint, deployment=deployment, chunks=self._body_chunks(response)
            )
            async for chunk in translated:
                yield chunk
        finally:
            response.close()

    async def open_binary(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any]
    ) -> BinaryStream:
        """Start a binary response (audio/speech); raises before any byte is relayed on error."""
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False
        )
        response = await self._open(request, deployment=deployment)
        try:
            await self._raise_for_status(response, deployment=deployment)
        except BaseException:
            response.close()
            raise
        content_type = response.headers.get("Content-Type", "application/octet-stream")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in self._body_chunks(response):
                    yield chunk
            finally:
                response.close()

        return BinaryStream(content_type=content_type, chunks=chunks())

    async def _open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        with translating(self.name):
            body = request_body(request)
        return await self._guard(
            upstream_send(
                method=request.method,
                url=request.url,
                headers=request.headers,
                body=body,
                timeouts=deployment.timeouts,
                proxy=deployment.proxy,
                policy=deployment.address_policy,
            )
        )

    async def _raise_for_status(
        self, response: UpstreamHTTPResponse, *, deployment: Deployment
    ) -> None:
        if response.status < 400:
            return
        raw = await self._guard(response.read())
        upstream = UpstreamResponse(status=response.status, headers=response.headers, body=raw)
        raise self.map_error(deployment=deployment, response=upstream)

    async def _body_chunks(self, response: UpstreamHTTPResponse) -> AsyncIterator[bytes]:
        # The transport errors of _guard, inline: one coroutine less per chunk on a hot loop.
        content = response.content
        while True:
            try:
                chunk = await content.readany()
            except TimeoutError as exc:
                raise UpstreamTimeoutError(
                    f"The upstream provider {self.name} timed out.", provider=self.name
                ) from exc
            except aiohttp.ClientPayloadError as exc:
                raise UpstreamError(
                    f"The upstream provider {self.name} ended its response early.",
                    provider=self.name,
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise UpstreamUnavailableError(
                    f"The upstream provider {self.name} is unreachable ({type(exc).__name__}).",
                    provider=self.name,
                ) from exc
            if not chunk:
                return
            yield chunk

    async def _guard(self, awaitable: Any) -> Any:
        """Await an upstream I/O step, turning transport failures into upstream errors."""
        try:
            return await awaitable
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"The upstream provider {self.name} timed out.", provider=self.name
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamError(
                f"The upstream provider {self.name} ended its response early.",
                provider=self.name,
            ) from exc
        except AddressRefusedError as exc:
            raise upstream_refusal(provider=self.name, error=exc) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailableError(
                f"The upstream provider {self.name} is unreachable ({type(exc).__name__}).",
                provider=self.name,
            ) from exc

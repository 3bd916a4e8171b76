"""The shared adapter of every upstream that speaks OpenAI's wire format.

Subclasses set their quirks as class attributes (default base URL, auth header, parameters the
upstream rejects) and override the small hooks below; the request body is otherwise passed
through untouched, so parameters OpenAI adds tomorrow reach the upstream today, and extra fields in
responses (Perplexity's citations, Groq's x_groq) are kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import orjson

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    json_parse,
)
from providers.base import CHAT_FAMILY_ENDPOINTS, Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, error_object_parse, upstream_error
from providers.events import EVENT_STREAM_ENDPOINTS, event_is_final
from providers.sse import sse_data

STREAMING_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


class OpenAICompatibleAdapter(ProviderAdapter):
    name: ClassVar[str] = "openai_compatible"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_FAMILY_ENDPOINTS
    default_api_base: ClassVar[str] = ""
    # Parameters the upstream answers with a 400 (or ignores badly): dropped before sending.
    rejected_params: ClassVar[frozenset[str]] = frozenset()
    # Whether the upstream understands stream_options.include_usage.
    stream_usage_option: ClassVar[bool] = True

    def api_base(self, deployment: Deployment) -> str:
        base = deployment.api_base or self.default_api_base
        if not base:
            raise InvalidRequestError(
                f"The deployment {deployment.id} of provider {self.name} has no api_base."
            )
        return base.rstrip("/")

    def url(self, *, endpoint: Endpoint, deployment: Deployment) -> str:
        return f"{self.api_base(deployment)}/{endpoint.value}"

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        if not deployment.api_key:
            return {}
        return {"Authorization": f"Bearer {deployment.api_key}"}

    def realtime_target(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """The WebSocket URL and headers of a Realtime session on this deployment (OpenAI's
        form: `wss://<api_base>/realtime?model=<upstream model>`)."""
        base = self.api_base(deployment)
        scheme, sep, rest = base.partition("://")
        ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme)
        url = f"{ws_scheme}{sep}{rest}/realtime?model={quote(deployment.upstream_model, safe='')}"
        return url, self.headers(deployment)

    async def realtime_call(
        self, *, deployment: Deployment, sdp: str, session: dict[str, Any]
    ) -> tuple[str, str | None]:
        """`POST <api_base>/realtime/calls` as multipart (`sdp`, `session` with the upstream
        model): the SDP answer (201) and the call's `Location`; an error answer is mapped."""
        request = UpstreamRequest(
            method="POST",
            url=f"{self.api_base(deployment)}/realtime/calls",
            headers=self.headers(deployment),
            form={
                "session": orjson.dumps({**session, "model": deployment.upstream_model}).decode()
            },
            # The offer as a part of its own, as OpenAI's SDKs send it (and multipart for sure).
            files=[UploadFile("sdp", "offer.sdp", sdp.encode(), "application/sdp")],
        )
        response = await self._read(await self._open(request, deployment=deployment))
        if response.status >= 400:
            raise self.map_error(deployment=deployment, response=response)
        return response.body.decode("utf-8", "replace"), response.headers.get("Location")

    async def realtime_call_hangup(self, *, deployment: Deployment, call_id: str) -> None:
        """`POST <api_base>/realtime/calls/{call_id}/hangup`; an error answer is mapped."""
        request = UpstreamRequest(
            method="POST",
            url=f"{self.api_base(deployment)}/realtime/calls/{quote(call_id, safe='')}/hangup",
            headers=self.headers(deployment),
            json={},
        )
        response = await self._read(await self._open(request, deployment=deployment))
        if response.status >= 400:
            raise self.map_error(deployment=deployment, response=response)

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers = self.auth_headers(deployment)
        headers.update(deployment.params.get("extra_headers") or {})
        return headers

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        """The upstream body: the client's, with the upstream model id and the quirks applied."""
        prepared = {k: v for k, v in body.items() if k not in self.rejected_params}
        prepared["model"] = deployment.upstream_model
        if stream and endpoint in STREAMING_ENDPOINTS:
            prepared["stream"] = True
            if self.stream_usage_option:
                options = dict(prepared.get("stream_options") or {})
                options["include_usage"] = True
                prepared["stream_options"] = options
            else:
                prepared.pop("stream_options", None)
        elif stream and endpoint in self.event_stream_endpoints:
            prepared["stream"] = True
            prepared.pop("stream_options", None)
        elif "stream" in prepared:
            prepared["stream"] = False
            prepared.pop("stream_options", None)
        return prepared

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        prepared = self.prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        request = UpstreamRequest(
            method="POST",
            url=self.url(endpoint=endpoint, deployment=deployment),
            headers=self.headers(deployment),
        )
        if files:
            request.form = {
                k: v if isinstance(v, str) else orjson.dumps(v).decode()
                for k, v in prepared.items()
                if v is not None
            }
            request.files = list(files)
        else:
            request.json = prepared
        return request

    def _response_request(
        self,
        *,
        deployment: Deployment,
        method: str,
        response_id: str,
        suffix: str,
        query: Mapping[str, str] | None,
    ) -> UpstreamRequest:
        head, _, version = self.url(endpoint=Endpoint.RESPONSES, deployment=deployment).partition(
            "?"
        )
        url = f"{head}/{quote(response_id, safe='')}{suffix}"
        params = "&".join(part for part in (version, urlencode(query or {})) if part)
        if params:
            url = f"{url}?{params}"
        return UpstreamRequest(method=method, url=url, headers=self.headers(deployment))

    async def response_route(
        self,
        *,
        deployment: Deployment,
        method: str,
        response_id: str,
        suffix: str = "",
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One of a stored response's routes upstream (`GET /responses/{id}`, its `DELETE`,
        `/cancel`, `/input_items`), for adapters that serve the Responses API natively."""
        request = self._response_request(
            deployment=deployment,
            method=method,
            response_id=response_id,
            suffix=suffix,
            query=query,
        )
        response = await self.exchange(request, deployment=deployment)
        answer = json_parse(response.body, provider=self.name) if response.body else {}
        return answer if isinstance(answer, dict) else {}

    async def response_replay(
        self, *, deployment: Deployment, response_id: str, query: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        """A background response's event stream again (`GET /responses/{id}?stream=true`), its
        bytes as the upstream sends them; raises before the first byte on an error status."""
        request = self._response_request(
            deployment=deployment, method="GET", response_id=response_id, suffix="", query=query
        )
        response = await self.exchange_open(request, deployment=deployment)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in self.body_chunks(response):
                    yield chunk
            finally:
                response.close()

        return chunks()

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any] | bytes:
        content_type = response.headers.get("Content-Type", "")
        if "json" not in content_type:
            return response.body
        try:
            return orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"The upstream provider {self.name} answered with invalid JSON.",
                provider=self.name,
            ) from exc

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        # Image and transcription streams end at their final event, without `[DONE]`.
        typed = endpoint in EVENT_STREAM_ENDPOINTS
        finished = False
        async for data in sse_data(chunks):
            if data == "[DONE]":
                return
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    f"The upstream provider {self.name} sent an invalid stream event.",
                    provider=self.name,
                ) from exc
            if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                raise upstream_error(
                    provider=self.name,
                    status=502,
                    failure=error_object_parse(chunk),
                    secrets=deployment.secrets,
                )
            if typed and isinstance(chunk, dict):
                finished = finished or event_is_final(chunk)
            yield chunk
        if finished:
            return
        raise UpstreamError(
            f"The upstream provider {self.name} ended the stream early.", provider=self.name
        )

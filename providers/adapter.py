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
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.errors import GatewayError
from providers.base import Deployment, Endpoint


@dataclass(slots=True)
class UploadFile:
    field: str
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None  # serialized with orjson when set
    content: bytes | None = None  # raw body, when json is None
    form: dict[str, str] = field(default_factory=dict)  # multipart fields (with files)
    files: list[UploadFile] = field(default_factory=list)


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


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

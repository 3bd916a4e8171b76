"""Predibase (LoRAX) deployments as LiteLLM's `predibase/` calls them: `POST {api_base}/{tenant_id}
/deployments/v2/llms/{model}/generate` (or `/generate_stream`), bearer API token, in Text
Generation Inference's format (providers/huggingface/tgi.py): the chat messages become one
prompt, `{"inputs", "parameters"}` is answered `{"generated_text", "details"}`, the stream is
server-sent token events whose last carries `details`; `max_new_tokens` is 4096 (LiteLLM's) when
the client sets no limit. A fine-tuned adapter is chosen with
`params.adapter_id` (and `params.adapter_source`: `pbase`, `hub`, `s3`), sent in `parameters`.

Deployment settings (LiteLLM's names): `params.tenant_id` (or `params.predibase_tenant_id`, else
PREDIBASE_TENANT_ID), `api_base` (default `https://serving.app.predibase.com`, else
PREDIBASE_API_BASE), `api_key` the API token.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    json_parse,
)
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, UpstreamFailure, upstream_error
from providers.huggingface.tgi import (
    GenerateStreamTranslator,
    chat_generate_request,
    chunk_as_chat,
    completion_as_chat,
    generate_response,
)
from providers.sse import sse_data

DEFAULT_API_BASE = "https://serving.app.predibase.com"
ADAPTER_PARAMS = ("adapter_id", "adapter_source")
# LoRAX stops at 20 new tokens unless told otherwise; LiteLLM asks for 4096 when the client sets
# no limit, and so does Ogem, so answers are not cut short.
DEFAULT_MAX_NEW_TOKENS = 4096


def tenant_for(deployment: Deployment) -> str:
    tenant = (
        deployment.params.get("tenant_id")
        or deployment.params.get("predibase_tenant_id")
        or os.environ.get("PREDIBASE_TENANT_ID")
    )
    if not tenant:
        raise InvalidRequestError(
            f"The predibase deployment {deployment.id} needs params.tenant_id "
            "(or PREDIBASE_TENANT_ID)."
        )
    return str(tenant)


def generate_url(deployment: Deployment, *, stream: bool) -> str:
    base = deployment.api_base or os.environ.get("PREDIBASE_API_BASE") or DEFAULT_API_BASE
    model = quote(deployment.upstream_model, safe="")
    action = "generate_stream" if stream else "generate"
    return f"{base.rstrip('/')}/{tenant_for(deployment)}/deployments/v2/llms/{model}/{action}"


class PredibaseAdapter(ProviderAdapter):
    name: ClassVar[str] = "predibase"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT})

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"predibase deployments do not serve /v1/{endpoint.value}.")
        payload = chat_generate_request(body=body, stream=stream)
        payload["parameters"].setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        for name in ADAPTER_PARAMS:
            if deployment.params.get(name):
                payload["parameters"][name] = deployment.params[name]
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return UpstreamRequest(
            method="POST",
            url=generate_url(deployment, stream=stream),
            headers=headers,
            json=payload,
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        if not isinstance(answer, dict) or "generated_text" not in answer:
            raise UpstreamError("predibase answered without generated_text.", provider=self.name)
        text = generate_response(
            answer, model=deployment.upstream_model, identity=f"chatcmpl-{uuid.uuid4().hex}"
        )
        return completion_as_chat(text)

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = GenerateStreamTranslator(
            model=deployment.upstream_model, identity=f"chatcmpl-{uuid.uuid4().hex}"
        )
        first = True
        async for data in sse_data(chunks):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "predibase sent an invalid stream event.", provider=self.name
                ) from exc
            if isinstance(event, dict) and event.get("error"):
                raise upstream_error(
                    provider=self.name,
                    status=502,
                    failure=UpstreamFailure(message=str(event["error"])),
                    secrets=deployment.secrets,
                )
            for chunk in translator.feed(event if isinstance(event, dict) else {}):
                yield chunk_as_chat(chunk, first=first and bool(chunk["choices"]))
                first = first and not chunk["choices"]
            if translator.finished:
                return
        raise UpstreamError("predibase ended the stream early.", provider=self.name)

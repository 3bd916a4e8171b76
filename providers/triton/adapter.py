"""NVIDIA Triton Inference Server, as LiteLLM's `triton/` reaches it: `api_base` is the model's
whole endpoint URL, and its last segment picks the protocol.

- `.../v2/models/{model}/generate`: Triton's generate extension (TensorRT-LLM and vLLM
  backends). The body's top-level keys are the model's inputs: `text_input` (the chat messages
  as one prompt), `max_tokens` (default 2000) and the sampling fields given (`temperature`,
  `top_p`, `top_k`, `seed`, `stop_words` from `stop`); the answer is `{"model_name",
  "model_version", "text_output"}`. Streams go to `.../generate_stream` with `"stream": true`
  and answer server-sent events of the same objects, each with the next piece of text.
- `.../v2/models/{model}/infer`: KServe's v2 inference protocol. Inputs are tensors
  (`{"name", "shape", "datatype", "data"}`): `text_input` as BYTES, `max_tokens` as INT32,
  the sampling fields as FP32/INT32; the answer's `outputs` tensor `text_output` is the text.
  /infer does not stream: a streamed request gets the whole answer as one chunk.

An `api_base` ending in neither is the server's root, and `/v2/models/{model}/generate` is
used. Triton reports no token counts: Ogem estimates them (docs/governance.md). Errors are
`{"error": "..."}`.
"""

from __future__ import annotations

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
from providers.huggingface.tgi import chat_prompt
from providers.sse import sse_data
from providers.whole import answer_as_stream, chat_chunk, chat_completion

PROVIDER = "triton"
# LiteLLM's default output budget for Triton (its models need one).
DEFAULT_MAX_TOKENS = 2000
FLOAT_FIELDS = ("temperature", "top_p")
INT_FIELDS = ("top_k", "seed")


def protocol_of(deployment: Deployment) -> tuple[str, str]:
    """(`generate` or `infer`, the endpoint URL)."""
    base = (deployment.api_base or "").rstrip("/")
    if not base:
        raise InvalidRequestError(
            f"The triton deployment {deployment.id} needs an api_base (the model's "
            "`.../v2/models/<model>/generate` or `/infer` URL)."
        )
    for kind in ("generate", "infer"):
        if base.endswith(f"/{kind}"):
            return kind, base
    return "generate", f"{base}/v2/models/{quote(deployment.upstream_model, safe='')}/generate"


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    fields["max_tokens"] = int(max_tokens or DEFAULT_MAX_TOKENS)
    for name in (*FLOAT_FIELDS, *INT_FIELDS):
        if body.get(name) is not None:
            fields[name] = body[name]
    return fields


def generate_payload(*, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {"text_input": chat_prompt(body.get("messages"))}
    payload.update(_sampling(body))
    stop = body.get("stop")
    payload["bad_words"] = ""
    payload["stop_words"] = ([stop] if isinstance(stop, str) else list(stop)) if stop else ""
    if stream:
        payload["stream"] = True
    return payload


def infer_payload(*, body: dict[str, Any]) -> dict[str, Any]:
    inputs = [
        {
            "name": "text_input",
            "shape": [1],
            "datatype": "BYTES",
            "data": [chat_prompt(body.get("messages"))],
        }
    ]
    for name, value in _sampling(body).items():
        datatype = "FP32" if name in FLOAT_FIELDS else "INT32"
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    return {"inputs": inputs}


def infer_text(answer: Any) -> str:
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise UpstreamError("triton answered without outputs.", provider=PROVIDER)
    named = [o for o in outputs if isinstance(o, dict) and o.get("name") == "text_output"]
    output = named[0] if named else outputs[0]
    data = output.get("data") if isinstance(output, dict) else None
    if isinstance(data, list):
        return "".join(str(d) for d in data)
    return str(data or "")


class TritonAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
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
            raise InvalidRequestError(f"triton deployments do not serve /v1/{endpoint.value}.")
        kind, url = protocol_of(deployment)
        headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        if kind == "infer":
            payload = infer_payload(body=body)
        else:
            payload = generate_payload(body=body, stream=stream)
            if stream:
                url = f"{url}_stream"
        return UpstreamRequest(method="POST", url=url, headers=headers, json=payload)

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        kind, _ = protocol_of(deployment)
        if kind == "infer":
            text = infer_text(answer)
        elif isinstance(answer, dict) and isinstance(answer.get("text_output"), str):
            text = answer["text_output"]
        else:
            raise UpstreamError("triton answered without text_output.", provider=self.name)
        return chat_completion(
            text=text, model=deployment.upstream_model, identity=f"chatcmpl-{uuid.uuid4().hex}"
        )

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        kind, _ = protocol_of(deployment)
        if kind == "generate":
            async for chunk in super().stream(
                endpoint=endpoint, deployment=deployment, body=body, files=files
            ):
                yield chunk
            return
        # /infer has no stream: the whole answer, as the one chunk it makes.
        answer = await self.call(endpoint=endpoint, deployment=deployment, body=body)
        assert isinstance(answer, dict)
        async for chunk in answer_as_stream(answer):
            yield chunk

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        identity, model = f"chatcmpl-{uuid.uuid4().hex}", deployment.upstream_model
        first = True
        async for data in sse_data(chunks):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "triton sent an invalid stream event.", provider=self.name
                ) from exc
            if not isinstance(event, dict):
                continue
            if event.get("error"):
                raise upstream_error(
                    provider=self.name,
                    status=502,
                    failure=UpstreamFailure(message=str(event["error"])),
                    secrets=deployment.secrets,
                )
            delta: dict[str, Any] = {"content": str(event.get("text_output") or "")}
            if first:
                delta["role"] = "assistant"
                first = False
            yield chat_chunk(identity=identity, model=model, delta=delta, finish=None)
        # The stream ends when Triton's response does: that is the end of generation.
        yield chat_chunk(identity=identity, model=model, delta={}, finish="stop")

"""Mistral's La Plateforme (https://api.mistral.ai/v1): OpenAI-shaped with its own names.

Mistral rejects unknown fields (422), spells the seed ``random_seed``, has no ``user``,
``logit_bias``, ``logprobs``, ``stream_options`` (it reports usage in the last chunk anyway) and
calls ``tool_choice: "required"`` ``"any"``. ``tool_choice: "none"`` and ``reasoning_effort``
are Mistral's own and pass through; a reasoning answer's ``content`` is a list of chunks
(``thinking`` chunks holding text chunks, then ``text`` chunks), which is flattened into
OpenAI's string ``content`` and ``reasoning_content``, in answers and stream deltas alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from providers.adapter import UpstreamResponse
from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


def _chunks_text(chunks: list[Any], kind: str) -> str:
    """The text of a Mistral content list's chunks of one kind (a thinking chunk's text is
    itself a list of text chunks)."""
    parts: list[str] = []
    for chunk in chunks:
        if not isinstance(chunk, dict) or chunk.get("type") != kind:
            continue
        value = chunk.get(kind)
        if isinstance(value, list):
            parts += [str(c.get("text") or "") for c in value if isinstance(c, dict)]
        elif value:
            parts.append(str(value))
    return "".join(parts)


def content_flatten(message: dict[str, Any]) -> None:
    """A message or delta whose `content` is Mistral's chunk list → string `content` and
    `reasoning_content`, in place."""
    content = message.get("content")
    if not isinstance(content, list):
        return
    reasoning = _chunks_text(content, "thinking")
    text = _chunks_text(content, "text")
    message["content"] = text if text or "role" in message else None
    if message["content"] is None:
        message.pop("content")
    if reasoning:
        message["reasoning_content"] = reasoning


class MistralAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "mistral"
    default_api_base: ClassVar[str] = "https://api.mistral.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MODERATIONS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {
            "user",
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "store",
            "metadata",
            "service_tier",
            "modalities",
            "audio",
        }
    )
    stream_usage_option: ClassVar[bool] = False

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        if "seed" in prepared:
            prepared.setdefault("random_seed", prepared.pop("seed"))
        if "max_completion_tokens" in prepared:
            prepared.setdefault("max_tokens", prepared.pop("max_completion_tokens"))
        if prepared.get("tool_choice") == "required":
            prepared["tool_choice"] = "any"
        return prepared

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any] | bytes:
        parsed = super().parse_response(endpoint=endpoint, deployment=deployment, response=response)
        if isinstance(parsed, dict):
            for choice in parsed.get("choices") or []:
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                    content_flatten(choice["message"])
        return parsed

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in super().translate_stream(
            endpoint=endpoint, deployment=deployment, chunks=chunks
        ):
            for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
                if isinstance(choice, dict) and isinstance(choice.get("delta"), dict):
                    content_flatten(choice["delta"])
            yield chunk

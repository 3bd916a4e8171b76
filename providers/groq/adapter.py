"""Groq (https://api.groq.com/openai/v1): OpenAI-compatible with documented gaps.

Groq answers 400 to ``logprobs``, ``logit_bias``, ``top_logprobs`` and ``messages[].name``
(dropped here) and to ``n`` other than 1 (refused here with a clear message). Older streams carry
usage in ``x_groq.usage`` of the last chunk; that is read as the stream's usage too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class GroqAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "groq"
    default_api_base: ClassVar[str] = "https://api.groq.com/openai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.AUDIO_TRANSCRIPTIONS, Endpoint.AUDIO_TRANSLATIONS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"logprobs", "logit_bias", "top_logprobs", "store", "metadata"}
    )

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        n = body.get("n")
        if n is not None and n != 1:
            raise InvalidRequestError("groq supports only n=1.", param="n")
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        messages = prepared.get("messages")
        if isinstance(messages, list) and any(
            isinstance(m, dict) and "name" in m for m in messages
        ):
            prepared["messages"] = [
                {k: v for k, v in m.items() if k != "name"} if isinstance(m, dict) else m
                for m in messages
            ]
        return prepared

    def stream_usage(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        usage = chunk.get("usage")
        if usage is None and isinstance(chunk.get("x_groq"), dict):
            usage = chunk["x_groq"].get("usage")
        return usage

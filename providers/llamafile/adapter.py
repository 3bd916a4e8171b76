"""llamafile's built-in llama.cpp server (http://127.0.0.1:8080/v1): OpenAI-compatible.

The server wants some bearer token even when it checks none; without a configured key Ogem sends
``sk-no-key-required``, the value llamafile documents. One choice per request: ``n`` other than 1
is refused with a clear message instead of a silent single answer.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

NO_KEY = "sk-no-key-required"


class LlamafileAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "llamafile"
    default_api_base: ClassVar[str] = "http://127.0.0.1:8080/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset({"store", "metadata", "service_tier"})

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        return {"Authorization": f"Bearer {deployment.api_key or NO_KEY}"}

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        n = body.get("n")
        if n is not None and n != 1:
            raise InvalidRequestError("llamafile supports only n=1.", param="n")
        return super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )

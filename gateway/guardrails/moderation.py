"""OpenAI-compatible moderation (`kind: openai_moderation`, LiteLLM's `guardrail:
openai_moderation`): the texts as one `/v1/moderations` request's `input` list. A flagged
category (or, with `categories`, one of those) is a finding named after it (`violence`,
`hate/threatening`, ...), its score as the confidence.

Where it is sent: with `api_base` or `api_key`, straight to that moderation API
(`{api_base}/moderations`, default OpenAI's, bearer key); otherwise to the model group `model`
through Ogem's own /v1 pipeline on the caller's behalf (gateway/guardrails/pipeline.py), so any
configured moderation deployment serves it. Moderation does not locate what it flags: a `mask`
guardrail of this kind blocks. An error or a timeout follows `fail_open`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from gateway.config.types import GuardrailSpec
from gateway.guardrails.pipeline import pipeline_call
from gateway.guardrails.types import Finding
from gateway.guardrails.vendor import vendor_session
from providers.base import Endpoint

DEFAULT_MODEL = "omni-moderation-latest"
DEFAULT_API_BASE = "https://api.openai.com/v1"
MAX_INPUT_CHARS = 200_000  # a bound on what one check sends


class ModerationError(Exception):
    """The moderation API answered an error, a body it does not document, or too much input."""


class OpenAIModerationCheck:
    def __init__(self, spec: GuardrailSpec) -> None:
        self.spec = spec
        options = spec.options
        self.model = str(options.get("model") or DEFAULT_MODEL)
        self.categories = frozenset(options.get("categories") or ())
        self.direct = bool(options.get("api_base") or options.get("api_key"))
        base = str(options.get("api_base") or DEFAULT_API_BASE).rstrip("/")
        self.url = base + "/moderations"
        self.headers = {"Content-Type": "application/json"}
        if options.get("api_key"):
            self.headers["Authorization"] = f"Bearer {options['api_key']}"
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout)

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        inputs = [text for text in texts if text.strip()]
        if not inputs:
            return []
        if sum(len(text) for text in inputs) > MAX_INPUT_CHARS:
            raise ModerationError(f"more than {MAX_INPUT_CHARS} characters to moderate")
        body = {"model": self.model, "input": inputs}
        answer = await (self._direct(body) if self.direct else self._pipeline(body))
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ModerationError("the moderation answer has no results")
        found: dict[str, Finding] = {}
        for result in results:
            if not isinstance(result, dict) or result.get("flagged") is not True:
                continue
            scores = result.get("category_scores") or {}
            for category, flagged in (result.get("categories") or {}).items():
                if flagged is not True or (self.categories and category not in self.categories):
                    continue
                score = float(scores.get(category) or 1.0)
                if category not in found or found[category].confidence < score:
                    found[category] = Finding(category, min(score, 1.0))
        return list(found.values())

    async def _pipeline(self, body: dict[str, Any]) -> Any:
        return await pipeline_call(endpoint=Endpoint.MODERATIONS, model=self.model, body=body)

    async def _direct(self, body: dict[str, Any]) -> Any:
        async with vendor_session(self.spec, self.url).post(
            self.url, data=orjson.dumps(body), headers=self.headers, timeout=self.timeout
        ) as response:
            raw = await response.read()
        if response.status != 200:
            raise ModerationError(f"the moderation API answered {response.status}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ModerationError("the moderation answer is not JSON") from exc

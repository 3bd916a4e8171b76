"""Lakera Guard (`kind: lakera`; LiteLLM's `guardrail: lakera_v2`): the texts screened by
`POST {api_base}/v2/guard` with a bearer key. A `flagged` answer is one finding per detector that
detected (`breakdown`, its `detector_type` as the category, e.g. `prompt_attack`), or
`LAKERA_FLAGGED` without a breakdown. Lakera does not locate what it flags: a `mask` guardrail of
this kind blocks. An error or a timeout follows the guardrail's `fail_open`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from gateway.config.types import GuardrailSpec
from gateway.guardrails.types import POST_CALL, Finding
from gateway.guardrails.vendor import vendor_session

DEFAULT_API_BASE = "https://api.lakera.ai"
# Lakera's confidence levels, L1 (confident) to L5 (unlikely), as Ogem's 0-1 confidence.
_CONFIDENCE = {"L1": 1.0, "L2": 0.8, "L3": 0.6, "L4": 0.4, "L5": 0.2}


class LakeraError(Exception):
    """Lakera answered with an error status or a body it does not document."""


class LakeraCheck:
    def __init__(self, spec: GuardrailSpec) -> None:
        self.spec = spec
        options = spec.options
        self.url = str(options.get("api_base") or DEFAULT_API_BASE).rstrip("/") + "/v2/guard"
        self.api_key = str(options.get("api_key") or "")
        self.project_id = options.get("project_id")
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout)

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        # Lakera reads a conversation: the request's texts as the user's, an answer's as the
        # assistant's.
        role = "assistant" if phase == POST_CALL else "user"
        body: dict[str, Any] = {
            "messages": [{"role": role, "content": text} for text in texts],
            "breakdown": True,
        }
        if self.project_id:
            body["project_id"] = self.project_id
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        async with vendor_session(self.spec, self.url).post(
            self.url, data=orjson.dumps(body), headers=headers, timeout=self.timeout
        ) as response:
            raw = await response.read()
        if response.status != 200:
            raise LakeraError(f"Lakera answered {response.status}")
        try:
            answer = orjson.loads(raw)
            flagged = answer["flagged"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise LakeraError("Lakera's answer has no `flagged`") from exc
        if flagged is not True:
            return []
        found = [
            Finding(
                str(item.get("detector_type") or "LAKERA_FLAGGED"),
                _CONFIDENCE.get(str(item.get("confidence")), 1.0),
            )
            for item in answer.get("breakdown") or ()
            if isinstance(item, dict) and item.get("detected") is True
        ]
        return found or [Finding("LAKERA_FLAGGED")]

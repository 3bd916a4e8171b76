"""Azure AI Content Safety (docs/guardrails.md), with the `Ocp-Apim-Subscription-Key` header:

- `kind: azure_text_moderation` (LiteLLM's `azure/text_moderations`): each text through
  `POST {api_base}/contentsafety/text:analyze`; a harm category whose severity reaches its
  threshold (`severity_threshold_by_category`, else `severity_threshold`, default 2) is a finding
  named after it (`Hate`, `SelfHarm`, `Sexual`, `Violence`), and so is a blocklist match
  (`Blocklist:<name>`).
- `kind: azure_prompt_shield` (LiteLLM's `azure/prompt_shield`): `POST .../text:shieldPrompt`
  with the last text as `userPrompt` and the earlier ones as `documents`; an attack detected in
  the prompt is `UserPromptAttack`, in a document `DocumentAttack`.

Azure takes at most 10,000 characters a text (and 5 documents of 10,000 in all a shield call):
longer input is sent in windows, concurrently, up to MAX_CALLS calls; beyond that the check fails
(and follows `fail_open`). Azure does not locate what it finds: a `mask` guardrail of these kinds
blocks. An error or a timeout follows the guardrail's `fail_open`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson

from gateway.config.types import GuardrailSpec
from gateway.guardrails.types import Finding
from gateway.guardrails.vendor import vendor_session

API_VERSION = "2024-09-01"
DEFAULT_THRESHOLD = 2  # Azure's "low" severity and above
MAX_CHARS = 10_000
MAX_DOCUMENTS = 5
MAX_CALLS = 16


class AzureContentSafetyError(Exception):
    """Azure answered an error status, a body it does not document, or the input is too long."""


def _windows(text: str) -> list[str]:
    return [text[at : at + MAX_CHARS] for at in range(0, len(text), MAX_CHARS)] or [""]


class _AzureCheck:
    operation = ""

    def __init__(self, spec: GuardrailSpec) -> None:
        self.spec = spec
        options = spec.options
        base = str(options.get("api_base") or "").rstrip("/")
        version = str(options.get("api_version") or API_VERSION)
        self.url = f"{base}/contentsafety/{self.operation}?api-version={version}"
        self.headers = {
            "Content-Type": "application/json",
            "Ocp-Apim-Subscription-Key": str(options.get("api_key") or ""),
        }
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout)

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        async with vendor_session(self.spec, self.url).post(
            self.url, data=orjson.dumps(body), headers=self.headers, timeout=self.timeout
        ) as response:
            raw = await response.read()
        if response.status != 200:
            raise AzureContentSafetyError(f"Azure Content Safety answered {response.status}")
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise AzureContentSafetyError("Azure Content Safety's answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise AzureContentSafetyError("Azure Content Safety's answer is not an object")
        return answer

    async def _post_all(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(bodies) > MAX_CALLS:
            raise AzureContentSafetyError(f"the texts need more than {MAX_CALLS} calls")
        if len(bodies) == 1:
            return [await self._post(bodies[0])]
        return list(await asyncio.gather(*(self._post(body) for body in bodies)))


class AzureTextModerationCheck(_AzureCheck):
    operation = "text:analyze"

    def __init__(self, spec: GuardrailSpec) -> None:
        super().__init__(spec)
        options = spec.options
        threshold = options.get("severity_threshold")
        self.threshold = DEFAULT_THRESHOLD if threshold is None else int(threshold)
        self.thresholds = {
            str(name): int(value)
            for name, value in (options.get("severity_threshold_by_category") or {}).items()
        }
        self.output_type = str(options.get("outputType") or "FourSeverityLevels")
        self.scale = 7.0 if self.output_type == "EightSeverityLevels" else 6.0
        self.fields: dict[str, Any] = {"outputType": self.output_type}
        if options.get("categories"):
            self.fields["categories"] = list(options["categories"])
        if options.get("blocklistNames"):
            self.fields["blocklistNames"] = list(options["blocklistNames"])
            self.fields["haltOnBlocklistHit"] = bool(options.get("haltOnBlocklistHit"))

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        bodies = [
            {"text": window, **self.fields}
            for text in texts
            if text.strip()
            for window in _windows(text)
        ]
        if not bodies:
            return []
        found: dict[str, Finding] = {}
        for answer in await self._post_all(bodies):
            analyses = answer.get("categoriesAnalysis")
            if not isinstance(analyses, list):
                raise AzureContentSafetyError("Azure's answer has no categoriesAnalysis")
            for item in analyses:
                if not isinstance(item, dict):
                    continue
                category = str(item.get("category"))
                severity = int(item.get("severity") or 0)
                if severity >= self.thresholds.get(category, self.threshold) and severity > 0:
                    confidence = min(1.0, severity / self.scale)
                    if category not in found or found[category].confidence < confidence:
                        found[category] = Finding(category, confidence)
            for match in answer.get("blocklistsMatch") or ():
                if isinstance(match, dict):
                    name = f"Blocklist:{match.get('blocklistName')}"
                    found.setdefault(name, Finding(name))
        return list(found.values())


class AzurePromptShieldCheck(_AzureCheck):
    operation = "text:shieldPrompt"

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        texts = [text for text in texts if text.strip()]
        if not texts:
            return []
        prompts = _windows(texts[-1])
        documents = [window for text in texts[:-1] for window in _windows(text)]
        # Documents in batches of at most 5 and 10,000 characters in all.
        batches: list[list[str]] = []
        size = 0
        for document in documents:
            if not batches or len(batches[-1]) == MAX_DOCUMENTS or size + len(document) > MAX_CHARS:
                batches.append([])
                size = 0
            batches[-1].append(document)
            size += len(document)
        calls = max(len(prompts), len(batches))
        bodies = [
            {
                "userPrompt": prompts[min(index, len(prompts) - 1)],
                "documents": batches[index] if index < len(batches) else [],
            }
            for index in range(calls)
        ]
        findings: dict[str, Finding] = {}
        for answer in await self._post_all(bodies):
            prompt = answer.get("userPromptAnalysis")
            if not isinstance(prompt, dict):
                raise AzureContentSafetyError("Azure's answer has no userPromptAnalysis")
            if prompt.get("attackDetected") is True:
                findings.setdefault("UserPromptAttack", Finding("UserPromptAttack"))
            for item in answer.get("documentsAnalysis") or ():
                if isinstance(item, dict) and item.get("attackDetected") is True:
                    findings.setdefault("DocumentAttack", Finding("DocumentAttack"))
        return list(findings.values())

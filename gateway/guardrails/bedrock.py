"""AWS Bedrock Guardrails (`kind: bedrock`, LiteLLM's `guardrail: bedrock`): the texts through
ApplyGuardrail, `POST {runtime}/guardrail/{guardrailIdentifier}/version/{guardrailVersion}/apply`,
SigV4-signed with the credentials a Bedrock deployment would use (providers/bedrock/auth.py:
static keys, the standard chain, or an assumed role; the same LiteLLM parameter names).

A request's texts go as `source: INPUT`, an answer's as `OUTPUT`. `action: NONE` is clean. On
`GUARDRAIL_INTERVENED` each assessment entry the guardrail acted on is a finding: a blocked topic
(its name), content filter (`HATE`, `PROMPT_ATTACK`, ...), word (`CUSTOM_WORD`, `PROFANITY`),
PII entity (`EMAIL`, `US_SOCIAL_SECURITY_NUMBER`, ...) or regex (its name), grounding filter
(`GROUNDING`, `RELEVANCE`). A PII entity or regex the guardrail ANONYMIZED is a finding of action
`mask` (unless the guardrail's action is `warn`), located where its match occurs in the texts
(Ogem masks it with its own placeholder, restored in the answer); the others take the guardrail's
`action` (block by default). An error or a timeout follows `fail_open`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from gateway.config.guardrails import AWS_PARAMS
from gateway.config.types import GuardrailSpec
from gateway.guardrails.types import MASK, POST_CALL, WARN, Finding
from gateway.guardrails.vendor import vendor_session
from providers.base import Deployment
from providers.bedrock.auth import credentials_resolve, region_for, request_sign


class BedrockGuardrailError(Exception):
    """Bedrock answered an error status or a body it does not document."""


class BedrockGuardrailCheck:
    def __init__(self, spec: GuardrailSpec) -> None:
        self.spec = spec
        options = spec.options
        # A deployment in all but name: providers/bedrock/auth.py resolves and caches its
        # credentials like a Bedrock model's (by id: new settings are new credentials).
        params = {name: options[name] for name in AWS_PARAMS if options.get(name)}
        digest = hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).hexdigest()
        self.deployment = Deployment(
            id=f"guardrail:{spec.name}:{digest[:16]}",
            model_name=spec.name,
            provider="bedrock",
            upstream_model="",
            api_base=str(options.get("api_base") or ""),
            params=params,
        )
        base = self.deployment.api_base or str(options.get("aws_bedrock_runtime_endpoint") or "")
        region = region_for(self.deployment)
        base = (base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        identifier = quote(str(options["guardrailIdentifier"]), safe="")
        version = quote(str(options.get("guardrailVersion") or "DRAFT"), safe="")
        self.url = f"{base}/guardrail/{identifier}/version/{version}/apply"
        self.region = region
        # What Bedrock anonymized Ogem masks, unless the guardrail only warns (logging only).
        self.anonymized = None if spec.action == WARN else MASK
        self.timeout = aiohttp.ClientTimeout(total=spec.timeout)

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        content = [{"text": {"text": text}} for text in texts if text]
        if not content:
            return []
        body = orjson.dumps(
            {"source": "OUTPUT" if phase == POST_CALL else "INPUT", "content": content}
        )
        credentials = await credentials_resolve(self.deployment)
        headers = request_sign(
            method="POST",
            url=self.url,
            body=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            credentials=credentials,
            region=self.region,
        )
        # The path goes exactly as signed (identifiers may be ARNs, escaped).
        async with vendor_session(self.spec, URL(self.url, encoded=True)).post(
            URL(self.url, encoded=True), data=body, headers=headers, timeout=self.timeout
        ) as response:
            raw = await response.read()
        if response.status != 200:
            raise BedrockGuardrailError(f"Bedrock ApplyGuardrail answered {response.status}")
        try:
            answer = orjson.loads(raw)
            action = answer["action"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise BedrockGuardrailError("Bedrock's answer has no `action`") from exc
        if action != "GUARDRAIL_INTERVENED":
            return []
        findings: list[Finding] = []
        for category, acted, match in _acted(answer.get("assessments") or ()):
            if acted == "ANONYMIZED" and match:
                located = list(_locate(texts, match, category, self.anonymized))
                findings.extend(located or [Finding(category, action=self.anonymized)])
            else:
                findings.append(Finding(category))
        return findings or [Finding("GUARDRAIL_INTERVENED")]


def _acted(assessments: Any) -> Iterator[tuple[str, str, str]]:
    """(category, action, match) of every assessment entry the guardrail acted on."""
    for assessment in assessments:
        if not isinstance(assessment, dict):
            continue
        policies: list[tuple[str, str, str]] = [
            ("topicPolicy", "topics", "name"),
            ("contentPolicy", "filters", "type"),
            ("wordPolicy", "customWords", ""),
            ("wordPolicy", "managedWordLists", "type"),
            ("sensitiveInformationPolicy", "piiEntities", "type"),
            ("sensitiveInformationPolicy", "regexes", "name"),
            ("contextualGroundingPolicy", "filters", "type"),
        ]
        for policy, entries, named in policies:
            for entry in (assessment.get(policy) or {}).get(entries) or ():
                if not isinstance(entry, dict):
                    continue
                acted = str(entry.get("action") or "NONE")
                if acted == "NONE" or entry.get("detected") is False:
                    continue
                category = str(entry.get(named) or "") if named else "CUSTOM_WORD"
                yield category or policy, acted, str(entry.get("match") or "")


def _locate(
    texts: Sequence[str], match: str, category: str, action: str | None
) -> Iterator[Finding]:
    for index, text in enumerate(texts):
        at = text.find(match)
        while at >= 0:
            yield Finding(category, 1.0, index, at, at + len(match), action)
            at = text.find(match, at + len(match))

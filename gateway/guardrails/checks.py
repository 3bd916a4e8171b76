"""The registry of guardrail kinds: each builds the check one configured guardrail runs.

A kind is a function from its GuardrailSpec to a `GuardrailCheck` (gateway/guardrails/types.py).
The built-in detectors are kinds here; a vendor integration is a small module with its own check
class and one line in CHECK_BUILDERS (and its name in `GUARDRAIL_KINDS`, gateway/config/types.py);
`custom` loads the class a dotted path names.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from django.utils.module_loading import import_string

from gateway.config.types import GuardrailSpec
from gateway.guardrails.azure import AzurePromptShieldCheck, AzureTextModerationCheck
from gateway.guardrails.bedrock import BedrockGuardrailCheck
from gateway.guardrails.detectors.patterns import PatternDetector, words_detector
from gateway.guardrails.detectors.pii import PIIDetector
from gateway.guardrails.detectors.schema import SchemaDetector
from gateway.guardrails.detectors.secrets import SecretsDetector
from gateway.guardrails.judge import LLMJudgeCheck
from gateway.guardrails.lakera import LakeraCheck
from gateway.guardrails.moderation import OpenAIModerationCheck
from gateway.guardrails.types import Finding, GuardrailCheck


class Detector(Protocol):
    def find_all(self, texts: Sequence[str]) -> list[Finding]: ...


class DetectorCheck:
    """A built-in detector as a check; `actions` are per-category overrides of the action."""

    def __init__(self, detector: Detector, *, actions: Mapping[str, str] | None = None) -> None:
        self.detector = detector
        self.actions = dict(actions or {})

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        return self.find(texts)

    def find(self, texts: Sequence[str]) -> list[Finding]:
        """Synchronous: the stage calls it directly, without a task (it takes microseconds)."""
        found = self.detector.find_all(texts)
        if not self.actions:
            return found
        return [
            Finding(f.category, f.confidence, f.text, f.start, f.end, self.actions.get(f.category))
            for f in found
        ]


class CustomCheck:
    """An operator's class named by a dotted path, built with the guardrail's `options`; its
    `scan(texts, phase=...)` may be a coroutine or a plain function returning Findings."""

    def __init__(self, spec: GuardrailSpec) -> None:
        cls = import_string(str(spec.options["path"]))
        self.instance = cls(**dict(spec.options.get("options") or {}))

    async def scan(self, texts: Sequence[str], *, phase: str) -> list[Finding]:
        result = self.instance.scan(list(texts), phase=phase)
        if inspect.isawaitable(result):
            result = await result
        return list(result or [])


def _pii(spec: GuardrailSpec) -> GuardrailCheck:
    options = spec.options
    entities = options.get("entities") or None
    detector = PIIDetector(
        region=str(options.get("region") or "US"), **({"entities": entities} if entities else {})
    )
    return DetectorCheck(detector, actions=options.get("entity_actions"))


def _secrets(spec: GuardrailSpec) -> GuardrailCheck:
    options = spec.options
    kwargs: dict[str, Any] = {}
    if options.get("categories"):
        kwargs["categories"] = options["categories"]
    if options.get("entropy") is not None:
        kwargs["entropy"] = float(options["entropy"])
    return DetectorCheck(SecretsDetector(**kwargs))


def _regex(spec: GuardrailSpec) -> GuardrailCheck:
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for number, item in enumerate(spec.options.get("patterns") or (), start=1):
        if isinstance(item, dict):
            name = str(item.get("name") or f"PATTERN_{number}")
            patterns.append((name, re.compile(str(item["pattern"]))))
        else:
            patterns.append((f"PATTERN_{number}", re.compile(str(item))))
    return DetectorCheck(PatternDetector(patterns))


def _words(spec: GuardrailSpec) -> GuardrailCheck:
    options = spec.options
    lists = dict(options.get("lists") or {})
    if options.get("words"):
        lists["BLOCKED_WORD"] = list(options["words"])
    return DetectorCheck(words_detector(lists, case_sensitive=bool(options.get("case_sensitive"))))


def _topics(spec: GuardrailSpec) -> GuardrailCheck:
    options = spec.options
    topics = {
        str(name): list(phrases or ()) for name, phrases in (options.get("topics") or {}).items()
    }
    return DetectorCheck(words_detector(topics, case_sensitive=bool(options.get("case_sensitive"))))


def _json_schema(spec: GuardrailSpec) -> GuardrailCheck:
    return DetectorCheck(SchemaDetector(spec.options["schema"]))


CHECK_BUILDERS: dict[str, Callable[[GuardrailSpec], GuardrailCheck]] = {
    "pii": _pii,
    "secrets": _secrets,
    "regex": _regex,
    "words": _words,
    "topics": _topics,
    "json_schema": _json_schema,
    "custom": CustomCheck,
    "lakera": LakeraCheck,
    "azure_text_moderation": AzureTextModerationCheck,
    "azure_prompt_shield": AzurePromptShieldCheck,
    "bedrock": BedrockGuardrailCheck,
    "openai_moderation": OpenAIModerationCheck,
    "llm_judge": LLMJudgeCheck,
}

# name -> (the spec it was built from, its check): rebuilt when a reload changes the spec.
_built: dict[str, tuple[GuardrailSpec, GuardrailCheck]] = {}


def check_for(spec: GuardrailSpec) -> GuardrailCheck:
    """The check of `spec`, built once per configuration load."""
    entry = _built.get(spec.name)
    if entry is not None and entry[0] is spec:
        return entry[1]
    check = CHECK_BUILDERS[spec.kind](spec)
    _built[spec.name] = (spec, check)
    return check

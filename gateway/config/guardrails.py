"""The `guardrails:` section in both formats (docs/guardrails.md).

Ogem's format names the kind and its settings directly; LiteLLM's puts them under
`litellm_params` (`guardrail`, `mode`, `default_on`, Presidio's `pii_entities_config` and
`output_parse_pii`, ...). Both produce GuardrailSpecs. A guardrail that this build cannot run is an
error, not a warning: a file that asks for a check must never load without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.config.common import DeploymentDraft
from gateway.config.fields import Reader
from gateway.config.problems import Problems
from gateway.config.secrets import secret_is_reference
from gateway.config.types import GUARDRAIL_KINDS, GuardrailSettings, GuardrailSpec
from gateway.config.yamltree import YNode, yaml_compose

# The vocabulary of the built-in detectors (gateway/guardrails/detectors/): Presidio's entity
# names, so LiteLLM's pii_entities_config reads as written, and the secret categories.
PII_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS")
SECRET_CATEGORIES = (
    "PRIVATE_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "GOOGLE_API_KEY",
    "STRIPE_API_KEY",
    "HUGGINGFACE_TOKEN",
    "JWT",
    "HIGH_ENTROPY_SECRET",
)
# Azure AI Content Safety's harm categories and severity scales (gateway/guardrails/azure.py).
HARM_CATEGORIES = ("Hate", "SelfHarm", "Sexual", "Violence")
OUTPUT_TYPES = ("FourSeverityLevels", "EightSeverityLevels")
# A bedrock guardrail's credentials: a Bedrock deployment's parameters (LiteLLM's names).
AWS_PARAMS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_region_name",
    "aws_profile_name",
    "aws_role_name",
    "aws_session_name",
    "aws_external_id",
    "aws_sts_endpoint",
    "aws_bedrock_runtime_endpoint",
)
MODES = ("pre_call", "during_call", "post_call")
ACTIONS = ("block", "mask", "warn")
# The vendor settings an admin-defined guardrail keeps encrypted (gateway.GuardrailDefinition):
# never shown back, never in its plain `options`.
SECRET_OPTIONS = ("api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token")
# The settings that name an address the gateway connects to (an organization's are checked
# against its address policy when written, as its deployments' are).
URL_OPTIONS = ("api_base", "aws_bedrock_runtime_endpoint", "aws_sts_endpoint")

_COMMON_KEYS = frozenset(
    {
        "mode",
        "action",
        "default_on",
        "enforced",
        "requestable",
        "restore",
        "fail_open",
        "timeout",
    }
)
# Each kind's own settings; `custom` passes every other key to its class.
_KIND_KEYS: dict[str, frozenset[str]] = {
    "pii": frozenset({"entities", "entity_actions", "region"}),
    "secrets": frozenset({"categories", "entropy"}),
    "regex": frozenset({"patterns"}),
    "words": frozenset({"words", "lists", "case_sensitive"}),
    "topics": frozenset({"topics", "case_sensitive"}),
    "json_schema": frozenset({"schema"}),
    "custom": frozenset({"path", "options"}),
    "lakera": frozenset({"api_key", "api_base", "project_id"}),
    "azure_text_moderation": frozenset(
        {
            "api_key",
            "api_base",
            "api_version",
            "categories",
            "severity_threshold",
            "severity_threshold_by_category",
            "blocklistNames",
            "haltOnBlocklistHit",
            "outputType",
        }
    ),
    "azure_prompt_shield": frozenset({"api_key", "api_base", "api_version"}),
    "bedrock": frozenset({"guardrailIdentifier", "guardrailVersion", "api_base", *AWS_PARAMS}),
    "openai_moderation": frozenset({"model", "api_key", "api_base", "categories"}),
    "llm_judge": frozenset({"model", "rubric", "max_tokens", "json_mode"}),
}
_NATIVE_KEYS = _COMMON_KEYS | {"name", "kind", "models"}

# LiteLLM's `guardrail` values Ogem reads as one of its kinds.
_LITELLM_KINDS = {
    "presidio": "pii",
    "hide-secrets": "secrets",
    "hide_secrets": "secrets",
    "lakera_v2": "lakera",
    "azure/text_moderations": "azure_text_moderation",
    "azure/prompt_shield": "azure_prompt_shield",
}
# LiteLLM's integrations over HTTP that this build does not have yet.
_LITELLM_VENDORS = frozenset(
    {
        "lakera",  # v1 (/v1/prompt_injection); lakera_v2 is read
        "aporia",
        "guardrails_ai",
        "aim",
        "pangea",
        "panw_prisma_airs",
        "noma",
        "lasso",
    }
)
_LITELLM_IGNORED = frozenset(
    {
        "presidio_language",
        "presidio_score_thresholds",
        "api_key",
        "api_base",
        # Bedrock's: Ogem masks what Bedrock anonymized in requests and answers alike.
        "mask_request_content",
        "mask_response_content",
    }
)
_ENTITY_ACTIONS = {"MASK": "mask", "BLOCK": "block", "WARN": "warn"}


def guardrails_read_native(
    reader: Reader, node: YNode | None, *, drafts: Sequence[DeploymentDraft]
) -> GuardrailSettings | None:
    """Ogem's `guardrails:` list: `{name, kind, mode, action, default_on, models, ...}`."""
    specs: list[GuardrailSpec] = []
    models: dict[str, list[str]] = {}
    for entry in reader.items(node):
        fields = reader.mapping(entry)
        if fields is None:
            continue
        name = reader.string(fields.get("name"), secret=False)
        kind = reader.string(fields.get("kind"), secret=False)
        if not name or not kind:
            reader.error(entry, 'a guardrail needs "name" and "kind"')
            continue
        if kind not in GUARDRAIL_KINDS:
            reader.error(
                fields["kind"],
                f'unknown guardrail kind "{kind}" (one of {", ".join(GUARDRAIL_KINDS)})',
            )
            continue
        known = _NATIVE_KEYS | _KIND_KEYS[kind]
        if kind != "custom":
            reader.unknown_keys(entry, known, section="a guardrail")
        options = {
            key: reader.resolved(child) for key, child in fields.items() if key not in _NATIVE_KEYS
        }
        spec = _spec(reader, entry, fields, name=name, kind=kind, options=options, action="block")
        if spec is not None:
            specs.append(spec)
            for group in reader.strings(fields.get("models")):
                models.setdefault(group, []).append(name)
    return _settings(reader, node, specs, models, drafts)


def guardrails_read_litellm(
    reader: Reader, node: YNode | None, *, drafts: Sequence[DeploymentDraft]
) -> GuardrailSettings | None:
    """LiteLLM's `guardrails:` list: `{guardrail_name, litellm_params: {guardrail, mode, ...}}`."""
    specs: list[GuardrailSpec] = []
    for entry in reader.items(node):
        fields = reader.mapping(entry)
        if fields is None:
            continue
        reader.unknown_keys(
            entry, ("guardrail_name", "litellm_params", "guardrail_info"), section="a guardrail"
        )
        name = reader.string(fields.get("guardrail_name"), secret=False)
        params_node = fields.get("litellm_params")
        params = reader.mapping(params_node)
        if not name or params is None:
            reader.error(entry, 'a guardrail needs "guardrail_name" and "litellm_params"')
            continue
        vendor = reader.string(params.get("guardrail"), secret=False)
        if not vendor:
            reader.error(params_node, 'missing required key "guardrail"')  # type: ignore[arg-type]
            continue
        if vendor in _LITELLM_VENDORS:
            reader.error(
                params["guardrail"],
                f'the "{vendor}" guardrail is not available in this Ogem build; remove it, or use '
                "a built-in kind or a custom class (docs/guardrails.md)",
            )
            continue
        kind = _LITELLM_KINDS.get(vendor, vendor)
        options: dict[str, Any] = {}
        if "." in vendor:  # LiteLLM's custom guardrail: `module.ClassName`
            kind = "custom"
            options["path"] = vendor
        elif kind not in GUARDRAIL_KINDS:
            reader.error(params["guardrail"], f'unknown guardrail "{vendor}"')
            continue
        action = "mask" if kind in ("pii", "secrets") else "block"  # LiteLLM masks PII and secrets
        for key, child in params.items():
            if key in _COMMON_KEYS or key == "guardrail":
                continue
            if key in _LITELLM_IGNORED and key not in _KIND_KEYS.get(kind, ()):
                continue
            if key == "pii_entities_config" and kind == "pii":
                entity_actions = {
                    entity: _ENTITY_ACTIONS.get(str(value).upper(), "mask")
                    for entity, value in (reader.resolved(child) or {}).items()
                }
                options["entities"] = list(entity_actions)
                options["entity_actions"] = entity_actions
            elif key == "output_parse_pii":
                continue  # read below, as `restore`
            elif kind == "custom" or key in _KIND_KEYS[kind]:
                options[key] = reader.resolved(child)
            else:
                reader.warning(
                    child, "unknown key in a guardrail's litellm_params, ignored", at_key=True
                )
        mode_node = params.get("mode")
        if mode_node is not None and mode_node.value == "logging_only":
            action = "warn"  # LiteLLM's logging-only mode: record, never change the request
        spec = _spec(
            reader, params_node, params, name=name, kind=kind, options=options, action=action
        )  # type: ignore[arg-type]
        if spec is not None:
            specs.append(spec)
    return _settings(reader, node, specs, {}, drafts)


def _spec(
    reader: Reader,
    node: YNode,
    fields: Mapping[str, YNode],
    *,
    name: str,
    kind: str,
    options: dict[str, Any],
    action: str,
) -> GuardrailSpec | None:
    modes = _modes(reader, fields.get("mode"))
    action = reader.string(fields.get("action"), secret=False) or action
    if action not in ACTIONS:
        reader.error(fields["action"], f'unknown action "{action}" (one of block, mask, warn)')
        return None
    if not _options_check(reader, node, kind=kind, options=options, modes=modes):
        return None
    restore = reader.boolean(fields.get("restore"))
    if restore is None:
        restore = reader.boolean(fields.get("output_parse_pii"))
    timeout = reader.number(fields.get("timeout"))
    return GuardrailSpec(
        name=name,
        kind=kind,
        modes=modes,
        action=action,
        default_on=bool(reader.boolean(fields.get("default_on"))),
        enforced=bool(reader.boolean(fields.get("enforced"))),
        requestable=reader.boolean(fields.get("requestable")) is not False,
        restore=restore is not False,
        fail_open=bool(reader.boolean(fields.get("fail_open"))),
        timeout=timeout or 5.0,
        options=options,
    )


def _modes(reader: Reader, node: YNode | None) -> tuple[str, ...]:
    if node is None or node.value is None:
        return ("pre_call",)
    if node.value == "logging_only":
        return ("pre_call", "post_call")
    modes = reader.strings(node)
    for mode in modes:
        if mode not in MODES:
            reader.error(node, f'unknown mode "{mode}" (one of {", ".join(MODES)})')
            return ()
    return modes or ("pre_call",)


def _options_check(
    reader: Reader, node: YNode, *, kind: str, options: dict[str, Any], modes: tuple[str, ...]
) -> bool:
    """The kind's settings, checked where the file wrote them."""
    if not modes:
        return False

    def bad(message: str) -> bool:
        reader.error(node, message)
        return False

    if kind == "pii":
        unknown = set(options.get("entities") or ()) - set(PII_ENTITIES)
        if unknown:
            return bad(f"unknown PII entities {sorted(unknown)} (known: {', '.join(PII_ENTITIES)})")
        actions = options.get("entity_actions") or {}
        if not isinstance(actions, dict) or any(a not in ACTIONS for a in actions.values()):
            return bad("entity_actions maps an entity to block, mask or warn")
    elif kind == "secrets":
        unknown = set(options.get("categories") or ()) - set(SECRET_CATEGORIES)
        if unknown:
            return bad(f"unknown secret categories {sorted(unknown)}")
    elif kind == "regex":
        patterns = options.get("patterns")
        if not isinstance(patterns, list) or not patterns:
            return bad('a regex guardrail needs "patterns": a list of patterns or {name, pattern}')
        for item in patterns:
            pattern = item.get("pattern") if isinstance(item, dict) else item
            try:
                re.compile(str(pattern))
            except re.error as exc:
                return bad(f"pattern {pattern!r} does not compile: {exc}")
    elif kind == "words":
        if not options.get("words") and not options.get("lists"):
            return bad('a words guardrail needs "words" (a list) or "lists" ({name: [words]})')
    elif kind == "topics":
        topics = options.get("topics")
        if not isinstance(topics, dict) or not topics:
            return bad('a topics guardrail needs "topics": {topic: [phrases, ...]}')
    elif kind == "json_schema":
        if modes != ("post_call",):
            return bad("a json_schema guardrail checks answers: its mode is post_call")
        try:
            Draft202012Validator.check_schema(options.get("schema") or None)  # type: ignore[arg-type]
        except SchemaError as exc:
            return bad(f"schema is not a valid JSON schema: {exc.message}")
    elif kind == "lakera":
        if not options.get("api_key") and not options.get("api_base"):
            return bad(
                "a lakera guardrail needs api_key (os.environ/LAKERA_API_KEY), or an "
                "api_base of a self-hosted Lakera Guard"
            )
    elif kind in ("azure_text_moderation", "azure_prompt_shield"):
        if not options.get("api_base") or not options.get("api_key"):
            return bad(
                f"an {kind} guardrail needs api_base (the Content Safety resource's endpoint) "
                "and api_key (os.environ/AZURE_CONTENT_SAFETY_KEY)"
            )
        if kind == "azure_prompt_shield" and "post_call" in modes:
            return bad("Prompt Shields screen requests: mode pre_call or during_call")
        return _azure_check(bad, options)
    elif kind == "bedrock":
        if not options.get("guardrailIdentifier"):
            return bad("a bedrock guardrail needs guardrailIdentifier (and guardrailVersion)")
    elif kind == "openai_moderation":
        if not isinstance(options.get("model") or "", str):
            return bad("model is the name of a moderation model group (or of the API's model)")
    elif kind == "llm_judge":
        if not isinstance(options.get("model"), str) or not options.get("model"):
            return bad('an llm_judge guardrail needs "model": a chat model group')
        if not isinstance(options.get("rubric"), str) or not options["rubric"].strip():
            return bad('an llm_judge guardrail needs "rubric": what the judge allows and refuses')
    elif kind == "custom":
        path = options.get("path")
        if not isinstance(path, str) or "." not in path:
            return bad('a custom guardrail needs "path": module.ClassName')
    return True


def _azure_check(bad: Any, options: dict[str, Any]) -> bool:
    unknown = set(options.get("categories") or ()) - set(HARM_CATEGORIES)
    if unknown:
        return bool(bad(f"unknown categories {sorted(unknown)} (one of {HARM_CATEGORIES})"))
    thresholds = dict(options.get("severity_threshold_by_category") or {})
    if set(thresholds) - set(HARM_CATEGORIES):
        return bool(bad(f"severity_threshold_by_category names one of {HARM_CATEGORIES}"))
    for value in [options.get("severity_threshold"), *thresholds.values()]:
        if value is not None and (not isinstance(value, int) or not 0 <= value <= 7):
            return bool(bad("a severity threshold is a whole number from 0 to 7"))
    if options.get("outputType") not in (None, *OUTPUT_TYPES):
        return bool(bad(f"outputType is one of {OUTPUT_TYPES}"))
    return True


def _settings(
    reader: Reader,
    node: YNode | None,
    specs: list[GuardrailSpec],
    models: dict[str, list[str]],
    drafts: Sequence[DeploymentDraft],
) -> GuardrailSettings | None:
    by_name: dict[str, GuardrailSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            reader.error(node, f'two guardrails are named "{spec.name}"')  # type: ignore[arg-type]
        by_name[spec.name] = spec
    for draft in drafts:
        for name in draft.guardrails:
            models.setdefault(draft.model_name, [])
            if name not in models[draft.model_name]:
                models[draft.model_name].append(name)
    groups = {draft.model_name for draft in drafts}
    for spec in specs:
        model = spec.options.get("model")
        asks_a_group = spec.kind == "llm_judge" or (
            spec.kind == "openai_moderation"
            and not spec.options.get("api_base")
            and not spec.options.get("api_key")
        )
        group = str(model or "omni-moderation-latest")
        if asks_a_group and group not in groups:
            reader.warning(  # type: ignore[arg-type]
                node,
                f'guardrail "{spec.name}" asks the model group "{group}", which this file does '
                "not define (a database deployment must, or the check fails)",
            )
    for group, names in models.items():
        for name in names:
            if name not in by_name:
                reader.error(
                    node or drafts[0].node, f'model group "{group}" names no guardrail "{name}"'
                )
    if not by_name:
        return None
    return GuardrailSettings(
        guardrails=by_name,
        default_on=tuple(spec.name for spec in by_name.values() if spec.default_on),
        model_groups={group: tuple(names) for group, names in models.items()},
    )


def guardrail_definition_read(
    *,
    fields: Mapping[str, Any],
    source: str,
    problems: Problems,
    resolve_secrets: bool = True,
) -> tuple[GuardrailSpec | None, tuple[str, ...]]:
    """One guardrail given as Ogem's format writes a `guardrails:` entry (an admin-defined one,
    gateway.GuardrailDefinition), read by the file's own reader: the same keys, kinds and checks.
    Returns the spec and the model groups that run it; (None, ()) with an error in `problems`."""
    text = json.dumps({"guardrails": [dict(fields)]})
    root = yaml_compose(text, source=source, problems=problems)
    if root is None:
        return None, ()
    reader = Reader(problems, environ={}, resolve_secrets=resolve_secrets)
    settings = guardrails_read_native(reader, root.get("guardrails"), drafts=())
    if problems.errors or settings is None:
        return None, ()
    spec = next(iter(settings.guardrails.values()))
    return spec, tuple(settings.model_groups)


def guardrail_references(options: Mapping[str, Any]) -> Iterator[str]:
    """The option names whose value is a secret reference (os.environ/NAME, file:///path, ...):
    they read the server's secrets, which only the operator's guardrails may."""
    for name, value in options.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and secret_is_reference(item) for item in values):
            yield name


def guardrail_entry(
    *, fields: Mapping[str, Any], options: Mapping[str, Any], secrets: Mapping[str, Any]
) -> dict[str, Any]:
    """An admin-defined guardrail's columns (name, kind, modes, action, the flags, timeout,
    model_groups) with its options and decrypted secrets, as a `guardrails:` entry."""
    entry: dict[str, Any] = {**options, **secrets}
    for key in ("name", "kind", "action", "default_on", "enforced", "requestable", "restore"):
        entry[key] = fields[key]
    entry["fail_open"] = fields["fail_open"]
    entry["timeout"] = fields["timeout"]
    entry["mode"] = list(fields["modes"] or ()) or ["pre_call"]
    if fields.get("model_groups"):
        entry["models"] = list(fields["model_groups"])
    return entry


def guardrail_options_reserved(options: Mapping[str, Any]) -> list[str]:
    """Option names that are a guardrail's own fields (written there, not in options)."""
    return sorted(set(options) & (_NATIVE_KEYS | {"models"}))


def guardrail_options_unknown(*, kind: str, options: Mapping[str, Any]) -> list[str]:
    """Option names the kind does not read (a file gets a warning; admin refuses them). A custom
    guardrail's options are its class's."""
    if kind == "custom" or kind not in _KIND_KEYS:
        return []
    return sorted(set(options) - _KIND_KEYS[kind] - _NATIVE_KEYS)

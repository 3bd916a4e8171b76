"""Every key of a LiteLLM config.yaml and what Ogem does with it: used as it is, translated into
an Ogem concept, or ignored; for `check_config --keys`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from billing.pricing import price_is_named
from gateway.config.problems import ConfigProblem, Location, Problems
from gateway.config.provider_names import provider_split
from gateway.config.yamltree import YNode, yaml_compose

USED = "used"
TRANSLATED = "translated"
IGNORED = "ignored"

_DEPLOYMENT_FIELDS = {
    "api_base": "the upstream base URL",
    "base_url": "the upstream base URL",
    "api_key": "the upstream key",
    "api_version": "the API version",
    "rpm": "the deployment's requests per minute",
    "tpm": "the deployment's tokens per minute",
    "weight": "the routing weight",
    "tags": "the routing tags",
    "region_name": "the deployment's region",
    "litellm_credential_name": "the credential_list entry's values",
    "max_parallel_requests": "the deployment's concurrency limit",
    "drop_params": "the deployment's drop_params",
    "modify_params": "the deployment's modify_params",
}
_DEPLOYMENT_TRANSLATED = {
    "timeout": "timeouts.total",
    "stream_timeout": "timeouts.first_byte",
    "order": "priority",
}
_OUTPUT_LIMITS = ("max_output_tokens",)


@dataclass(frozen=True, slots=True)
class KeyUse:
    location: Location
    path: str
    status: str
    note: str

    def __str__(self) -> str:
        return f"{self.location}: {self.status}: {self.path}" + (
            f" ({self.note})" if self.note else ""
        )


def _shape(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


def _entry_use(key: str, node: YNode, *, section: str) -> tuple[str, str]:
    """What a key of a model_list entry's `litellm_params` or `model_info` becomes."""
    if section == "litellm_params":
        if key == "model":
            provider, upstream, _ = provider_split(str(node.value))
            return TRANSLATED, f'provider "{provider}", upstream model "{upstream}"'
        if key in _DEPLOYMENT_FIELDS:
            return USED, _DEPLOYMENT_FIELDS[key]
        if key in _DEPLOYMENT_TRANSLATED:
            return TRANSLATED, _DEPLOYMENT_TRANSLATED[key]
        if price_is_named(key):
            return TRANSLATED, "the deployment's price, in spend and budgets"
        if key in _OUTPUT_LIMITS:
            return TRANSLATED, "the output limit of budget reservations"
        return USED, "a deployment parameter, for its adapter"
    if key == "id":
        return TRANSLATED, f'the deployment id "config:{node.value}"'
    if key == "access_groups":
        return USED, "access groups"
    if key == "mode":
        return USED, "what the model serves (default image model, health checks)"
    if price_is_named(key):
        return TRANSLATED, "the deployment's price, in spend and budgets"
    if key in (*_OUTPUT_LIMITS, "max_tokens"):
        return TRANSLATED, "the output limit of budget reservations; shown by /model/info"
    if key == "base_model":
        return TRANSLATED, "the model whose table price the deployment is charged"
    if key == "max_input_tokens":
        return USED, "the context size of pre-call checks; shown by /model/info"
    return USED, "shown by /model/info"


def config_key_inventory(text: str, *, source: str, problems: list[ConfigProblem]) -> list[KeyUse]:
    """Each key of the LiteLLM file `text`, in file order. `problems` are config_check's: a key
    reported as ignored (or whose deployment is skipped) is listed as ignored with the reason."""
    root = yaml_compose(text, source=source, problems=Problems())
    if root is None or not root.is_mapping:
        return []
    reported: dict[tuple[int, int], str] = {}
    for problem in problems:
        message = problem.message
        if "ignored" in message or "skipped" in message:
            where = (problem.location.line, problem.location.column)
            reported.setdefault(where, message.split(": ", 1)[-1])
    uses: list[KeyUse] = []

    def add(node: YNode, status: str, note: str) -> None:
        at = node.key_location or node.location
        problem = reported.get((at.line, at.column))
        if problem is None and node.is_scalar:  # a problem with the value itself
            problem = reported.get((node.location.line, node.location.column))
        if problem is not None:
            status, note = IGNORED, problem
        uses.append(KeyUse(at, node.path, status, note))

    def walk(node: YNode) -> None:
        for key, child in (node.value or {}).items():
            shape = _shape(child.path)
            parent = shape.rsplit(".", 1)[0] if "." in shape else ""
            if parent in ("model_list[].litellm_params", "model_list[].model_info"):
                add(child, *_entry_use(key, child, section=parent.rsplit(".", 1)[-1]))
                continue
            if shape == "model_list[].model_name":
                wildcard = "*" in str(child.value)
                add(
                    child,
                    TRANSLATED if wildcard else USED,
                    "a wildcard route" if wildcard else "the public model name",
                )
                continue
            add(child, USED, "")
            if child.is_mapping and shape in (
                "router_settings",
                "litellm_settings",
                "general_settings",
                "model_list[].litellm_params",
                "model_list[].model_info",
            ):
                walk(child)
            elif child.is_list and shape == "model_list":
                for item in child.value:
                    if item.is_mapping:
                        walk(item)

    walk(root)
    return uses

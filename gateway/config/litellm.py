"""LiteLLM's config.yaml, read as it is: model_list, router_settings, litellm_settings,
general_settings, environment_variables and credential_list.

Keys Ogem does not act on are reported as warnings, never errors, so a LiteLLM user's file loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gateway.config.alerting import alerting_read_litellm
from gateway.config.cache import cache_check_model_info, cache_read_litellm
from gateway.config.callbacks import callbacks_read_litellm
from gateway.config.common import (
    DeploymentDraft,
    ParsedFile,
    check_literal_key,
    check_prices,
    groups_check,
    read_aliases,
    read_deployment_flags,
    read_fallbacks,
    read_strategy,
)
from gateway.config.fields import Reader
from gateway.config.guardrails import guardrails_read_litellm
from gateway.config.provider_names import WILDCARD_MODEL_PARAM, provider_split, provider_suggest
from gateway.config.types import RouterSettings
from gateway.config.yamltree import YNode
from providers.base import Timeouts

TOP_LEVEL_KEYS = frozenset(
    {
        "model_list",
        "router_settings",
        "litellm_settings",
        "general_settings",
        "environment_variables",
        "credential_list",
        "include",
        "guardrails",
        "callback_settings",
    }
)

# litellm_params read into Deployment fields; every other key goes to Deployment.params.
_DEPLOYMENT_PARAMS = frozenset(
    {
        "model",
        "api_base",
        "base_url",
        "api_key",
        "api_version",
        "rpm",
        "tpm",
        "timeout",
        "stream_timeout",
        "weight",
        "order",
        "region_name",
        "tags",
        "litellm_credential_name",
        "max_parallel_requests",
        "drop_params",
        "modify_params",
        "guardrails",
    }
)
# Region-like params that stay in params too, because their adapters read them there.
_REGION_PARAMS = ("aws_region_name", "vertex_location")

_ROUTER_KEYS = frozenset(
    {
        "routing_strategy",
        "num_retries",
        "timeout",
        "stream_timeout",
        "allowed_fails",
        "cooldown_time",
        "retry_after",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "model_group_alias",
        "enable_pre_call_checks",
    }
)
# LiteLLM keys with no setting here, and where Ogem's counterpart is, so a migrating user's
# report says what to do instead of only "unknown key".
_ROUTER_HINTS = {
    "redis_host": "Ogem uses REDIS_URL",
    "redis_port": "Ogem uses REDIS_URL",
    "redis_password": "Ogem uses REDIS_URL",
    "redis_url": "Ogem uses REDIS_URL",
    "retry_policy": "use num_retries (Ogem's backoff follows the error class, docs/routing.md)",
    "model_group_retry_policy": "use num_retries (Ogem's backoff follows the error class, "
    "docs/routing.md)",
    "allowed_fails_policy": "use allowed_fails",
}
_LITELLM_KEYS = frozenset(
    {
        "num_retries",
        "request_timeout",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "drop_params",
        "modify_params",
        "cache",
        "cache_params",
        "success_callback",
        "failure_callback",
        "callbacks",
        "s3_callback_params",
        "turn_off_message_logging",
    }
)
_LITELLM_HINTS = {
    "set_verbose": "use OGEM_LOG_LEVEL",
    "json_logs": "use OGEM_LOG_LEVEL",
    "max_budget": "give organizations, teams, users or keys budgets (/budget/new, /api/v1/budgets)",
    "budget_duration": "give organizations, teams, users or keys budgets (/budget/new, "
    "/api/v1/budgets)",
    "max_internal_user_budget": "give each user a budget (/user/new max_budget, /api/v1/budgets)",
    "internal_user_budget_duration": "give each user a budget (/user/new budget_duration, "
    "/api/v1/budgets)",
    "default_key_generate_params": "give /key/generate a budget_id (a /budget/new template) "
    "for keys' default limits",
    "upperbound_key_generate_params": "a team's or organization's budget bounds what its keys "
    "spend (/api/v1/budgets)",
}
# master_key is read by the settings (ogem_site/env.py) when OGEM_MASTER_KEY is unset.
_GENERAL_KEYS = frozenset(
    {
        "max_parallel_requests",
        "global_max_parallel_requests",
        "master_key",
        "alerting",
        "alerting_threshold",
        "alert_types",
    }
)
_GENERAL_HINTS = {
    "database_url": "Ogem reads the database from DATABASE_URL",
    "database_connection_pool_limit": "use OGEM_DB_POOL_MAX",
    "max_request_size_mb": "use OGEM_MAX_REQUEST_BYTES",
    "store_model_in_db": "Ogem always serves the database's deployments (/api/v1/models) "
    "beside the file's",
    "background_health_checks": "Ogem probes deployments whose circuit is open in the "
    "background, and GET /health checks every deployment on demand",
    "health_check_interval": "Ogem probes deployments whose circuit is open in the background, "
    "and GET /health checks every deployment on demand",
    "disable_spend_logs": "Ogem logs every request's spend (budgets are kept from it); "
    "OGEM_LOG_RETENTION_DAYS bounds how long",
}
_MODEL_ENTRY_KEYS = frozenset({"model_name", "litellm_params", "model_info", "rpm", "tpm"})


def litellm_environment(reader: Reader, root: YNode) -> dict[str, str]:
    """`environment_variables`: the values `os.environ/NAME` takes, over the process
    environment's (LiteLLM sets them into its environment at start, replacing what was there).
    They are not written into Ogem's process environment: only references read them."""
    mapping = reader.mapping(root.get("environment_variables")) or {}
    environ: dict[str, str] = {}
    for name, node in mapping.items():
        value = reader.string(node, secret=False)
        if value is not None:
            environ[name] = value
    return environ


def _credentials(reader: Reader, root: YNode) -> dict[str, dict[str, YNode]]:
    credentials: dict[str, dict[str, YNode]] = {}
    for entry in reader.items(root.get("credential_list")):
        mapping = reader.mapping(entry)
        if mapping is None:
            continue
        name = reader.string(mapping.get("credential_name"), secret=False)
        if not name:
            reader.error(entry, 'missing required key "credential_name"')
            continue
        credentials[name] = reader.mapping(mapping.get("credential_values")) or {}
    return credentials


_INCLUDED_KEYS = frozenset({"model_list", "credential_list"})


def litellm_parse(reader: Reader, root: YNode, *, included: Sequence[YNode] = ()) -> ParsedFile:
    """`included`: the documents named by `include`, whose model_list and credential_list are
    appended to the main file's (as LiteLLM does)."""
    parsed = ParsedFile()
    reader.unknown_keys(root, TOP_LEVEL_KEYS, section="the LiteLLM configuration")
    for document in included:
        reader.unknown_keys(document, _INCLUDED_KEYS, section="an included file")
    credentials: dict[str, dict[str, YNode]] = {}
    for document in (root, *included):
        credentials.update(_credentials(reader, document))
    for document in (root, *included):
        for entry in reader.items(document.get("model_list")):
            draft = _model_entry(reader, entry, credentials)
            if draft is not None:
                parsed.drafts.append(draft)
    groups = frozenset(draft.model_name for draft in parsed.drafts)
    parsed.router, parsed.general = _settings(reader, root, groups=groups)
    general_node = root.get("general_settings")
    if general_node is not None and general_node.is_mapping:
        parsed.alerting = alerting_read_litellm(reader, general_node.value)
    node = root.get("litellm_settings")
    litellm_settings = (node.value or {}) if node is not None and node.is_mapping else {}
    parsed.cache = cache_read_litellm(
        reader, litellm_settings.get("cache"), litellm_settings.get("cache_params")
    )
    parsed.guardrails = guardrails_read_litellm(
        reader, root.get("guardrails"), drafts=parsed.drafts
    )
    parsed.callbacks = callbacks_read_litellm(
        reader, litellm_settings, root.get("callback_settings")
    )
    return parsed


def _model_entry(
    reader: Reader, entry: YNode, credentials: dict[str, dict[str, YNode]]
) -> DeploymentDraft | None:
    mapping = reader.mapping(entry)
    if mapping is None:
        return None
    reader.unknown_keys(entry, _MODEL_ENTRY_KEYS, section="a model_list entry")
    model_name = reader.string(mapping.get("model_name"), secret=False)
    if not model_name:
        reader.error(entry, 'missing required key "model_name"')
    params_node = mapping.get("litellm_params")
    params = reader.mapping(params_node)
    if params is None:
        if params_node is None:
            reader.error(entry, 'missing required key "litellm_params"')
        return None
    credential_name = reader.string(params.get("litellm_credential_name"), secret=False)
    if credential_name:
        if credential_name not in credentials:
            reader.error(
                params["litellm_credential_name"],
                f'no credential named "{credential_name}" in credential_list',
            )
        # Values written on the deployment win over the shared credential's.
        params = {**credentials.get(credential_name, {}), **params}
    model_node = params.get("model")
    model = reader.string(model_node, secret=False)
    if not model:
        reader.error(params_node, 'missing required key "model"')  # type: ignore[arg-type]
        return None
    if not model_name:
        return None
    provider, upstream, recognised = provider_split(model)
    if not recognised:
        prefix, _, rest = model.partition("/")
        suggestion = provider_suggest(prefix)
        reader.warning(
            model_node,  # type: ignore[arg-type]
            f'"{prefix}" is not a known provider; '
            + (
                f'did you mean "{suggestion}/{rest}"? It is treated as the OpenAI model "{model}"'
                if suggestion
                else f'treated as the OpenAI model "{model}" (write "openai/{model}" to say so)'
            ),
        )
    if "*" in upstream and "*" not in model_name:
        reader.warning(
            model_node,  # type: ignore[arg-type]
            f'a wildcard model "{model}" needs a wildcard model_name (such as "*"); '
            "deployment skipped",
        )
        return None
    check_literal_key(reader, params.get("api_key"))
    info = reader.mapping(mapping.get("model_info")) or {}
    check_prices(reader, params)
    check_prices(reader, info)
    cache_check_model_info(reader, info.get("cache"))

    draft = DeploymentDraft(
        node=entry, model_name=model_name, provider=provider, upstream_model=upstream
    )
    draft.explicit_id = reader.string(info.get("id"), secret=False)
    draft.access_groups = reader.strings(info.get("access_groups"))
    draft.api_base = reader.string(params.get("api_base") or params.get("base_url")) or ""
    draft.api_key = reader.string(params.get("api_key"))
    draft.api_version = reader.string(params.get("api_version")) or ""
    draft.rpm = reader.integer(params.get("rpm") or mapping.get("rpm"))
    draft.tpm = reader.integer(params.get("tpm") or mapping.get("tpm"))
    weight = reader.integer(params.get("weight"), minimum=1)
    draft.weight = weight if weight is not None else 1
    order = reader.integer(params.get("order"))
    draft.priority = order if order is not None else 0
    draft.tags = reader.strings(params.get("tags"))
    read_deployment_flags(reader, draft, params)
    draft.guardrails = reader.strings(params.get("guardrails"))  # LiteLLM's model-level guardrails
    region = reader.string(params.get("region_name"))
    for name in _REGION_PARAMS:
        region = region or reader.string(params.get(name))
    draft.region = region or ""
    total = reader.number(params.get("timeout"))
    first_byte = reader.number(params.get("stream_timeout"))
    draft.timeouts = replace(
        Timeouts(),
        **({"total": total} if total else {}),
        **({"first_byte": first_byte} if first_byte else {}),
    )
    extra = {
        key: reader.resolved(node) for key, node in params.items() if key not in _DEPLOYMENT_PARAMS
    }
    model_info = {
        key: node.plain() for key, node in info.items() if key not in {"id", "access_groups"}
    }
    if model_info:
        extra["model_info"] = model_info
    if "*" in model_name:
        # LiteLLM's wildcard routing: the registry serves each matching name from this template.
        extra[WILDCARD_MODEL_PARAM] = model
    draft.params = extra
    return draft


def _settings(
    reader: Reader, root: YNode, *, groups: frozenset[str]
) -> tuple[RouterSettings, dict[str, Any]]:
    router_node = root.get("router_settings")
    litellm_node = root.get("litellm_settings")
    general_node = root.get("general_settings")
    router = reader.mapping(router_node) or {}
    litellm = reader.mapping(litellm_node) or {}
    general_map = reader.mapping(general_node) or {}
    if router:
        reader.unknown_keys(
            router_node, _ROUTER_KEYS, section="router_settings", hints=_ROUTER_HINTS
        )  # type: ignore[arg-type]
    if litellm:
        reader.unknown_keys(
            litellm_node, _LITELLM_KEYS, section="litellm_settings", hints=_LITELLM_HINTS
        )  # type: ignore[arg-type]
    if general_map:
        reader.unknown_keys(
            general_node, _GENERAL_KEYS, section="general_settings", hints=_GENERAL_HINTS
        )  # type: ignore[arg-type]

    def pick(key: str, litellm_key: str | None = None) -> YNode | None:
        # router_settings wins when both sections set the same thing.
        return router.get(key) or litellm.get(litellm_key or key)

    aliases, hidden = read_aliases(reader, router.get("model_group_alias"))
    groups = groups | aliases.keys()
    groups_check(
        reader, pick("default_fallbacks"), reader.strings(pick("default_fallbacks")), groups=groups
    )
    settings = RouterSettings(
        strategy=read_strategy(reader, router.get("routing_strategy")) or "simple-shuffle",
        num_retries=reader.integer(pick("num_retries")),
        timeout=reader.number(pick("timeout", "request_timeout")),
        stream_timeout=reader.number(router.get("stream_timeout")),
        allowed_fails=reader.integer(router.get("allowed_fails")),
        cooldown_time=reader.number(router.get("cooldown_time"), positive=False),
        retry_after=reader.number(router.get("retry_after"), positive=False),
        fallbacks=read_fallbacks(reader, pick("fallbacks"), groups=groups),
        context_window_fallbacks=read_fallbacks(
            reader, pick("context_window_fallbacks"), groups=groups
        ),
        content_policy_fallbacks=read_fallbacks(
            reader, pick("content_policy_fallbacks"), groups=groups
        ),
        default_fallbacks=reader.strings(pick("default_fallbacks")),
        model_group_alias=aliases,
        hidden_aliases=hidden,
        pre_call_checks=bool(reader.boolean(router.get("enable_pre_call_checks"))),
    )
    master_key = general_map.get("master_key")
    check_literal_key(reader, master_key)
    if master_key is not None and str(master_key.value).startswith("secret://"):
        reader.warning(
            master_key,
            "a secret manager reference cannot hold the master key (it is read before they "
            "load); ignored: use OGEM_MASTER_KEY, os.environ/NAME or file:///path",
        )
    general: dict[str, Any] = {}
    for key in ("drop_params", "modify_params"):
        value = reader.boolean(litellm.get(key))
        if value is not None:
            general[key] = value
    for key in ("max_parallel_requests", "global_max_parallel_requests"):
        value = reader.integer(general_map.get(key), minimum=1)
        if value is not None:
            general[key] = value
    return settings, general

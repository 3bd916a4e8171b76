"""Load a configuration: read the source, detect its format, validate, and build a GatewayConfig.

Every problem is collected with its location; a configuration with any error is not used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.callbacks.settings import CallbackSettings
from gateway.config.common import ParsedFile, drafts_to_deployments
from gateway.config.database import (
    database_deployments,
    database_guardrails,
    organization_ids,
    run_sync,
)
from gateway.config.fields import Reader
from gateway.config.litellm import TOP_LEVEL_KEYS as LITELLM_KEYS
from gateway.config.litellm import litellm_environment, litellm_parse
from gateway.config.native import native_parse
from gateway.config.overlays import overlays_apply
from gateway.config.problems import ConfigError, ConfigProblem, Location, Problems
from gateway.config.sources import SourceError, source_is_url, source_read
from gateway.config.types import GatewayConfig, GuardrailSettings, GuardrailSpec, TracingSettings
from gateway.config.yamltree import YNode, yaml_compose, yaml_unset_report
from providers.base import Deployment

OGEM_MARKERS = frozenset({"models", "router", "settings", "version"})


def _detect(reader: Reader, root: YNode) -> str | None:
    keys = set(root.value)
    # `guardrails` is a section of both formats: it says nothing about which one a file is.
    litellm, ogem = keys & (LITELLM_KEYS - {"guardrails"}), keys & OGEM_MARKERS
    if litellm and ogem:
        reader.error(
            root,
            f"mixes LiteLLM keys ({', '.join(sorted(litellm))}) with Ogem keys "
            f"({', '.join(sorted(ogem))}); use one format per file",
        )
        return None
    return "litellm" if litellm else "ogem"


def _organizations(reader: Reader, parsed: ParsedFile) -> dict[str, int]:
    wanted = {d.organization_slug for d in parsed.drafts if d.organization_slug is not None}
    if not wanted:
        return {}
    try:
        found = run_sync(lambda: organization_ids(wanted))
    except Exception as exc:  # an unreachable database is a problem to report, not a crash
        first = next(d for d in parsed.drafts if d.organization_slug is not None)
        reader.error(
            first.node.get("organization") or first.node,
            f"cannot look up organizations in the database ({type(exc).__name__})",
        )
        return {}
    for draft in parsed.drafts:
        slug = draft.organization_slug
        if slug is not None and slug not in found:
            # Organizations live in the database and change under the file (deleted, or a slug an
            # operator renamed): one stale entry must not take every other tenant's models away.
            reader.warning(
                draft.node.get("organization") or draft.node,
                f'no organization with slug "{slug}"; deployment skipped',
            )
    return found


def _includes(
    reader: Reader, root: YNode, *, source: str, environ: Mapping[str, str] | None
) -> list[tuple[str, YNode]]:
    """LiteLLM's `include: [file.yaml, ...]`: paths relative to the including file."""
    node = root.get("include")
    if node is None:
        return []
    if source_is_url(source):
        reader.error(node, "include is supported for configuration files, not URLs")
        return []
    documents: list[tuple[str, YNode]] = []
    for item in reader.items(node):
        name = reader.string(item, secret=False)
        if not name:
            continue
        path = str(Path(source).parent / name)
        try:
            text = source_read(path)
        except SourceError as exc:
            reader.error(item, exc.message)
            continue
        document = yaml_compose(text.text, source=path, problems=reader.problems, environ=environ)
        if document is None:
            continue
        if not document.is_mapping:
            reader.error(document, "an included file must be a mapping of sections")
            continue
        yaml_unset_report(document, reader.problems)
        documents.append((path, document))
    return documents


def config_parse(
    text: str,
    *,
    source: str,
    problems: Problems,
    digest: str = "",
    resolve_secrets: bool = True,
    environment: str = "",
    environ: Mapping[str, str] | None = None,
) -> GatewayConfig | None:
    """Validate `text`; every problem goes to `problems`. Returns None when there is an error.

    `environment` (OGEM_ENV) selects the overlays merged over it (overlays.py); `environ` is what
    `${NAME}` references read, the process environment by default."""
    environ = os.environ if environ is None else environ
    root = yaml_compose(text, source=source, problems=problems, environ=environ)
    if root is None:
        return None
    reader = Reader(problems, environ={}, resolve_secrets=resolve_secrets)
    if not root.is_mapping:
        reader.error(root, "the configuration must be a mapping of sections")
        return None
    root, overlays = overlays_apply(
        reader, root, source=source, environment=environment, environ=environ
    )
    yaml_unset_report(root, problems)
    kind = _detect(reader, root)
    if kind is None:
        return None
    includes: list[tuple[str, YNode]] = []
    if kind == "litellm":
        includes = _includes(reader, root, source=source, environ=environ)
        reader.environ = litellm_environment(reader, root)
        parsed = litellm_parse(reader, root, included=[document for _, document in includes])
    else:
        parsed = native_parse(reader, root)
    organizations = _organizations(reader, parsed)
    deployments = drafts_to_deployments(reader, parsed.drafts, organizations=organizations)
    if not parsed.drafts and not problems.errors:
        problems.warning(root.location, "no models are configured")
    if problems.errors:
        return None
    callbacks, tracing = _observability(parsed)
    return GatewayConfig(
        deployments=tuple(deployments),
        router=parsed.router,
        general=parsed.general,
        cache=parsed.cache,
        guardrails=parsed.guardrails,
        callbacks=callbacks,
        alerting=parsed.alerting,
        tracing=tracing,
        source=source,
        format=kind,
        digest=digest,
        includes=tuple(path for path, _ in includes),
        environment=environment,
        overlays=overlays,
    )


def config_check(
    source: str,
    *,
    token: str = "",
    resolve_secrets: bool = True,
    allow_http_loopback: bool = False,
    environment: str = "",
) -> tuple[GatewayConfig | None, list[ConfigProblem]]:
    """Read and validate a configuration file or URL; never raises for a bad configuration."""
    problems = Problems()
    try:
        text = source_read(source, token=token, allow_http_loopback=allow_http_loopback)
    except SourceError as exc:
        problems.error(exc.location, exc.message)
        return None, problems.items
    config = config_parse(
        text.text,
        source=source,
        problems=problems,
        digest=text.digest,
        resolve_secrets=resolve_secrets,
        environment=environment,
    )
    return config, sorted(problems.items, key=_position)


def _position(problem: ConfigProblem) -> tuple[str, int, int]:
    return (problem.location.source, problem.location.line, problem.location.column)


def config_load(
    source: str, *, token: str = "", allow_http_loopback: bool = False, environment: str = ""
) -> GatewayConfig:
    """Like config_check, but raises ConfigError (with every problem) on any error."""
    config, problems = config_check(
        source, token=token, allow_http_loopback=allow_http_loopback, environment=environment
    )
    if config is None:
        raise ConfigError(problems)
    return config


def config_merge(config: GatewayConfig, database: Iterable[Deployment]) -> GatewayConfig:
    """The merge rule: the file's deployments plus the database's. Deployments sharing a public
    model name form one model group whatever their origin; on an identical deployment id the
    database row wins (ids are prefixed `config:` and `db:`, so that only happens by design)."""
    merged = {deployment.id: deployment for deployment in config.deployments}
    for deployment in database:
        merged[deployment.id] = deployment
    deployments = tuple(_defaults_apply(d, config.general) for d in merged.values())
    return replace(config, deployments=deployments)


def _defaults_apply(deployment: Deployment, general: Mapping[str, Any]) -> Deployment:
    """The file's defaults for what a deployment does not set itself: `max_parallel_requests`
    (LiteLLM's general_settings: per deployment), `drop_params` and `modify_params`."""
    changes: dict[str, Any] = {}
    if deployment.max_parallel_requests is None and general.get("max_parallel_requests"):
        changes["max_parallel_requests"] = general["max_parallel_requests"]
    for name in ("drop_params", "modify_params"):
        if getattr(deployment, name) is None and general.get(name) is not None:
            changes[name] = general[name]
    return replace(deployment, **changes) if changes else deployment


def config_with_database(config: GatewayConfig, *, problems: Problems) -> GatewayConfig:
    """Merge the database's deployments in; a database that cannot be read adds none."""
    try:
        rows = run_sync(lambda: database_deployments(problems=problems))
    except Exception as exc:  # an unreachable database must not stop the file's models
        problems.error(
            Location("database"), f"cannot read model deployments ({type(exc).__name__})"
        )
        rows = []
    try:
        guardrails = run_sync(lambda: database_guardrails(problems=problems))
    except Exception as exc:  # as above: the file's guardrails still apply
        problems.error(Location("database"), f"cannot read guardrails ({type(exc).__name__})")
        guardrails = []
    return guardrails_merge(config_merge(config, rows), guardrails, problems=problems)


def guardrails_merge(
    config: GatewayConfig,
    database: Iterable[tuple[GuardrailSpec, tuple[str, ...], Location]],
    *,
    problems: Problems,
) -> GatewayConfig:
    """The file's guardrails plus the admin-defined ones. A name the file defines is the file's:
    the row is skipped and reported (admin refuses to save one; the file may gain it later)."""
    database = list(database)
    if not database:
        return config
    base = config.guardrails or GuardrailSettings()
    guardrails = dict(base.guardrails)
    default_on = list(base.default_on)
    groups = {group: list(names) for group, names in base.model_groups.items()}
    for spec, models, where in database:
        if spec.name in base.guardrails:
            problems.error(
                where, f'the configuration file defines a guardrail "{spec.name}"; row skipped'
            )
            continue
        guardrails[spec.name] = spec
        if spec.default_on:
            default_on.append(spec.name)
        for group in models:
            groups.setdefault(group, []).append(spec.name)
    if len(guardrails) == len(base.guardrails):
        return config
    settings = GuardrailSettings(
        guardrails=guardrails,
        default_on=tuple(default_on),
        model_groups={group: tuple(names) for group, names in groups.items()},
        from_database=frozenset(guardrails) - frozenset(base.guardrails),
    )
    return replace(config, guardrails=settings)


def _observability(parsed: ParsedFile) -> tuple[CallbackSettings | None, TracingSettings | None]:
    """The callbacks the requests deliver to (None when the lists name no sink: the /v1 path then
    skips them), and the tracing settings: the file's `tracing:` section, else on when LiteLLM's
    callback lists name `otel` (its settings from the OTEL_* variables, docs/tracing.md)."""
    callbacks, tracing = parsed.callbacks, parsed.tracing
    if callbacks is None:
        return None, tracing
    if tracing is None and {"otel", "opentelemetry"} & set(callbacks.tracing):
        tracing = TracingSettings()
    if not callbacks.success and not callbacks.failure and callbacks.message_logging:
        callbacks = None
    return callbacks, tracing

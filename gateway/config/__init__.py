"""Ogem's configuration: its own YAML format and LiteLLM's config.yaml, from a file or a URL,
merged with the database's deployments and hot-reloaded. See docs/configuration.md."""

from gateway.config.loader import config_check, config_load, config_merge, config_parse
from gateway.config.problems import ConfigError, ConfigProblem, Location, Severity
from gateway.config.types import GatewayConfig, RouterSettings
from gateway.config.watch import (
    config_current,
    config_deployments,
    config_watch_start,
    config_watch_stop,
)

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "Location",
    "RouterSettings",
    "Severity",
    "config_check",
    "config_current",
    "config_deployments",
    "config_load",
    "config_merge",
    "config_parse",
    "config_watch_start",
    "config_watch_stop",
]

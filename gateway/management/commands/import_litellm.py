"""`python manage.py import_litellm --database-url URL [--config FILE] [--dry-run]`: bring a
LiteLLM Proxy database over (gateway/litellm_import.py, docs/litellm-import.md)."""

from __future__ import annotations

import os
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.litellm_import import ImportOptions, LiteLLMImportError, litellm_import


def salt_key_find(config_path: str | None) -> str | None:
    """What LiteLLM encrypted its model table with: LITELLM_SALT_KEY, else its master key
    (LITELLM_MASTER_KEY, else `general_settings.master_key` of its config, `os.environ/NAME`
    included). Read from the environment and files, never the command line (`ps` shows that)."""
    if os.environ.get("LITELLM_SALT_KEY"):
        return os.environ["LITELLM_SALT_KEY"]
    if os.environ.get("LITELLM_MASTER_KEY"):
        return os.environ["LITELLM_MASTER_KEY"]
    if not config_path:
        return None
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"cannot read {config_path}: {exc}") from None
    general = config.get("general_settings") if isinstance(config, dict) else None
    master = general.get("master_key") if isinstance(general, dict) else None
    if isinstance(master, str) and master.startswith("os.environ/"):
        master = os.environ.get(master.removeprefix("os.environ/"))
    return master if isinstance(master, str) and master else None


class Command(BaseCommand):
    help = (
        "Import a LiteLLM Proxy database: organizations, teams, users, end users, keys (which "
        "keep working), budgets, the model table and spend logs. Reruns update; never duplicate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database-url", required=True, help="LiteLLM's PostgreSQL URL (read only)"
        )
        parser.add_argument(
            "--config",
            help="LiteLLM's config.yaml: its general_settings.master_key decrypts the model "
            "table when LITELLM_SALT_KEY is not set",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be done; write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        salt_key = salt_key_find(options.get("config"))
        try:
            summary = litellm_import(
                options=ImportOptions(
                    database_url=options["database_url"],
                    dry_run=options["dry_run"],
                    salt_key=salt_key,
                )
            )
        except LiteLLMImportError as exc:
            raise CommandError(str(exc)) from None
        for line in summary.lines():
            self.stdout.write(line)

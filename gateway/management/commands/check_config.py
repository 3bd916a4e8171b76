"""`python manage.py check_config FILE`: validate a configuration, print every problem with its
`file:line:column`, and exit non-zero when there is any error (warnings do not fail)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from gateway.config import Severity, config_check
from gateway.config.inventory import config_key_inventory
from gateway.config.sources import SourceError, source_read


class Command(BaseCommand):
    help = (
        "Validate an Ogem or LiteLLM configuration file (or https:// URL). Prints every problem "
        "with its location; exits 1 on any error."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="a YAML file path or an https:// URL")
        parser.add_argument(
            "--skip-secrets",
            action="store_true",
            help="check os.environ/ and file:// references without reading them",
        )
        parser.add_argument(
            "--env",
            default=None,
            help="the environment whose overlays to merge (default: OGEM_ENV); '' for none",
        )
        parser.add_argument(
            "--keys",
            action="store_true",
            help="for a LiteLLM config.yaml, also print each key as used, translated or ignored",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source: str = options["file"]
        environment = settings.OGEM_ENV if options["env"] is None else options["env"]
        config, problems = config_check(
            source,
            token=settings.OGEM_CONFIG_TOKEN,
            resolve_secrets=not options["skip_secrets"],
            environment=environment,
        )
        errors = [p for p in problems if p.severity is Severity.ERROR]
        warnings = [p for p in problems if p.severity is Severity.WARNING]
        for problem in problems:
            style = self.style.ERROR if problem.severity is Severity.ERROR else self.style.WARNING
            self.stdout.write(style(str(problem)))
        counts = f"{_plural(len(errors), 'error')}, {_plural(len(warnings), 'warning')}"
        if config is None:
            self.stdout.write(f"{source}: invalid ({counts})")
            raise SystemExit(1)
        if options["keys"] and config.format == "litellm":
            self._keys(source, problems)
        groups = config.model_groups()
        overlay = f" for environment {environment}" if environment else ""
        self.stdout.write(
            f"{source}{overlay}: OK, {config.format} format, "
            f"{_plural(len(config.deployments), 'deployment')} in "
            f"{_plural(len(groups), 'model group')} ({counts})"
        )

    def _keys(self, source: str, problems: list[Any]) -> None:
        try:
            text = source_read(source, token=settings.OGEM_CONFIG_TOKEN).text
        except SourceError:
            return  # read a moment ago; a file gone since has nothing to list
        for use in config_key_inventory(text, source=source, problems=problems):
            self.stdout.write(str(use))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"

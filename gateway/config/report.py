"""What a starting process says about its configuration: where the models come from, how many,
and every problem, logged once for the whole installation.

`serve` (and a Celery worker started on its own) reads the configuration at start, prints the
counts in its banner and logs each problem. It then names the problems it logged in the
environment (`REPORTED_ENV`: a short digest of each), which its children inherit: a web worker or
Celery process loading the same configuration later logs those at DEBUG only, and still logs, as
before, whatever is new (a file edited meanwhile, a reload).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from gateway.config.database import database_deployments, run_sync
from gateway.config.loader import config_check
from gateway.config.problems import ConfigProblem, Problems, Severity

logger = logging.getLogger("ogem.config")

REPORTED_ENV = "OGEM_CONFIG_REPORTED"
_FORMATS = {"litellm": "LiteLLM config.yaml", "ogem": "Ogem format"}


@dataclass(frozen=True, slots=True)
class ConfigReport:
    source: str  # OGEM_CONFIG: a path or URL, "" when unset
    format: str  # "litellm", "ogem", or "" (unset, or unreadable)
    file_deployments: int  # the file's (or the built-in offline models' when unset)
    database_deployments: int
    groups: int  # model groups, file and database together
    problems: tuple[ConfigProblem, ...]

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity is Severity.ERROR)

    def line(self) -> str:
        """One line for a banner: counts and origins."""
        database = f"{self.database_deployments} from the database"
        if not self.source:
            origin = f"{self.file_deployments} built-in offline models (OGEM_CONFIG unset)"
        elif self.format:
            origin = (
                f"{self.file_deployments} from {self.source} ({_FORMATS[self.format]}; "
                "read-only in admin and the API)"
            )
        else:
            origin = f"none from {self.source} ({self.errors} error(s), logged below)"
        return f"{self.groups} model group(s), deployments: {origin} + {database}"


def config_report(*, builtin: Iterable[str] = ()) -> ConfigReport:
    """Read and check OGEM_CONFIG and the database's deployments now. `builtin`: the model
    names of the built-in offline deployments, served when OGEM_CONFIG is unset."""
    source = settings.OGEM_CONFIG
    problems: list[ConfigProblem] = []
    names: set[str] = set()
    kind, count = "", 0
    if source:
        config, found = config_check(
            source, token=settings.OGEM_CONFIG_TOKEN, environment=settings.OGEM_ENV
        )
        problems += found
        if config is not None:
            kind, count = config.format, len(config.deployments)
            names |= {d.model_name for d in config.deployments}
    else:
        names |= set(builtin)
        count = len(names)
    collected = Problems()
    try:
        rows = run_sync(lambda: database_deployments(problems=collected))
    except Exception as exc:  # an unreachable database is reported by serve itself
        logger.debug("cannot count the database's deployments: %s", exc)
        rows = []
    names |= {row.model_name for row in rows}
    return ConfigReport(
        source=source,
        format=kind,
        file_deployments=count,
        database_deployments=len(rows),
        groups=len(names),
        problems=(*problems, *collected.items),
    )


def problem_digest(problem: ConfigProblem) -> str:
    return hashlib.sha256(str(problem).encode()).hexdigest()[:16]


def config_report_log(report: ConfigReport) -> None:
    """Log every problem not yet reported to this process's ancestors, and name them all in the
    environment for the processes it starts."""
    reported = problems_reported()
    for problem in report.problems:
        if problem_digest(problem) in reported:
            continue
        level = logging.ERROR if problem.severity is Severity.ERROR else logging.WARNING
        logger.log(level, "configuration: %s", problem)
    digests = reported | {problem_digest(problem) for problem in report.problems}
    os.environ[REPORTED_ENV] = ",".join(sorted(digests))


def problems_reported() -> frozenset[str]:
    """The digests of the problems a parent process logged at its start."""
    return frozenset(filter(None, os.environ.get(REPORTED_ENV, "").split(",")))

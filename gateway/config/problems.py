"""Problems found while loading a configuration, each with the place in the file it refers to."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Location:
    source: str  # a file path, a URL, or "database"
    line: int = 0  # 1-based; 0 when the problem has no line (e.g. an unreadable file)
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.source
        return f"{self.source}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    severity: Severity
    message: str
    location: Location

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


@dataclass(slots=True)
class Problems:
    """Collects problems instead of stopping at the first, so one run reports them all."""

    items: list[ConfigProblem] = field(default_factory=list)

    def error(self, location: Location, message: str) -> None:
        self.items.append(ConfigProblem(Severity.ERROR, message, location))

    def warning(self, location: Location, message: str) -> None:
        self.items.append(ConfigProblem(Severity.WARNING, message, location))

    @property
    def errors(self) -> list[ConfigProblem]:
        return [p for p in self.items if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[ConfigProblem]:
        return [p for p in self.items if p.severity is Severity.WARNING]


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds every error and warning found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity is Severity.ERROR]
        first = str(errors[0]) if errors else "invalid configuration"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)

"""Every environment variable Ogem reads goes through this module.

Typed helpers fail loudly on bad values, so a typo in a deployment stops the process at start-up
instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("OGEM_VAR_DIR", BASE_DIR / "var"))

_env = environ.Env()
_N = TypeVar("_N", int, float)


class ConfigurationError(RuntimeError):
    pass


# While the settings load, problems are collected here instead of raised one at a time, so a
# deployment missing three variables hears of all three at its first start (`env_collect_end`).
_collected: list[str] | None = None


def _refuse(message: str) -> None:
    if _collected is None:
        raise ConfigurationError(message)
    _collected.append(message)


def env_collect_begin() -> None:
    """Called first by the base settings: from now on problems are collected."""
    global _collected
    if _collected is None:
        _collected = []


def env_collect_end(*, module: str) -> None:
    """Called last by each settings module with its `__name__`: the active one (the innermost of
    base -> production) raises one ConfigurationError listing every problem found."""
    global _collected
    active = os.environ.get("DJANGO_SETTINGS_MODULE") or "ogem_site.settings.base"
    if module != active or _collected is None:
        return
    problems, _collected = list(dict.fromkeys(_collected)), None
    if problems:
        raise ConfigurationError(
            f"Ogem cannot start: {len(problems)} setting(s) to fix in the environment:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


def env_require(condition: bool, message: str) -> None:
    """A settings check: `message` joins the problems reported at start unless `condition`."""
    if not condition:
        _refuse(message)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    _refuse(f"{name}={raw!r} is not a boolean (use true or false)")
    return default


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def _env_number(name: str, default: _N, kind: Callable[[str], _N], what: str) -> _N:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        _refuse(f"{name}={raw!r} is not {what}")
        return default


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_origins(name: str) -> list[str]:
    """Browser origins (`scheme://host[:port]`, or `*`), compared exactly as browsers send them."""
    origins = env_list(name)
    for origin in origins:
        if origin == "*":
            continue
        scheme, sep, rest = origin.partition("://")
        if scheme not in {"http", "https"} or not sep or not rest or "/" in rest:
            _refuse(f"{name}: {origin!r} is not an origin (scheme://host[:port], no path, or *)")
            return []
    return origins


def env_database(default_sqlite: Path) -> dict:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite),
            # The embedded default writes from background threads (usage, captures, batches) while
            # requests read: WAL lets readers and one writer run together, and IMMEDIATE takes the
            # write lock when a transaction begins, so a waiting writer waits out `timeout` instead
            # of failing at once on a read lock it cannot upgrade.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            },
        }
    try:
        return _env.db_url_config(url)
    except Exception as exc:  # environ raises several types for bad URLs
        _refuse(f"DATABASE_URL is not a valid database URL: {exc}")
        # Never used: the settings' end raises. Not SQLite, so no second, misleading problem.
        return {"ENGINE": "django.db.backends.dummy", "NAME": ""}


def persistent_secret(filename: str, *, nbytes: int = 32, prefix: str = "") -> str:
    """Return a secret stored under var/, generating it on first use (embedded default only)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / filename
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_urlsafe(nbytes)
    # Written with owner-only permissions: it is a credential.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def config_master_key() -> tuple[str, str]:
    """A LiteLLM config's `general_settings.master_key` (a literal or `os.environ/NAME`, the
    file's `environment_variables` first, as LiteLLM) and where it came from, for when
    OGEM_MASTER_KEY is unset; ("", "") when OGEM_CONFIG is not a readable local file or sets
    none. Read with PyYAML alone: settings load before the configuration code."""
    source = env_str("OGEM_CONFIG")
    if not source or "://" in source:
        return "", ""
    try:
        import yaml

        document = yaml.safe_load(Path(source).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return "", ""  # check_config and the loader report a bad file
    if not isinstance(document, dict) or not isinstance(document.get("general_settings"), dict):
        return "", ""
    value = document["general_settings"].get("master_key")
    if not isinstance(value, str) or not value:
        return "", ""
    where = f"general_settings.master_key in {source}"
    if value.startswith("os.environ/"):
        name = value.removeprefix("os.environ/")
        file_env = document.get("environment_variables")
        file_env = file_env if isinstance(file_env, dict) else {}
        resolved = file_env.get(name)
        value = str(resolved) if resolved is not None else os.environ.get(name, "")
        where = f"{where} ({name})"
    elif value.startswith("file://"):
        try:
            value = Path(value.removeprefix("file://")).read_text().strip()
        except OSError:
            return "", ""
    elif value.startswith("secret://"):
        return "", ""  # secret managers load after the settings; the loader warns
    return value, where if value else ""

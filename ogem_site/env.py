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
    raise ConfigurationError(f"{name}={raw!r} is not a boolean (use true or false)")


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
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not {what}") from exc


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
            raise ConfigurationError(
                f"{name}: {origin!r} is not an origin (scheme://host[:port], no path, or *)"
            )
    return origins


def env_database(default_sqlite: Path) -> dict:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite),
            "OPTIONS": {"timeout": 20},
        }
    try:
        return _env.db_url_config(url)
    except Exception as exc:  # environ raises several types for bad URLs
        raise ConfigurationError(f"DATABASE_URL is not a valid database URL: {exc}") from exc


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

"""Where a configuration comes from: a file path, or an https:// URL fetched with a bearer token."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from gateway.config.problems import Location

FETCH_TIMEOUT_SECONDS = 10.0
MAX_CONFIG_BYTES = 5 * 1024 * 1024


class SourceError(Exception):
    def __init__(self, location: Location, message: str) -> None:
        super().__init__(message)
        self.location = location
        self.message = message


@dataclass(frozen=True, slots=True)
class SourceText:
    source: str
    text: str
    digest: str  # sha256 of the bytes, to tell a real change from a touched file


def source_is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fetch(url: str, *, token: str, allow_http_loopback: bool) -> bytes:
    parts = urlsplit(url)
    if parts.scheme == "http" and not (allow_http_loopback and _is_loopback(parts.hostname or "")):
        # A plain-http config could be swapped in transit, and it carries the bearer token.
        raise SourceError(Location(url), "configuration URLs must use https://")
    headers = {"Accept": "application/yaml, text/yaml, text/plain, */*"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(
            url, headers=headers, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise SourceError(
            Location(url), f"cannot fetch configuration: {type(exc).__name__}"
        ) from exc
    if response.status_code != 200:
        raise SourceError(Location(url), f"cannot fetch configuration: HTTP {response.status_code}")
    if len(response.content) > MAX_CONFIG_BYTES:
        raise SourceError(Location(url), "configuration is larger than 5 MiB")
    return response.content


def source_read(source: str, *, token: str = "", allow_http_loopback: bool = False) -> SourceText:
    """Read a configuration's text. `allow_http_loopback` exists for tests only."""
    if source_is_url(source):
        raw = _fetch(source, token=token, allow_http_loopback=allow_http_loopback)
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise SourceError(
                Location(source), f"cannot read configuration file: {exc.strerror or exc}"
            ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(Location(source), "configuration is not valid UTF-8") from exc
    return SourceText(source=source, text=text, digest=hashlib.sha256(raw).hexdigest())


def source_stamp(source: str) -> tuple[int, int] | None:
    """A cheap change marker for a file (mtime in ns, size); None for URLs or missing files."""
    if source_is_url(source):
        return None
    try:
        stat = Path(source).stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)

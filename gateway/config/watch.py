"""The active configuration and its hot reload.

`config_deployments()` builds the first snapshot (file or built-in default, plus database rows).
A per-process watcher then polls the file's mtime and size every `OGEM_CONFIG_POLL_SECONDS`
(default 2 s; a URL every `OGEM_CONFIG_URL_POLL_SECONDS`, default 60 s) and the database's
deployment rows, and when something really changed (the file's sha256 tells a touched file from an
edited one; its included files and its OGEM_ENV overlay count as part of it) it validates the new
configuration and hands its deployments to `install` (the registry's `registry_install`, passed in
by gateway.registry, which sits above this module). A configuration with errors is logged and not
installed: the previous one keeps serving. Requests in flight hold the Deployment objects they
chose, so a reload never drops them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections

from gateway.config.database import database_fingerprint, run_sync
from gateway.config.loader import config_parse, config_with_database
from gateway.config.problems import ConfigProblem, Location, Problems, Severity
from gateway.config.report import problem_digest, problems_reported
from gateway.config.sources import SourceError, source_is_url, source_read, source_stamp
from gateway.config.types import GatewayConfig
from gateway.secrets import secret_cache_prune, secret_refresh_due
from providers.base import Deployment

logger = logging.getLogger("ogem.config")

# What receives each new configuration's deployments: (deployments, source name).
Install = Callable[[list[Deployment], str], object]

_state_lock = threading.Lock()
_current = GatewayConfig()
_watcher: ConfigWatcher | None = None


def config_current() -> GatewayConfig:
    """The configuration in use (deployments, router settings, general settings)."""
    return _current


def _log(
    problems: Sequence[ConfigProblem], *, action: str, quiet: frozenset[str] = frozenset()
) -> None:
    """`quiet`: digests of problems a parent process already logged at its start (report.py):
    those go to DEBUG, so a problem is logged once per installation, not once per process."""
    for problem in problems:
        level = logging.ERROR if problem.severity is Severity.ERROR else logging.WARNING
        if quiet and problem_digest(problem) in quiet:
            level = logging.DEBUG
        logger.log(level, "configuration %s: %s", action, problem)


@dataclass(slots=True)
class ConfigWatcher:
    source: str
    builtin: tuple[Deployment, ...]
    install: Install | None = None
    token: str = ""
    environment: str = ""  # OGEM_ENV: selects the overlays (overlays.py)
    interval: float = 2.0
    stamp: tuple[object, ...] | None = None
    digest: str = ""
    db_fingerprint: tuple[object, ...] | None = None
    reloads: int = 0
    file_config: GatewayConfig | None = None  # the last good file (or built-in) configuration
    stopped: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None
    thread: threading.Thread | None = None
    pid: int = field(default_factory=os.getpid)
    # Problems logged at start by the parent process (serve): only the first load is quieted.
    quiet: frozenset[str] = frozenset()

    def build(self, *, force: bool = False) -> GatewayConfig | None:
        """A new configuration when something changed (or `force`), else None. Blocking I/O.

        A file with errors is not used: the last good one (nothing at first) stays, still merged
        with the database's current rows.
        """
        fingerprint = self._fingerprint()
        stamp = self._stamp() if self.source else None
        file_unchanged = not self.source or (stamp is not None and stamp == self.stamp)
        # A cached secret past its TTL: re-resolve the references, which reads it again.
        secrets_due = secret_refresh_due()
        if not force and fingerprint == self.db_fingerprint and file_unchanged and not secrets_due:
            return None
        file_changed = False
        if self.source:
            file_changed = self._reread(stamp, force=force or secrets_due)
        elif self.file_config is None:
            self.file_config = GatewayConfig(deployments=self.builtin)
        db_changed = fingerprint != self.db_fingerprint
        self.db_fingerprint = fingerprint
        if not (force or file_changed or db_changed or secrets_due):
            return None
        base = self.file_config or GatewayConfig(source=self.source)
        problems = Problems()
        config = config_with_database(base, problems=problems)
        _log(problems.items, action="database", quiet=self.quiet)
        self.quiet = frozenset()
        if secrets_due:
            secret_cache_prune()
            if not (force or db_changed) and config == _current:
                return None  # the secrets were read again and had not changed
        return config

    def _included(self) -> tuple[str, ...]:
        """The files read with the source: LiteLLM's includes and the environment's overlay."""
        return _watched(self.file_config) if self.file_config is not None else ()

    def _stamp(self) -> tuple[object, ...] | None:
        main = source_stamp(self.source)
        if main is None:
            return None
        return (main, *(source_stamp(path) for path in self._included()))

    def _content_digest(self, main_digest: str) -> str:
        """The main file's digest, extended with its included files' (edits there count too)."""
        included = self._included()
        if not included:
            return main_digest
        combined = hashlib.sha256(main_digest.encode())
        for path in included:
            try:
                combined.update(Path(path).read_bytes())
            except OSError:
                combined.update(b"\0missing")
        return combined.hexdigest()

    def _reread(self, stamp: tuple[object, ...] | None, *, force: bool) -> bool:
        """Read and validate the file if its content changed; True when a new one is good."""
        if not force and stamp != self.stamp and _settling(stamp):
            return False  # still being written: the next poll sees the change again
        previous_stamp, self.stamp = self.stamp, stamp
        try:
            text = source_read(self.source, token=self.token)
        except SourceError as exc:
            if force or stamp != previous_stamp:
                problem = ConfigProblem(Severity.ERROR, exc.message, exc.location)
                _log([problem], action="not reloaded")
            return False
        digest = self._content_digest(text.digest)
        if not force and digest == self.digest:
            return False
        self.digest = digest
        problems = Problems()
        config = config_parse(
            text.text,
            source=self.source,
            problems=problems,
            digest=text.digest,
            environment=self.environment,
        )
        if config is None:
            _log(problems.items, action="rejected", quiet=self.quiet)
            return False
        refusal = _shrink_refusal(before=self.file_config, after=config)
        if refusal:
            _log(
                [ConfigProblem(Severity.ERROR, refusal, Location(self.source))],
                action="not reloaded",
            )
            return False
        _log(problems.items, action="loaded with warnings", quiet=self.quiet)
        if _watched(config) != self._included():
            self.file_config = config  # stamp and digest now cover the new set of includes
            self.stamp, self.digest = self._stamp(), self._content_digest(text.digest)
        self.file_config = config
        return True

    def _fingerprint(self) -> tuple[object, ...] | None:
        try:
            return database_fingerprint()
        except Exception:  # unreachable database: keep what we had, retry on the next poll
            return self.db_fingerprint

    def poll(self) -> bool:
        """One check; installs a changed configuration. Returns whether it installed one."""
        try:
            config = self.build()
        finally:
            connections.close_all()
        if config is None:
            return False
        _install(config, install=self.install)
        self.reloads += 1
        logger.info(
            "configuration reloaded from %s: %d deployments",
            self.source or "the database",
            len(config.deployments),
        )
        return True

    def stop(self) -> None:
        self.stopped.set()
        if self.task is not None:
            self.task.get_loop().call_soon_threadsafe(self.task.cancel)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)

    async def run(self) -> None:
        while not self.stopped.is_set():
            waited = 0.0
            while waited < self.interval and not self.stopped.is_set():
                await asyncio.sleep(0.1)  # short steps, so stop() is quick in thread mode
                waited += 0.1
            if self.stopped.is_set():
                return
            try:
                await asyncio.to_thread(self.poll)
            except Exception:  # the watcher must outlive any one bad reload
                logger.exception("configuration reload failed; the previous one stays in use")


def _watched(config: GatewayConfig) -> tuple[str, ...]:
    return (*config.includes, *config.overlays)


def _settling(stamp: tuple[object, ...] | None) -> bool:
    """Whether the main file changed too recently to be read whole (a non-atomic rewrite is
    caught half way, or an editor truncates before it writes)."""
    if not stamp or not isinstance(stamp[0], tuple):
        return False  # a URL, or a missing file
    modified_ns = stamp[0][0]
    settle_ns = int(getattr(settings, "OGEM_CONFIG_SETTLE_MS", 1000)) * 1_000_000
    return isinstance(modified_ns, int) and time.time_ns() - modified_ns < settle_ns


def _shrink_refusal(*, before: GatewayConfig | None, after: GatewayConfig) -> str | None:
    """Why a reload that would drop all, or more than half, of the file's deployments is refused
    (an emptied or truncated file must not take every model away), unless the operator allows it
    with OGEM_CONFIG_ALLOW_SHRINK; None when it may go ahead. A restart always takes the file."""
    if before is None or getattr(settings, "OGEM_CONFIG_ALLOW_SHRINK", False):
        return None
    had, has = len(before.deployments), len(after.deployments)
    if had == 0 or (has > 0 and (has * 2 >= had or had - has < 2)):
        return None
    return (
        f"the new file has {has} of the {had} deployments in use; refused so that an emptied or "
        "half-written file does not take the models away (set OGEM_CONFIG_ALLOW_SHRINK=true, or "
        "restart, to apply it)"
    )


def _install(config: GatewayConfig, *, install: Install | None) -> None:
    global _current
    with _state_lock:
        _current = config
    if install is not None:
        install(list(config.deployments), config.source or "built-in")


def config_deployments(
    *, builtin: Sequence[Deployment] = (), install: Install | None = None
) -> list[Deployment]:
    """The deployments to start with: OGEM_CONFIG's (or `builtin` when it is unset) plus the
    database's. Starts the hot-reload watcher of this process unless OGEM_CONFIG_WATCH is false;
    it hands every reloaded configuration's deployments to `install`.

    A configuration with errors is logged (every problem, with its location) and contributes no
    deployments; fixing the file is then picked up by the watcher.
    """
    global _current
    watcher = ConfigWatcher(
        source=settings.OGEM_CONFIG,
        builtin=tuple(builtin),
        install=install,
        token=settings.OGEM_CONFIG_TOKEN,
        environment=settings.OGEM_ENV,
        interval=_interval(settings.OGEM_CONFIG),
        quiet=problems_reported(),
    )
    config = run_sync(lambda: watcher.build(force=True)) or GatewayConfig(source=watcher.source)
    with _state_lock:
        _current = config
    if getattr(settings, "OGEM_CONFIG_WATCH", True):
        config_watch_start(watcher)
    return list(config.deployments)


def _interval(source: str) -> float:
    if source and source_is_url(source):
        return float(getattr(settings, "OGEM_CONFIG_URL_POLL_SECONDS", 60.0))
    return float(getattr(settings, "OGEM_CONFIG_POLL_SECONDS", 2.0))


def config_watch_start(watcher: ConfigWatcher) -> ConfigWatcher:
    """Run `watcher` in this thread's event loop if there is one, else in a daemon thread.

    One watcher per process: a running one (from before a fork it is not) is stopped first.
    """
    global _watcher
    with _state_lock:
        previous, _watcher = _watcher, watcher
    if previous is not None and previous.pid == os.getpid():
        previous.stop()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        watcher.thread = threading.Thread(
            target=asyncio.run, args=(watcher.run(),), name="ogem-config-watch", daemon=True
        )
        watcher.thread.start()
    else:
        watcher.task = loop.create_task(watcher.run(), name="ogem-config-watch")
    return watcher


def config_watch_stop() -> None:
    global _watcher
    with _state_lock:
        watcher, _watcher = _watcher, None
    if watcher is not None:
        watcher.stop()

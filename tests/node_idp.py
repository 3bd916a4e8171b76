"""oidc-provider on Node (tests/idp/server.mjs), a real OpenID Connect provider for tests."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live import free_port

IDP_DIR = Path(__file__).resolve().parent / "idp"


def _npm_ci() -> None:
    # Parallel test workers install once: the others wait on the lock, then find the package.
    with open(IDP_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            return
        npm = shutil.which("npm")
        assert npm, "npm (Node 20) is needed to run the local OpenID Connect provider"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True, timeout=600)


@contextmanager
def node_idp_running(env: dict[str, str]) -> Iterator[str]:
    """Run server.mjs on a free port with `env` (its IDP_* variables); yields the issuer."""
    _npm_ci()
    node = shutil.which("node")
    assert node, "node is needed to run the local OpenID Connect provider"
    port = free_port()
    process = subprocess.Popen(
        [node, "server.mjs"],
        cwd=IDP_DIR,
        env={**os.environ, **env, "IDP_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready"), f"the local IdP did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)

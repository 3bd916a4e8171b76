"""The TypeScript SDK (sdk/typescript, npm package `@ogem/sdk`): built with tsc, imported as ESM
and as CommonJS, its operations in step with the Python SDK's, and its Node tests (Node's own test
runner) against a live Ogem that this module starts."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ogem_sdk import OPERATIONS

from tests.live import LiveServer, usage_record_now

pytestmark = pytest.mark.live

PACKAGE = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} (Node 18 or later) is needed to build and test the TypeScript SDK"
    return found


@pytest.fixture(scope="module")
def built() -> Path:
    """The package installed from its lock file and built (ESM, CJS and types) by tsc."""
    npm = _tool("npm")
    # Parallel test workers build once at a time: tsc writing dist/ twice at once would mix files.
    with open(PACKAGE / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PACKAGE / "node_modules" / "typescript").is_dir():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True, timeout=600
            )
        if not _dist_fresh():
            subprocess.run([npm, "run", "--silent", "build"], cwd=PACKAGE, check=True, timeout=600)
    return PACKAGE


def _dist_fresh() -> bool:
    """Built after every source: another worker may be running tests on it, leave it be."""
    builds = [PACKAGE / "dist" / build / "index.js" for build in ("esm", "cjs")]
    if not all(path.is_file() for path in builds):
        return False
    sources = [*(PACKAGE / "src").glob("*.ts"), *PACKAGE.glob("*.json"), *PACKAGE.glob("scripts/*")]
    return min(path.stat().st_mtime for path in builds) > max(
        path.stat().st_mtime for path in sources
    )


def _node(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("node"), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _node_tests(*files: str, env: dict[str, str] | None = None) -> None:
    ran = _node("--test", *(f"test/{name}" for name in files), cwd=PACKAGE, env=env)
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    assert "# fail 0" in ran.stdout and "# skipped 0" in ran.stdout, ran.stdout[-6000:]


@pytest.fixture
def consumer(built: Path, tmp_path: Path) -> Iterator[Path]:
    """A project of its own that depends on the package (node_modules/@ogem/sdk → the tree)."""
    scope = tmp_path / "node_modules" / "@ogem"
    scope.mkdir(parents=True)
    (scope / "sdk").symlink_to(built, target_is_directory=True)
    (tmp_path / "package.json").write_text('{"name": "consumer", "private": true}')
    yield tmp_path


def test_the_typescript_sdk_calls_the_operations_of_the_python_sdk(consumer: Path) -> None:
    listed = _node(
        "-e", "console.log(JSON.stringify(require('@ogem/sdk').OPERATIONS))", cwd=consumer
    )
    assert listed.returncode == 0, listed.stderr
    operations = [tuple(operation) for operation in json.loads(listed.stdout)]
    assert len(operations) == len(set(operations)), "an operation listed twice"
    assert sorted(set(operations) - OPERATIONS) == [], "operations the Python SDK lacks"
    assert sorted(OPERATIONS - set(operations)) == [], "operations the TypeScript SDK lacks"


def test_the_esm_and_the_commonjs_builds_import_with_their_types(consumer: Path) -> None:
    probe = (
        "const ogem = new sdk.Ogem({ baseURL: 'http://127.0.0.1:1', apiKey: 'k' });"
        "const error = new sdk.OgemAPIError("
        "{ status: 404, body: { detail: 'Gone.' }, requestId: null });"
        "console.log(JSON.stringify([typeof ogem.keys.rotate, typeof ogem.spend,"
        " error instanceof sdk.OgemError, error.message, sdk.OPERATIONS.length]));"
    )
    required = _node(
        "-e",
        f"const sdk = require('@ogem/sdk'); {probe} console.log(require.resolve('@ogem/sdk'))",
        cwd=consumer,
    )
    imported = _node(
        "--input-type=module",
        "-e",
        f"import * as sdk from '@ogem/sdk'; {probe} console.log(import.meta.resolve('@ogem/sdk'))",
        cwd=consumer,
    )
    expected = ["function", "function", True, "Gone.", len(OPERATIONS)]
    for ran, build in ((required, "dist/cjs/index.js"), (imported, "dist/esm/index.js")):
        assert ran.returncode == 0, ran.stderr
        answer, resolved = ran.stdout.splitlines()
        assert json.loads(answer) == expected
        assert resolved.endswith(build)

    # A TypeScript project finds the types of each build through `exports`, and they are checked.
    use = (
        "const ogem = new Ogem({ apiKey: 'k' });\n"
        "export const spent: Promise<JsonObject> = ogem.spend({ groupBy: 'team', since: '30d' });\n"
        "export const rotated = ogem.keys.rotate(1, { gracePeriodSeconds: 60 });\n"
    )
    (consumer / "esm.mts").write_text(
        f"import {{ Ogem, type JsonObject }} from '@ogem/sdk';\n{use}"
    )
    (consumer / "cjs.cts").write_text(
        f"import {{ Ogem, type JsonObject }} from '@ogem/sdk';\n{use}"
    )
    (consumer / "wrong.mts").write_text(
        "import { Ogem } from '@ogem/sdk';\n"
        "new Ogem({ apiKey: 'k' }).keys.rotate(1, { grace_period_seconds: 60 });\n"
    )
    tsc = [
        _tool("node"),
        str(PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"),
        "--noEmit",
        "--strict",
        "--module",
        "nodenext",
        "--typeRoots",
        str(PACKAGE / "node_modules" / "@types"),
    ]
    checked = subprocess.run(
        [*tsc, "esm.mts", "cjs.cts"], cwd=consumer, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    refused = subprocess.run(
        [*tsc, "wrong.mts"], cwd=consumer, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode != 0 and "grace_period_seconds" in refused.stdout


def test_retries_errors_and_helpers_under_nodes_test_runner(built: Path) -> None:
    _node_tests("retries.test.mjs")


def test_organization_to_revoked_key_under_nodes_test_runner(
    built: Path, live_ogem: LiveServer, master_key: str, tmp_path: Path
) -> None:
    env = {
        "OGEM_BASE_URL": live_ogem.url,
        "OGEM_API_KEY": master_key,
        "OGEM_TEST_STATE": str(tmp_path / "state.json"),
    }
    _node_tests("live-usage.test.mjs", "live-pages.test.mjs", env=env)
    _usage_recorded(key_id=json.loads((tmp_path / "state.json").read_text())["key"])
    _node_tests("live-spend.test.mjs", env=env)


def _usage_recorded(*, key_id: int) -> None:
    """Record usage as the worker would, until the key's request is in (the server may settle it
    a moment after the client has its answer)."""
    from billing.models import RequestLog

    deadline = time.monotonic() + 15
    while True:
        usage_record_now()
        if RequestLog.objects.filter(key_id=key_id).exists() or time.monotonic() > deadline:
            return
        time.sleep(0.1)

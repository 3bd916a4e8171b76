from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.files.conftest import files_dir  # noqa: F401  (every test stores files apart)
from tests.live import LiveServer, free_port, wait_for


@pytest.fixture
def key_sdk(live_ogem: LiveServer, make_key: Callable[..., str]) -> Callable[..., openai.OpenAI]:
    """The SDK with a new virtual key (options as `make_key` takes them)."""

    def make(**options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**options), max_retries=0
        )

    return make


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Chroma's real server from its pip package (`chroma run`), on a fresh directory."""
    # The command beside this Python (the venv's), else one on PATH.
    beside = Path(sys.executable).parent / "chroma"
    chroma = str(beside) if beside.exists() else shutil.which("chroma") or str(beside)
    if not Path(chroma).exists():
        pytest.fail("the `chroma` command is missing: pip install 'chromadb' (the dev extra)")
    path = tmp_path_factory.mktemp("chroma")
    # A free port per test process: with a fixed one, a second xdist worker's server failed to
    # bind, its heartbeat was answered by the first's, and its tests lost their server when the
    # first worker's session ended.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError("the Chroma server did not start")
        try:
            return httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, what="the Chroma server's start", every=0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(params=["builtin", "chroma"])
def backend(request: pytest.FixtureRequest, settings) -> str:  # type: ignore[no-untyped-def]
    """Each test with it runs on both backends (new stores take the setting)."""
    settings.OGEM_VECTOR_STORES_BACKEND = request.param
    if request.param == "chroma":
        settings.OGEM_VECTOR_STORES_CHROMA_URL = request.getfixturevalue("chroma_server")
    return request.param

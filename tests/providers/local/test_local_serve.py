"""`local-embed` in the embedded default as `make run` serves it: a real `manage.py serve` on a
fresh SQLite database, no Redis, no configuration, no network."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.live import free_port
from tests.site.serve_processes import manage, serve_env, wait_ready


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    env = serve_env(tmp_path, OGEM_MASTER_KEY="sk-master-" + "e" * 30)
    migrate = manage("migrate", "--noinput", env=env)
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    try:
        wait_ready(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_make_run_serves_local_embed_with_nothing_configured(serving) -> None:
    url, process = serving
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-master-" + "e" * 30, max_retries=0)
    assert "local-embed" in [model.id for model in client.models.list()]
    # The SDK's default encoding (base64) and an explicit float, from the server's worker.
    texts = ["What is the capital of France?", "Tell me France's capital city"]
    decoded = client.embeddings.create(model="local-embed", input=texts)
    floats = client.embeddings.create(model="local-embed", input=texts, encoding_format="float")
    assert [item.embedding for item in decoded.data] == [item.embedding for item in floats.data]
    first, second = (item.embedding for item in floats.data)
    assert sum(a * b for a, b in zip(first, second, strict=True)) == pytest.approx(0.843, abs=0.01)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert "Traceback" not in output

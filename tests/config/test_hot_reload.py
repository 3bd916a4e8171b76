"""Hot reload under a live server: a changed file is installed within seconds, a broken one is
not, and a stream started before the change completes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from gateway import registry as deployment_registry
from gateway.config import config_current, config_watch_stop
from gateway.registry import registry_install, registry_load_initial

pytestmark = pytest.mark.live

V1 = """
models:
  - name: slow
    provider: mock
    model: slow
    params: {chunks: 8, chunk_delay_ms: 250}
  - name: alpha
    provider: mock
    model: alpha
"""
V2 = """
models:
  - name: alpha
    provider: mock
    model: alpha
  - name: beta
    provider: mock
    model: beta
"""


@pytest.fixture
def environment(settings) -> str:
    """OGEM_ENV for the test (parametrize it indirectly); none by default."""
    return ""


@pytest.fixture
def watched_config(settings, tmp_path: Path, environment: str) -> Iterator[Path]:
    """OGEM_CONFIG pointing at a file, loaded and watched (polled every 0.2 s) for one test."""
    settings.OGEM_ENV = environment
    path = tmp_path / "ogem.yaml"
    path.write_text(V1)
    settings.OGEM_CONFIG = str(path)
    settings.OGEM_CONFIG_WATCH = True
    settings.OGEM_CONFIG_POLL_SECONDS = 0.2
    previous = deployment_registry._current
    registry_install(registry_load_initial(), source="test")
    yield path
    config_watch_stop()
    deployment_registry._current = previous


def _models(client: openai.OpenAI) -> set[str]:
    return {model.id for model in client.models.list()}


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_reload_while_a_stream_is_in_flight(live_ogem, master_key, watched_config, caplog) -> None:
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    assert _models(client) == {"slow", "alpha"}

    pieces: list[str] = []
    finish: list[str | None] = []
    first_chunk = threading.Event()
    failures: list[BaseException] = []
    last_chunk_at: list[float] = []

    def consume() -> None:
        try:
            stream = client.chat.completions.create(
                model="slow", messages=[{"role": "user", "content": "hello there"}], stream=True
            )
            for chunk in stream:
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
                    finish.append(chunk.choices[0].finish_reason)
                last_chunk_at.append(time.monotonic())
                first_chunk.set()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            first_chunk.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert first_chunk.wait(10)
    started = time.monotonic()
    watched_config.write_text(V2)  # drops "slow" while its stream is running

    assert _wait_for(lambda: _models(client) == {"alpha", "beta"})
    reloaded_at = time.monotonic()
    assert reloaded_at - started < 5
    reply = client.chat.completions.create(
        model="beta", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])

    consumer.join(15)
    assert failures == []
    assert "".join(pieces).strip() == "Mock reply to: hello there"
    assert finish[-1] == "stop"
    assert last_chunk_at[-1] > reloaded_at  # the stream outlived the swap

    # A broken file is rejected: the last good configuration keeps serving.
    with caplog.at_level(logging.ERROR, logger="ogem.config"):
        watched_config.write_text("models:\n  - {name: gamma, provider: mock}\n")
        assert _wait_for(
            lambda: any("configuration rejected" in r.getMessage() for r in caplog.records)
        )
    assert _models(client) == {"alpha", "beta"}
    messages = [r.getMessage() for r in caplog.records if r.name == "ogem.config"]
    assert messages == [
        f"configuration reloaded from {watched_config}: 2 deployments",
        f"configuration rejected: {watched_config}:2:5: error: models[0]: "
        'missing required key "model"',
    ]
    assert config_current().digest != ""
    assert [d.model_name for d in config_current().deployments] == ["alpha", "beta"]


def test_database_rows_are_picked_up_without_a_restart(live_ogem, master_key, watched_config):
    from tests.factories import ModelDeploymentFactory

    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    row = ModelDeploymentFactory(model_name="from-admin", provider="mock")
    assert _wait_for(lambda: "from-admin" in _models(client))
    row.enabled = False
    row.save()
    assert _wait_for(lambda: "from-admin" not in _models(client))
    assert _models(client) == {"slow", "alpha"}


def test_a_broken_file_does_not_hold_back_database_changes(  # type: ignore[no-untyped-def]
    live_ogem, master_key, watched_config, caplog
):
    from tests.factories import ModelDeploymentFactory

    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    with caplog.at_level(logging.ERROR, logger="ogem.config"):
        watched_config.write_text("models: [")
        assert _wait_for(
            lambda: any("configuration rejected" in r.getMessage() for r in caplog.records)
        )
    ModelDeploymentFactory(model_name="from-admin", provider="mock")
    assert _wait_for(lambda: "from-admin" in _models(client))
    assert _models(client) == {"slow", "alpha", "from-admin"}


def test_edits_to_an_included_file_are_reloaded(live_ogem, master_key, watched_config):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    included = watched_config.parent / "extra.yaml"
    included.write_text("model_list:\n  - {model_name: inc-a, litellm_params: {model: mock/a}}\n")
    watched_config.write_text(
        "include: [extra.yaml]\n"
        "model_list:\n  - {model_name: main, litellm_params: {model: mock/main}}\n"
    )
    assert _wait_for(lambda: _models(client) == {"main", "inc-a"})
    included.write_text("model_list:\n  - {model_name: inc-b, litellm_params: {model: mock/b}}\n")
    assert _wait_for(lambda: _models(client) == {"main", "inc-b"})


FOUR = "models:\n" + "".join(f"  - {{name: m{i}, provider: mock, model: m{i}}}\n" for i in range(4))


def test_an_emptied_or_truncated_file_keeps_the_models(  # type: ignore[no-untyped-def]
    live_ogem, master_key, watched_config, caplog, settings
):
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    watched_config.write_text(FOUR)
    assert _wait_for(lambda: _models(client) == {"m0", "m1", "m2", "m3"})
    for text in ("", "models:\n  - {name: m0, provider: mock, model: m0}\n"):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="ogem.config"):
            watched_config.write_text(text)
            assert _wait_for(
                lambda: any("deployments in use" in r.getMessage() for r in caplog.records)
            ), text
        assert _models(client) == {"m0", "m1", "m2", "m3"}
    # Dropping one of four is an edit, not an accident; with the setting, anything goes.
    watched_config.write_text(FOUR.replace("  - {name: m3, provider: mock, model: m3}\n", ""))
    assert _wait_for(lambda: _models(client) == {"m0", "m1", "m2"})
    settings.OGEM_CONFIG_ALLOW_SHRINK = True
    watched_config.write_text("models:\n  - {name: m0, provider: mock, model: m0}\n")
    assert _wait_for(lambda: _models(client) == {"m0"})


def test_a_file_is_read_once_it_stops_changing(live_ogem, master_key, watched_config, settings):  # type: ignore[no-untyped-def]
    settings.OGEM_CONFIG_SETTLE_MS = 2500
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    watched_config.write_text(V2)
    written = time.monotonic()
    time.sleep(1.0)  # five polls: without the settle time the new file would be in use
    assert _models(client) == {"slow", "alpha"}
    assert _wait_for(lambda: _models(client) == {"alpha", "beta"})
    assert time.monotonic() - written >= 2.4


@pytest.mark.parametrize("environment", ["production"])
def test_edits_to_the_environment_overlay_are_reloaded(  # type: ignore[no-untyped-def]
    live_ogem, master_key, watched_config, environment
):
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    assert _models(client) == {"slow", "alpha"}  # no overlay yet: the base
    overlay = watched_config.parent / "ogem.production.yaml"
    # Created after the start: the watcher looks for it all along.
    overlay.write_text("models:\n  - {name: prod-a, provider: mock, model: a}\n")
    assert _wait_for(lambda: _models(client) == {"prod-a"})
    overlay.write_text("models:\n  - {name: prod-b, provider: mock, model: b}\n")
    assert _wait_for(lambda: _models(client) == {"prod-b"})
    overlay.unlink()
    assert _wait_for(lambda: _models(client) == {"slow", "alpha"})
    # The base file's environments section is the other overlay.
    watched_config.write_text(
        V1 + "environments:\n  production:\n    models: [{name: sec, provider: mock, model: s}]\n"
    )
    assert _wait_for(lambda: _models(client) == {"sec"})

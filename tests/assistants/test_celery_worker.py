"""Runs on a real Celery worker (`celery -A ogem_site worker`, broker: the run's Redis), as with
`REDIS_URL` set: a created run answers `queued` and the worker takes it to `completed`; a run
that needs tool outputs goes back to the worker once they are submitted."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.governance.cluster import Process, celery_worker_start, cluster_env
from tests.live import LiveServer

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="a real Celery worker needs the run's Redis (broker) and PostgreSQL",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture
def worker(settings: Any, tmp_path: Path) -> Iterator[Process]:
    from ogem_site.celery import app

    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.control.purge()
    stream = f"usage-assistants-{uuid.uuid4().hex[:8]}"
    env = cluster_env(tmp=tmp_path, emulator_url="http://127.0.0.1:9", usage_stream=stream)
    # The worker serves the same model as the live server: the mock's, from its own file.
    config = tmp_path / "assistants.yaml"
    config.write_text(
        "model_list:\n  - model_name: mock-chat\n    litellm_params:\n      model: mock/mock-chat\n"
    )
    env["OGEM_CONFIG"] = str(config)
    process = celery_worker_start(env, name="assistants", queue="celery")
    yield process
    process.kill()
    app.conf.task_always_eager = eager
    app.control.purge()


def _until(client: openai.OpenAI, thread_id: str, run_id: str, done: Callable[[str], bool]) -> Any:
    deadline = time.monotonic() + 60
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if done(run.status):
            return run
        assert time.monotonic() < deadline, f"run stayed {run.status}"
        time.sleep(0.1)


def test_a_worker_advances_runs(
    worker: Process, live_ogem: LiveServer, make_key: Callable[..., str]
) -> None:
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    assistant = client.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Bern?"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "queued"  # answered before any worker took it
    waiting = _until(
        client, thread.id, run.id, lambda status: status not in ("queued", "in_progress")
    )
    assert waiting.status == "requires_action", waiting.last_error
    call = waiting.required_action.submit_tool_outputs.tool_calls[0]
    submitted = client.beta.threads.runs.submit_tool_outputs(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "9C"}]
    )
    assert submitted.status == "queued"
    done = _until(client, thread.id, run.id, lambda status: status == "completed")
    assert done.usage.total_tokens > waiting.usage.total_tokens
    answer = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert answer.content[0].text.value == "Mock reply to: Bern?"
    assert worker.alive()

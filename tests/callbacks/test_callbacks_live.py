"""Callbacks end to end (docs/callbacks.md): a LiteLLM config.yaml naming langfuse, langsmith,
s3 and a generic_api webhook, requests through the official openai SDK to the live Ogem, and each
platform's emulator (tests/callbacks/emulators.py; moto's S3 in server mode) receiving the events
with tokens and cost; a team's own Langfuse project; a platform that hangs costs /v1 nothing and
its drops are counted in /metrics."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import boto3
import httpx
import openai
import orjson
import pytest
from moto.server import ThreadedMotoServer

from gateway.callbacks.dispatcher import callbacks_flush
from gateway.callbacks.settings import CallbackSettings
from gateway.config import watch as config_watch
from gateway.config.loader import config_parse
from gateway.config.problems import Problems
from gateway.registry import registry_get
from tests.callbacks.emulators import LangfuseEmulator, LangSmithEmulator, WebhookEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "ogem-callbacks"
HOOK_SECRET = "whsec-test"
LANGSMITH_KEY = "ls-test-key"
PROJECTS = {"pk-main": ("sk-main", "main"), "pk-team": ("sk-team", "team")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def platforms() -> Iterator[dict[str, Any]]:
    langfuse = LangfuseEmulator(PROJECTS).start()
    langsmith = LangSmithEmulator(LANGSMITH_KEY).start()
    webhook = WebhookEmulator(HOOK_SECRET).start()
    port = _free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3_url = f"http://127.0.0.1:{port}"
    _s3(s3_url).create_bucket(Bucket=BUCKET)
    yield {"langfuse": langfuse, "langsmith": langsmith, "webhook": webhook, "s3": s3_url}
    moto.stop()


@pytest.fixture
def emulators(platforms: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name in ("langfuse", "langsmith", "webhook"):
        platforms[name].reset()
    yield platforms
    for name in ("langfuse", "langsmith", "webhook"):
        platforms[name].reset()


def _s3(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def callbacks_from(
    monkeypatch: pytest.MonkeyPatch, emulators: dict[str, Any]
) -> Iterator[Callable[[str], CallbackSettings]]:
    """Parse a configuration file's text (either format) and serve its callbacks."""
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-main")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-main")
    monkeypatch.setenv("LANGFUSE_HOST", emulators["langfuse"].url)
    monkeypatch.setenv("LANGSMITH_API_KEY", LANGSMITH_KEY)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", emulators["langsmith"].url)
    monkeypatch.setenv("LANGSMITH_PROJECT", "ogem-test")
    monkeypatch.setenv("TEST_S3_URL", emulators["s3"])
    monkeypatch.setenv("TEST_HOOK_SECRET", HOOK_SECRET)

    def install(text: str) -> CallbackSettings:
        problems = Problems()
        parsed = config_parse(text, source="callbacks.yaml", problems=problems)
        assert parsed is not None, problems
        assert parsed.callbacks is not None
        config_watch._current = replace(previous, callbacks=parsed.callbacks)
        return parsed.callbacks

    yield install
    callbacks_flush(timeout=5)
    config_watch._current = previous


LITELLM_CONFIG = """
model_list:
  - model_name: unused
    litellm_params: {{model: openai/gpt-4o-mini, api_key: os.environ/TEST_HOOK_SECRET}}
litellm_settings:
  success_callback: [langfuse, langsmith, s3]
  failure_callback: [langfuse, langsmith]
  callbacks: [hook, otel]
  s3_callback_params:
    s3_bucket_name: {bucket}
    s3_region_name: us-east-1
    s3_endpoint_url: os.environ/TEST_S3_URL
    s3_aws_access_key_id: testing
    s3_aws_secret_access_key: testing
    s3_path: {prefix}
callback_settings:
  hook:
    callback_type: generic_api
    endpoint: {hook}/hook
    secret: os.environ/TEST_HOOK_SECRET
"""


def _s3_events(url: str, prefix: str) -> list[dict[str, Any]]:
    client = _s3(url)
    found = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    events = []
    for item in found.get("Contents") or ():
        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        events.extend(orjson.loads(line) for line in body.splitlines() if line)
    return events


def test_each_platform_gets_the_events_with_tokens_and_cost(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, sdk
) -> None:
    prefix = f"logs-{time.monotonic_ns()}"
    settings = callbacks_from(
        LITELLM_CONFIG.format(bucket=BUCKET, prefix=prefix, hook=emulators["webhook"].url)
    )
    assert settings.tracing == ("otel",)
    emulated_model()
    plain = sdk.chat.completions.with_raw_response.create(
        model="emulated",
        messages=[{"role": "user", "content": "hello callbacks"}],
        metadata={"session_id": "s-1"},
    )
    answer = plain.parse()
    streamed = sdk.chat.completions.with_raw_response.create(
        model="emulated",
        messages=[{"role": "user", "content": "stream to callbacks"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed.parse())
    stream_usage = next(c.usage for c in chunks if c.usage is not None)
    stream_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "fail"}]
        )
    assert callbacks_flush(timeout=10)

    plain_id = plain.headers["x-request-id"]
    stream_id = streamed.headers["x-request-id"]
    # Langfuse: a trace and a generation per request, in the main project.
    langfuse = emulators["langfuse"]
    generations = {g["metadata"]["request_id"]: g for g in langfuse.generations("main")}
    assert set(generations) >= {plain_id, stream_id}
    first = generations[plain_id]
    assert first["usage"]["input"] == answer.usage.prompt_tokens > 0
    assert first["usage"]["output"] == answer.usage.completion_tokens > 0
    assert first["costDetails"]["total"] > 0
    assert first["input"] == [{"role": "user", "content": "hello callbacks"}]
    assert first["output"][0]["message"]["content"] == answer.choices[0].message.content
    assert first["level"] == "DEFAULT"
    traces = {t["id"]: t for t in emulators["langfuse"].traces("main")}
    assert traces[first["traceId"]]["sessionId"] == "s-1"
    second = generations[stream_id]
    assert second["usage"]["input"] == stream_usage.prompt_tokens
    assert second["usage"]["output"] == stream_usage.completion_tokens
    assert second["output"][0]["message"]["content"] == stream_text
    assert "completionStartTime" in second
    failed = [g for g in generations.values() if g["level"] == "ERROR"]
    assert len(failed) == 1 and failed[0]["statusMessage"].startswith("404")
    assert emulators["langfuse"].generations("team") == []

    # LangSmith: one llm run per request in the project, usage and cost in usage_metadata.
    runs = {r["extra"]["metadata"]["request_id"]: r for r in emulators["langsmith"].runs}
    assert len(runs) == 3
    run = runs[plain_id]
    assert run["session_name"] == "ogem-test"
    usage = run["outputs"]["usage_metadata"]
    assert usage["input_tokens"] == answer.usage.prompt_tokens
    assert usage["output_tokens"] == answer.usage.completion_tokens
    assert usage["total_cost"] == first["costDetails"]["total"]
    assert sum(1 for r in runs.values() if "error" in r) == 1

    # The webhook (`callbacks`: success and failure), signed.
    hooked = {e["request_id"]: e for e in emulators["webhook"].events}
    assert len(hooked) == 3
    assert hooked[plain_id]["kind"] == "success"
    assert hooked[plain_id]["prompt_tokens"] == answer.usage.prompt_tokens
    assert Decimal(hooked[plain_id]["cost"]) == Decimal(str(first["costDetails"]["total"]))
    assert hooked[stream_id]["stream"] is True
    failure = next(e for e in hooked.values() if e["kind"] == "failure")
    assert failure["error"]["status"] == 404 and failure["model"] == "no-such-model"
    signatures = [r.headers["x-ogem-signature"] for r in emulators["webhook"].requests]
    assert signatures and all(s.startswith("sha256=") for s in signatures)

    # S3: successes only, as JSON Lines under the prefix.
    logged = {e["request_id"]: e for e in _s3_events(emulators["s3"], prefix)}
    assert set(logged) == {plain_id, stream_id}
    assert logged[stream_id]["completion_tokens"] == stream_usage.completion_tokens


def test_turn_off_message_logging_sends_no_content(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, sdk
) -> None:
    callbacks_from(
        "model_list: []\nlitellm_settings:\n  success_callback: [langfuse]\n"
        "  turn_off_message_logging: true\n"
    )
    emulated_model()
    sdk.chat.completions.create(model="emulated", messages=[{"role": "user", "content": "secret"}])
    assert callbacks_flush(timeout=10)
    (generation,) = emulators["langfuse"].generations("main")
    assert "input" not in generation and "output" not in generation
    assert generation["usage"]["input"] > 0


def test_a_team_logs_to_its_own_langfuse_project(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, make_key, live_ogem, settings, monkeypatch
) -> None:
    from tests.factories import TeamFactory

    settings.OGEM_CALLBACKS_ALLOW_PRIVATE_URLS = True  # the emulator listens on 127.0.0.1
    monkeypatch.setenv("TEAM_LANGFUSE_SECRET", "sk-team")
    callbacks_from("model_list: []\nlitellm_settings:\n  success_callback: [langfuse]\n")
    emulated_model()
    team = TeamFactory(
        metadata={
            "logging": [
                {
                    "callback_name": "langfuse",
                    "callback_type": "success",
                    "callback_vars": {
                        "langfuse_public_key": "pk-team",
                        "langfuse_secret_key": "os.environ/TEAM_LANGFUSE_SECRET",
                        "langfuse_host": emulators["langfuse"].url,
                    },
                }
            ]
        }
    )
    client = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=make_key(team=team), max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="emulated", messages=[{"role": "user", "content": "team request"}]
    )
    assert callbacks_flush(timeout=10)
    (generation,) = emulators["langfuse"].generations("team")
    assert generation["metadata"]["request_id"] == raw.headers["x-request-id"]
    assert generation["metadata"]["team_id"] == team.pk
    assert emulators["langfuse"].generations("main") == []


def test_a_teams_url_to_a_private_address_is_refused(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, make_key, live_ogem
) -> None:
    from tests.factories import TeamFactory

    callbacks_from("model_list: []\nlitellm_settings:\n  success_callback: [langsmith]\n")
    emulated_model()
    team = TeamFactory(
        metadata={
            "logging": [
                {
                    "callback_name": "langfuse",
                    "callback_vars": {
                        "langfuse_public_key": "pk-team",
                        "langfuse_secret_key": "sk-team",
                        # A URL of its own: not the delivery the previous test allowed.
                        "langfuse_host": f"{emulators['langfuse'].url}/",
                    },
                }
            ]
        }
    )
    before = _metric(live_ogem, reason="refused_url", sink="langfuse")
    client = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=make_key(team=team), max_retries=0
    )
    client.chat.completions.create(model="emulated", messages=[{"role": "user", "content": "x"}])
    assert callbacks_flush(timeout=10)
    assert emulators["langfuse"].requests == []
    assert _metric(live_ogem, reason="refused_url", sink="langfuse") == before + 1
    assert len(emulators["langsmith"].runs) == 1  # the configuration's callbacks still deliver


def _metric(live: LiveServer, **labels: str) -> float:
    text = httpx.get(f"{live.url}/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("ogem_callback_events_dropped_total{") and all(
            f'{key}="{value}"' in line for key, value in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_hanging_platform_costs_v1_nothing_and_its_drops_are_counted(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, sdk, live_ogem
) -> None:
    hook = emulators["webhook"]
    # Ogem's own format; its endpoint differs from the other tests' (a delivery of its own).
    callbacks_from(
        f"""
models: []
callbacks:
  success: [down]
  queue_size: 4
  flush_interval: 0.05
  max_retries: 0
  sinks:
    down: {{type: webhook, generic_logger_endpoint: "{hook.url}/hook?down=1"}}
"""
    )
    emulated_model()
    hook.hang = True
    before = _metric(live_ogem, sink="down", reason="queue_full")
    started = time.monotonic()
    for index in range(30):
        began = time.monotonic()
        sdk.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": f"request {index}"}]
        )
        assert time.monotonic() - began < 2.0  # never waits on the platform
    elapsed = time.monotonic() - started
    assert elapsed < 15.0
    deadline = time.monotonic() + 5
    while _metric(live_ogem, sink="down", reason="queue_full") - before < 1:
        assert time.monotonic() < deadline, "no drop was counted"
        time.sleep(0.05)
    assert hook.events == []
    hook.hang = False


def test_a_rate_limited_request_is_a_failure_event(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, make_key, live_ogem
) -> None:
    hook = emulators["webhook"]
    callbacks_from(
        "model_list: []\nlitellm_settings:\n  failure_callback: [hook]\ncallback_settings:\n"
        f"  hook: {{callback_type: generic_api, endpoint: '{hook.url}/hook', "
        "secret: os.environ/TEST_HOOK_SECRET}\n"
    )
    emulated_model()
    client = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=make_key(rpm_limit=1), max_retries=0
    )
    client.chat.completions.create(model="emulated", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "b"}]
        )
    assert callbacks_flush(timeout=10)
    (event,) = hook.events  # failures only: the first request succeeded
    assert event["kind"] == "failure"
    assert event["error"]["status"] == 429 and event["error"]["type"] == "rate_limit_error"
    assert event["key_id"] is not None and event["cost"] == "0"
    assert event["input"] == [{"role": "user", "content": "b"}]


def test_content_is_logged_after_the_guardrails_masking(  # type: ignore[no-untyped-def]
    callbacks_from, emulators, emulated_model, sdk
) -> None:
    from gateway.config.types import GuardrailSettings, GuardrailSpec

    hook = emulators["webhook"]
    callbacks_from(
        "model_list: []\nlitellm_settings:\n  success_callback: [hook]\ncallback_settings:\n"
        f"  hook: {{callback_type: generic_api, endpoint: '{hook.url}/hook', "
        "secret: os.environ/TEST_HOOK_SECRET}\n"
    )
    mask = GuardrailSpec(name="pii", kind="pii", action="mask", default_on=True)
    config_watch._current = replace(
        config_watch._current,
        guardrails=GuardrailSettings(guardrails={"pii": mask}, default_on=("pii",)),
    )
    emulated_model()
    prompt = "Write to jane.doe@example.com today."
    answer = sdk.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": prompt}]
    )
    assert "jane.doe@example.com" in answer.choices[0].message.content  # restored for the caller
    assert callbacks_flush(timeout=10)
    (event,) = hook.events
    assert event["input"] == [{"role": "user", "content": "Write to <EMAIL_ADDRESS_1> today."}]
    logged = event["output"][0]["message"]["content"]
    assert "jane.doe@example.com" not in logged and "<EMAIL_ADDRESS_1>" in logged

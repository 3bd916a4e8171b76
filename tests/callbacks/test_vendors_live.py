"""The vendor sinks end to end: a LiteLLM config.yaml naming Datadog LLM Observability, New
Relic, Arize, Phoenix, Weave, MLflow and Helicone, each vendor's keys in the environment as its
SDK names them, requests through the official openai SDK to the live Ogem, and each vendor's
emulator (tests/callbacks/vendor_emulators/) receiving the success with its tokens, cost and
content, and the failure with its error. Runs where the callbacks' dispatcher is installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import openai
import pytest

dispatcher = pytest.importorskip("gateway.callbacks.dispatcher")

from gateway.config import watch as config_watch  # noqa: E402
from gateway.config.loader import config_parse  # noqa: E402
from gateway.config.problems import Problems  # noqa: E402
from gateway.registry import registry_get  # noqa: E402
from tests.callbacks.vendor_emulators import (  # noqa: E402
    arize,
    datadog,
    helicone,
    mlflow,
    newrelic,
    phoenix,
    weave,
)
from tests.callbacks.vendor_emulators.ingest import IngestEmulator  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

VENDORS = "[datadog_llm_observability, newrelic, arize, arize_phoenix, weave, mlflow, helicone]"
CONFIG = f"""
model_list: []
litellm_settings:
  success_callback: {VENDORS}
  failure_callback: {VENDORS}
"""


@pytest.fixture(scope="module")
def _servers() -> dict[str, IngestEmulator]:
    return {
        "datadog": datadog.DatadogEmulator().start(),  # type: ignore[dict-item]
        "newrelic": newrelic.NewRelicEmulator().start(),  # type: ignore[dict-item]
        "arize": arize.ArizeEmulator().start(),  # type: ignore[dict-item]
        "phoenix": phoenix.PhoenixEmulator().start(),  # type: ignore[dict-item]
        "weave": weave.WeaveEmulator().start(),  # type: ignore[dict-item]
        "mlflow": mlflow.MlflowEmulator().start(),  # type: ignore[dict-item]
        "helicone": helicone.HeliconeEmulator().start(),  # type: ignore[dict-item]
    }


@pytest.fixture
def vendors(
    _servers: dict[str, IngestEmulator], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, IngestEmulator]]:
    for server in _servers.values():
        server.reset()
    environ = {
        "DD_API_KEY": datadog.API_KEY,
        "DD_BASE_URL": _servers["datadog"].url,
        "NEW_RELIC_LICENSE_KEY": newrelic.LICENSE_KEY,
        "NEW_RELIC_ACCOUNT_ID": newrelic.ACCOUNT_ID,
        "NEW_RELIC_EVENT_API_URL": _servers["newrelic"].url,
        "ARIZE_SPACE_ID": arize.SPACE_ID,
        "ARIZE_API_KEY": arize.API_KEY,
        "ARIZE_HTTP_ENDPOINT": f"{_servers['arize'].url}/v1/traces",
        "PHOENIX_COLLECTOR_ENDPOINT": _servers["phoenix"].url,
        "PHOENIX_API_KEY": phoenix.API_KEY,
        "WANDB_API_KEY": weave.API_KEY,
        "WANDB_PROJECT_ID": "acme/gateway",
        "WF_TRACE_SERVER_URL": _servers["weave"].url,
        "MLFLOW_TRACKING_URI": _servers["mlflow"].url,
        "MLFLOW_TRACKING_TOKEN": mlflow.TOKEN,
        "HELICONE_API_KEY": helicone.API_KEY,
        "HELICONE_WORKER_URL": _servers["helicone"].url,
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    yield _servers


@pytest.fixture
def callbacks_from(vendors: dict[str, IngestEmulator]) -> Iterator[Callable[[str], None]]:
    registry_get()
    previous = config_watch._current

    def install(text: str) -> None:
        problems = Problems()
        parsed = config_parse(text, source="callbacks.yaml", problems=problems)
        assert parsed is not None and parsed.callbacks is not None, problems
        config_watch._current = replace(previous, callbacks=parsed.callbacks)

    yield install
    dispatcher.callbacks_flush(timeout=5)
    config_watch._current = previous


def _by_request(records: list[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    return {key(record): record for record in records}


def test_every_vendor_gets_the_success_and_the_failure(  # type: ignore[no-untyped-def]
    callbacks_from, vendors, emulated_model, sdk
) -> None:
    callbacks_from(CONFIG)
    emulated_model()
    raw = sdk.chat.completions.with_raw_response.create(
        model="emulated",
        messages=[{"role": "user", "content": "hello vendors"}],
        metadata={"session_id": "s-9"},
    )
    answer = raw.parse()
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert dispatcher.callbacks_flush(timeout=10)
    request_id = raw.headers["x-request-id"]
    prompt, completion = answer.usage.prompt_tokens, answer.usage.completion_tokens
    assert prompt > 0 and completion > 0

    spans = _by_request(vendors["datadog"].records, lambda s: s["meta"]["metadata"]["request_id"])
    assert len(spans) == 2
    span = spans[request_id]
    assert span["metrics"]["input_tokens"] == prompt
    assert span["metrics"]["output_tokens"] == completion
    assert span["metrics"]["total_cost"] > 0
    assert span["session_id"] == "s-9"
    assert span["meta"]["input"]["messages"] == [{"role": "user", "content": "hello vendors"}]
    assert span["meta"]["output"]["messages"][0]["content"] == answer.choices[0].message.content
    failed = next(s for s in spans.values() if s["status"] == "error")
    assert failed["meta"]["model_name"] == "no-such-model"

    summaries = [e for e in vendors["newrelic"].records if e["eventType"].endswith("Summary")]
    by_id = _by_request(summaries, lambda e: e["request_id"])
    assert by_id[request_id]["response.usage.prompt_tokens"] == prompt
    assert by_id[request_id]["ogem.cost_usd"] == span["metrics"]["total_cost"]
    assert sum(e["error"] for e in summaries) == 1

    for name in ("arize", "phoenix", "mlflow"):
        otlp = _by_request(vendors[name].records, lambda s: s["attributes"]["ogem.request_id"])
        assert len(otlp) == 2, name
        attributes = otlp[request_id]["attributes"]
        assert attributes["llm.token_count.prompt"] == prompt, name
        assert attributes["llm.token_count.completion"] == completion, name
        assert attributes["llm.cost.total"] == span["metrics"]["total_cost"], name
        assert attributes["llm.input_messages.0.message.content"] == "hello vendors", name
        assert sum(s["status"] == 2 for s in otlp.values()) == 1, name

    calls = _by_request(
        vendors["weave"].records, lambda c: c["start"]["attributes"]["ogem"]["request_id"]
    )
    call = calls[request_id]
    (usage,) = call["end"]["summary"]["usage"].values()
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert call["start"]["inputs"]["messages"] == [{"role": "user", "content": "hello vendors"}]
    assert sum(c["end"]["exception"] is not None for c in calls.values()) == 1

    logs = _by_request(
        vendors["helicone"].records,
        lambda log: log["providerRequest"]["meta"]["Helicone-Property-Ogem-Request-Id"],
    )
    log = logs[request_id]
    assert log["providerResponse"]["json"]["usage"]["prompt_tokens"] == prompt
    assert log["providerRequest"]["meta"]["Helicone-Session-Id"] == "s-9"
    assert sum("error" in entry["providerResponse"]["json"] for entry in logs.values()) == 1


def test_a_team_logs_to_its_own_vendor_projects(  # type: ignore[no-untyped-def]
    callbacks_from, vendors, emulated_model, make_key, live_ogem, settings
) -> None:
    """A team's `logging` metadata names vendors with LiteLLM's lowercase callback_vars: its
    requests go to its own Weave project and Helicone key, not the operator's."""
    from tests.factories import TeamFactory

    settings.OGEM_CALLBACKS_ALLOW_PRIVATE_URLS = True  # the emulators listen on 127.0.0.1
    callbacks_from("model_list: []\nlitellm_settings:\n  success_callback: [weave]\n")
    emulated_model()
    team = TeamFactory(
        metadata={
            "logging": [
                {
                    "callback_name": "weave",
                    "callback_vars": {
                        "wandb_api_key": weave.API_KEY,
                        "wandb_project_id": "team-entity/team-project",
                        "wf_trace_server_url": vendors["weave"].url,
                    },
                },
                {
                    "callback_name": "helicone",
                    "callback_vars": {
                        "helicone_api_key": helicone.API_KEY,
                        "helicone_worker_url": vendors["helicone"].url,
                    },
                },
            ]
        }
    )
    client = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=make_key(team=team), max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model="emulated", messages=[{"role": "user", "content": "team request"}]
    )
    assert dispatcher.callbacks_flush(timeout=10)
    request_id = raw.headers["x-request-id"]
    (call,) = vendors["weave"].records
    assert call["start"]["project_id"] == "team-entity/team-project"
    assert call["start"]["attributes"]["ogem"]["request_id"] == request_id
    assert call["start"]["attributes"]["ogem"]["team_id"] == team.pk
    (log,) = vendors["helicone"].records
    assert log["providerRequest"]["meta"]["Helicone-Property-Ogem-Team-Id"] == str(team.pk)

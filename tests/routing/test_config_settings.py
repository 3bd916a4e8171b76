"""Settings of LiteLLM's config.yaml that change what a request does, through the live server:
drop_params, modify_params, max_parallel_requests (per deployment, and its general default),
global_max_parallel_requests, router_settings.stream_timeout and router_settings.retry_after."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from gateway import registry as deployment_registry
from gateway.capacity import capacity_reset
from gateway.config import watch as config_watch
from gateway.registry import registry_install, registry_load_initial
from tests.emulators.anthropic_api import API_KEY as ANTHROPIC_KEY
from tests.emulators.anthropic_api import anthropic_emulator_get
from tests.emulators.fixtures import UPSTREAM_KEY

pytestmark = pytest.mark.live

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def load_config(settings, tmp_path: Path) -> Iterator[Callable[[str], None]]:  # type: ignore[no-untyped-def]
    """Serve a LiteLLM config.yaml (as OGEM_CONFIG) for one test, then restore."""
    previous_registry, previous_config = deployment_registry._current, config_watch._current
    settings.OGEM_CONFIG_WATCH = False
    capacity_reset()

    def load(text: str) -> None:
        path = tmp_path / "config.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        settings.OGEM_CONFIG = str(path)
        registry_install(registry_load_initial(), source="test")

    yield load
    deployment_registry._current, config_watch._current = previous_registry, previous_config
    capacity_reset()


def _post(url: str, key: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"messages": HELLO, **body},
        timeout=30,
    )


def _together(url: str, key: str, count: int, **body: object) -> list[httpx.Response]:
    """`count` requests at once, by status: which of them took a slot first does not matter
    (on a busy machine a later one may), only how many did."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(_post, url, key, **body) for _ in range(count)]
        return sorted((future.result() for future in futures), key=lambda r: r.status_code)


# ---- drop_params -------------------------------------------------------------------------------

GROQ = """
model_list:
  - model_name: fast
    litellm_params:
      model: groq/llama-3.1-8b-instant
      api_base: {url}/openai/v1
      api_key: {key}
{settings}
"""


def test_drop_params_leaves_out_what_the_provider_refuses(
    openai_emulator, load_config, live_ogem, master_key
) -> None:
    openai_emulator.flavor = "groq"
    load_config(GROQ.format(url=openai_emulator.url, key=UPSTREAM_KEY, settings=""))
    refused = _post(live_ogem.url, master_key, model="fast", n=2)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "n"

    load_config(
        GROQ.format(
            url=openai_emulator.url,
            key=UPSTREAM_KEY,
            settings="litellm_settings:\n  drop_params: true",
        )
    )
    served = _post(live_ogem.url, master_key, model="fast", n=2, temperature=0.5)
    assert served.status_code == 200, served.text
    sent = openai_emulator.last.json
    assert "n" not in sent
    assert sent["temperature"] == 0.5


def test_drop_params_per_deployment(openai_emulator, load_config, live_ogem, master_key) -> None:
    openai_emulator.flavor = "groq"
    config = GROQ.format(url=openai_emulator.url, key=UPSTREAM_KEY, settings="")
    load_config(config.replace("api_key:", "drop_params: true\n      api_key:"))
    served = _post(live_ogem.url, master_key, model="fast", n=3)
    assert served.status_code == 200, served.text
    assert "n" not in openai_emulator.last.json


def test_drop_params_resends_without_what_the_upstream_refuses(
    openai_emulator, load_config, live_ogem, master_key
) -> None:
    # A generic OpenAI-compatible deployment forwards logprobs; this upstream answers 400 naming it.
    openai_emulator.flavor = "groq"
    config = GROQ.format(
        url=openai_emulator.url, key=UPSTREAM_KEY, settings="litellm_settings:\n  drop_params: true"
    )
    load_config(config.replace("groq/llama-3.1-8b-instant", "openai_compatible/llama"))
    served = _post(live_ogem.url, master_key, model="fast", logprobs=True, seed=7)
    assert served.status_code == 200, served.text
    refused, sent = (request.json for request in openai_emulator.requests)
    assert refused["logprobs"] is True
    assert "logprobs" not in sent
    assert sent["seed"] == 7


# ---- modify_params -----------------------------------------------------------------------------

CLAUDE = """
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: {url}
      api_key: {key}
{settings}
"""


def test_modify_params_fills_the_empty_content_anthropic_refuses(
    load_config, live_ogem, master_key
) -> None:
    emulator = anthropic_emulator_get()
    emulator.reset()
    messages = [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Hello there"},
    ]
    load_config(CLAUDE.format(url=emulator.url, key=ANTHROPIC_KEY, settings=""))
    refused = _post(live_ogem.url, master_key, model="claude", messages=messages)
    assert refused.status_code == 400
    assert "non-empty" in refused.json()["error"]["message"]

    load_config(
        CLAUDE.format(
            url=emulator.url, key=ANTHROPIC_KEY, settings="litellm_settings:\n  modify_params: true"
        )
    )
    served = _post(live_ogem.url, master_key, model="claude", messages=messages)
    assert served.status_code == 200, served.text
    sent = emulator.bodies[-1]
    assert "system" not in sent
    # The empty assistant turn is left out, so the two user turns become one.
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]
    alone = _post(live_ogem.url, master_key, model="claude", messages=[messages[1]])
    assert alone.status_code == 200, alone.text
    assert emulator.bodies[-1]["messages"] == [{"role": "user", "content": "."}]


# ---- max_parallel_requests and global_max_parallel_requests ----------------------------------

SLOW = """
model_list:
  - model_name: slow
    litellm_params:
      model: mock/slow
      latency_ms: 1500
{own}
  - model_name: other
    litellm_params:
      model: mock/other
      latency_ms: 1500
{settings}
"""


def test_a_deployment_serves_at_most_max_parallel_requests_at_once(
    load_config, live_ogem, master_key
) -> None:
    load_config(SLOW.format(own="      max_parallel_requests: 1", settings=""))
    served, refused = _together(live_ogem.url, master_key, 2, model="slow")
    assert served.status_code == 200, served.text
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    # Other deployments are not limited; and the slot is given back when the request ends.
    assert [r.status_code for r in _together(live_ogem.url, master_key, 2, model="other")] == [
        200,
        200,
    ]
    assert _post(live_ogem.url, master_key, model="slow").status_code == 200


def test_general_max_parallel_requests_is_every_deployments_default(
    load_config, live_ogem, master_key
) -> None:
    load_config(SLOW.format(own="", settings="general_settings:\n  max_parallel_requests: 1"))
    for model in ("slow", "other"):
        served, refused = _together(live_ogem.url, master_key, 2, model=model)
        assert (served.status_code, refused.status_code) == (200, 429)


def test_global_max_parallel_requests_caps_the_whole_proxy(
    load_config, live_ogem, master_key
) -> None:
    cap = "general_settings:\n  global_max_parallel_requests: 2"
    load_config(SLOW.format(own="", settings=cap))
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [
            pool.submit(_post, live_ogem.url, master_key, model=model)
            for model in ("slow", "other", "slow")
        ]
        # Whichever came third, across both models, is refused.
        *served, third = sorted((f.result() for f in futures), key=lambda r: r.status_code)
    assert [r.status_code for r in served] == [200, 200]
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "proxy: 2 requests in parallel" in error["message"]
    assert third.headers["Retry-After"] == "1"
    assert _post(live_ogem.url, master_key, model="slow").status_code == 200


# ---- router_settings.stream_timeout and retry_after -------------------------------------------

STALLING = """
model_list:
  - model_name: stalling
    litellm_params:
      model: mock/stalling
      chunks: 4
      chunk_delay_ms: 10000
  - model_name: late
    litellm_params:
      model: mock/late
      latency_ms: 1500
router_settings:
  stream_timeout: 0.5
"""


def _events(response: httpx.Response) -> list[dict[str, object]]:
    return [
        orjson.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]


def test_stream_timeout_ends_a_stream_that_stalls_between_chunks(
    load_config, live_ogem, master_key
) -> None:
    load_config(STALLING)
    started = time.monotonic()
    response = _post(live_ogem.url, master_key, model="stalling", stream=True)
    assert time.monotonic() - started < 5  # not the 10 s stall
    assert response.status_code == 200
    events = _events(response)
    assert events[0]["choices"]  # the first chunk came in time
    error = events[-1]["error"]
    assert error["type"] == "upstream_error"  # type: ignore[index]
    assert "stream_timeout" in error["message"]  # type: ignore[index]


def test_stream_timeout_bounds_the_first_chunk(load_config, live_ogem, master_key) -> None:
    load_config(STALLING)
    response = _post(live_ogem.url, master_key, model="late", stream=True)
    assert response.status_code == 504
    assert "stream_timeout" in response.json()["error"]["message"]
    # A request that does not stream is not bound by it.
    assert _post(live_ogem.url, master_key, model="late").status_code == 200


RETRYING = """
model_list:
  - model_name: flaky
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {url}/v1
      api_key: {key}
router_settings:
  num_retries: 1
  retry_after: 1.2
"""


def test_retry_after_is_the_least_wait_before_a_retry(
    openai_emulator, load_config, live_ogem, master_key
) -> None:
    load_config(RETRYING.format(url=openai_emulator.url, key=UPSTREAM_KEY))
    openai_emulator.inject(status=500, body={"error": {"message": "boom", "type": "server"}})
    started = time.monotonic()
    response = _post(live_ogem.url, master_key, model="flaky")
    waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-ogem-attempts"] == "2"
    assert 1.2 <= waited < 5

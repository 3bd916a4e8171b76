"""No budget ends above its limit: the reservation bounds what a request can be billed.

Each run drives a small budget through the live server until it refuses, then checks that what
was recorded (the request log after the drain, the budget's live counter) is exactly what the
served responses reported, priced, and at most the limit. mock-chat costs $1/M input and $2/M
output tokens; the mock counts every punctuation character as a token of its own.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from asgiref.sync import sync_to_async

from billing.models import Budget, BudgetScope, RequestLog
from billing.services import budget_live_spend, usage_drain
from gateway.body import Inbound
from gateway.context import Caller, RequestContext
from gateway.governance import request_bounds_fill
from keys.services import key_create
from providers.adapter import UploadFile
from providers.base import Endpoint
from tests.emulators.fixtures import slow_mock
from tests.factories import TeamFactory
from tests.live import LiveServer

INPUT, OUTPUT = Decimal("0.000001"), Decimal("0.000002")
MESSAGES = [{"role": "user", "content": "Hello there, how are you today?"}]
# 200 characters the mock (like any BPE tokenizer on punctuation) counts as 200 tokens: four
# times the old estimate of a token per 4 bytes.
DENSE = "".join("!#$%&()*+,-./:;<=>?@[]^{|}~"[i % 27] for i in range(200))


def _post(live: LiveServer, secret: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{live.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )


def _served_cost(responses: list[httpx.Response]) -> Decimal:
    total = Decimal(0)
    for response in responses:
        usage = response.json()["usage"]
        total += usage["prompt_tokens"] * INPUT + usage["completion_tokens"] * OUTPUT
    return total


def _until_refused(live: LiveServer, secret: str, body: dict[str, Any]) -> list[httpx.Response]:
    """Send `body` until the budget refuses it; the served responses."""
    served = []
    for _ in range(50):
        response = _post(live, secret, body)
        if response.status_code == 429:
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("rate_limit_error", "budget_exceeded")
            assert int(response.headers["Retry-After"]) >= 1
            return served
        assert response.status_code == 200, response.text
        served.append(response)
    raise AssertionError("the budget never refused")


def _assert_recorded(budget: Budget, served: list[httpx.Response], limit: Decimal) -> None:
    """What was recorded is what was served, and no more than the limit."""
    usage_drain()
    rows = {row.request_id: row for row in RequestLog.objects.all()}
    assert sorted(rows) == sorted(r.headers["x-request-id"] for r in served)
    for response in served:
        usage = response.json()["usage"]
        row = rows[response.headers["x-request-id"]]
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
    spent = _served_cost(served)
    assert sum((row.cost for row in rows.values()), Decimal(0)) == spent
    assert budget_live_spend(budget=budget) == spent
    assert spent <= limit


def _key_budget(*, limit: Decimal) -> tuple[str, Budget]:
    issued = key_create(name="tiny", team=TeamFactory(), max_budget=limit)
    return issued.secret, Budget.objects.get(scope=BudgetScope.KEY, key=issued.key)


def test_a_token_dense_prompt_never_takes_a_team_budget_past_its_limit(live: LiveServer) -> None:
    team = TeamFactory()
    limit = Decimal("0.001")
    budget = Budget.objects.create(scope=BudgetScope.TEAM, team=team, max_budget=limit)
    secret = key_create(name="dense", team=team).secret
    body = {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": DENSE}],
        "max_tokens": 10,
    }
    served = _until_refused(live, secret, body)
    # 200 prompt and 10 completion tokens: $0.00022 a request, four fit in $0.001.
    assert [r.json()["usage"]["prompt_tokens"] for r in served] == [200] * 4
    _assert_recorded(budget, served, limit)


def test_n_choices_are_reserved_n_times(live: LiveServer) -> None:
    limit = Decimal("0.001")
    secret, budget = _key_budget(limit=limit)
    body = {"model": "mock-chat", "messages": MESSAGES, "max_tokens": 4, "n": 50}
    served = _until_refused(live, secret, body)
    # 50 choices of 4 tokens: $0.000408 a request.
    assert [len(r.json()["choices"]) for r in served] == [50, 50]
    assert [r.json()["usage"]["completion_tokens"] for r in served] == [200, 200]
    _assert_recorded(budget, served, limit)


def test_a_large_n_is_reserved_in_full_and_n_2000_spends_nothing(live: LiveServer) -> None:
    limit = Decimal("0.002")
    secret, budget = _key_budget(limit=limit)
    body = {"model": "mock-chat", "messages": MESSAGES, "max_tokens": 5, "n": 128}
    served = _until_refused(live, secret, body)
    assert [r.json()["usage"]["completion_tokens"] for r in served] == [640]
    _assert_recorded(budget, served, limit)

    # On a $0.0001 key, n=2000 is refused before any upstream call (as an invalid n, or as a
    # worst case over the budget), and leaves nothing spent.
    tiny = Decimal("0.0001")
    secret, budget = _key_budget(limit=tiny)
    refused = _post(live, secret, {**body, "n": 2000})
    error = refused.json()["error"]
    if refused.status_code == 429:
        assert error["code"] == "budget_exceeded"
    else:
        assert (refused.status_code, error["type"]) == (400, "invalid_request_error")
    assert usage_drain() == 0
    assert not RequestLog.objects.filter(key_id=budget.key_id).exists()
    assert budget_live_spend(budget=budget) in (None, Decimal(0))


def test_the_mock_stops_at_its_output_limit_as_the_reservation_assumes(live: LiveServer) -> None:
    # Without max_tokens the reply echoes the prompt: 4 + 6,000 tokens, cut at the model's
    # 4,096 (the output limit the reservation counts on), n times.
    secret = key_create(name="echo", team=TeamFactory(), max_budget=Decimal("1")).secret
    prompt = "".join("!#$%&()*+,-./:;<=>?@[]^{|}~"[i % 27] for i in range(6000))
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": prompt}], "n": 2}
    response = _post(live, secret, body)
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 2 * 4096
    assert {c["finish_reason"] for c in response.json()["choices"]} == {"length"}


async def test_100_concurrent_requests_end_within_the_budget(
    live: LiveServer,
    install_deployments,  # type: ignore[no-untyped-def]
) -> None:
    # A slow upstream keeps every admitted request in flight while the others arrive.
    install_deployments(slow_mock("slow-dense", latency_ms=3000, upstream_model="mock-chat"))
    limit = Decimal("0.001")
    secret, budget = await sync_to_async(_key_budget)(limit=limit)
    content = orjson.dumps(
        {
            "model": "slow-dense",
            "messages": [{"role": "user", "content": DENSE[:40]}],
            "max_tokens": 3,
            "n": 4,
        }
    )
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", content=content, headers=headers)
                for _ in range(100)
            )
        )
    served = [r for r in responses if r.status_code == 200]
    refused = [r.json()["error"]["code"] for r in responses if r.status_code != 200]
    assert set(refused) == {"budget_exceeded"}
    assert len(served) + len(refused) == 100
    # 40 prompt and 12 completion tokens: $0.000064 a request; the reservation (the body's
    # bytes and 4 x 3 tokens) lets at least a few in, never more than fit.
    assert served
    await sync_to_async(_assert_recorded)(budget, served, limit)


def _bounds(endpoint: Endpoint, body: dict[str, Any], **inbound: Any) -> RequestContext:
    ctx = RequestContext(request_id="r", endpoint=endpoint, caller=Caller())
    request_bounds_fill(ctx, inbound=Inbound(body=body, **inbound))
    return ctx


@pytest.mark.parametrize(
    ("n", "outputs"),
    [(50, 50), (None, 1), (0, 1), (-1, 1), (True, 1), ("7", 7), (2.5, 3), ("x", 1), ([3], 1)],
)
def test_a_bad_n_never_lowers_the_reservation(n: Any, outputs: int) -> None:
    assert _bounds(Endpoint.CHAT, {"n": n}, size=100).outputs_bound == outputs


def test_bounds_of_every_billed_unit() -> None:
    chat = _bounds(Endpoint.CHAT, {"tools": []}, size=100)
    assert (chat.prompt_tokens_bound, chat.outputs_bound) == (100 + 512, 1)
    # best_of completions are generated for each prompt of a batch.
    batch = {"prompt": ["a", "b", "c"], "n": 2, "best_of": 5}
    assert _bounds(Endpoint.COMPLETIONS, batch, size=10).outputs_bound == 15
    tokens = {"prompt": [1, 2, 3], "n": 2}
    assert _bounds(Endpoint.COMPLETIONS, tokens, size=10).outputs_bound == 2
    assert _bounds(Endpoint.IMAGES_GENERATIONS, {"n": 4}, size=10).images_bound == 4
    assert _bounds(Endpoint.IMAGES_GENERATIONS, {}, size=10).images_bound == 1
    assert _bounds(Endpoint.AUDIO_SPEECH, {"input": "héllo"}, size=10).characters_bound == 5
    audio = UploadFile(field="file", filename="a.mp3", content=b"x" * 1001)
    upload = _bounds(Endpoint.AUDIO_TRANSCRIPTIONS, {"prompt": "names"}, files=[audio], size=1001)
    # The form's fields count on top of the file; 1,001 bytes bound 3 seconds at 500 a second.
    assert (upload.prompt_tokens_bound, upload.audio_seconds_bound) == (1006, 3)

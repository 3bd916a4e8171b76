"""The Python SDK (sdk/python, package `ogem_sdk`) against a live Ogem, and against the API's own
schema so that the two cannot drift apart."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import openai
import pytest
from drf_spectacular.generators import SchemaGenerator
from ogem_sdk import OPERATIONS, AsyncOgem, Ogem, OgemAPIError, OgemConnectionError

from tests.live import LiveServer, free_port, usage_record_now

pytestmark = pytest.mark.live


def test_the_sdk_calls_exactly_the_operations_of_the_schema() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    served = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert sorted(served - OPERATIONS) == [], "operations the SDK lacks"
    assert sorted(OPERATIONS - served) == [], "operations the SDK calls that the API lacks"


def test_organization_to_revoked_key_with_the_openai_sdk_in_between(
    live_ogem: LiveServer, master_key: str
) -> None:
    with Ogem(base_url=live_ogem.url, api_key=master_key) as ogem:
        organization = ogem.organizations.create(name="Acme", slug="acme")
        team = ogem.teams.create(organization=organization["id"], name="Search", slug="search")
        key = ogem.keys.create(team=team["id"], name="search-prod", max_budget="5")
        assert key["key"].startswith("sk-") and key["organization"] == organization["id"]

        chat = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key["key"], max_retries=0)
        answer = chat.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "hello"}]
        )
        assert answer.choices[0].message.content
        usage_record_now()

        spend = ogem.spend(group_by="team", since="1d", organization=organization["id"])
        (row,) = spend["results"]
        assert row["team"] == team["id"] and row["requests"] == 1
        assert Decimal(ogem.keys.get(key["id"])["total_spend"]) == Decimal(row["spend"])
        assert Decimal(row["spend"]) > 0

        rotated = ogem.keys.rotate(key["id"], grace_period_seconds=0)
        assert rotated["key"] != key["key"]
        assert ogem.keys.revoke(key["id"])["status"] == "revoked"
        for secret in (key["key"], rotated["key"]):
            refused = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.AuthenticationError):
                refused.models.list()


def test_lists_walk_every_page_and_errors_carry_the_apis_message(
    live_ogem: LiveServer, master_key: str
) -> None:
    ogem = Ogem(base_url=live_ogem.url, api_key=master_key)
    organization = ogem.organizations.create(name="Paged", slug="paged")
    made = {
        ogem.teams.create(organization=organization["id"], name=f"T{n}")["id"] for n in range(7)
    }
    listed = {team["id"] for team in ogem.teams.list(organization=organization["id"], page_size=3)}
    assert listed == made

    with pytest.raises(OgemAPIError) as refused:
        ogem.keys.create(name="typo", allowed_models=["mock-chat"])
    assert refused.value.status == 400
    assert "allowed_models" in refused.value.message and "Unknown field" in refused.value.message
    with pytest.raises(OgemAPIError) as missing:
        ogem.teams.get(10**9)
    assert missing.value.status == 404 and missing.value.message

    member = Ogem(base_url=live_ogem.url, api_key="sk-not-a-key", max_retries=0)
    with pytest.raises(OgemAPIError) as unauthenticated:
        member.teams.get(1)
    assert unauthenticated.value.status in (401, 403)


def test_the_async_client_does_the_same(live_ogem: LiveServer, master_key: str) -> None:
    async def scenario() -> tuple[set[int], set[int], Any]:
        async with AsyncOgem(base_url=live_ogem.url, api_key=master_key) as ogem:
            organization = await ogem.organizations.create(name="Async", slug="async")
            made = {
                (await ogem.teams.create(organization=organization["id"], name=f"A{n}"))["id"]
                for n in range(3)
            }
            listed = {
                team["id"]
                async for team in ogem.teams.list(organization=organization["id"], page_size=2)
            }
            spend = await ogem.spend(group_by="team", organization=organization["id"])
            return made, listed, spend

    made, listed, spend = asyncio.run(scenario())
    assert listed == made and spend["results"] == []


class _Flaky(BaseHTTPRequestHandler):
    """429 with Retry-After: 1, then 503, then the answer; POSTs get a 500."""

    seen: list[tuple[str, float]] = []

    def _answer(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.seen.append(("GET", time.monotonic()))
        attempt = sum(1 for method, _ in self.seen if method == "GET")
        if attempt == 1:
            self._answer(429, b'{"detail": "Slow down."}', **{"Retry-After": "1"})
        elif attempt == 2:
            self._answer(503, b'{"detail": "Busy."}')
        else:
            self._answer(200, b'{"id": 7, "name": "Search"}')

    def do_POST(self) -> None:
        self.seen.append(("POST", time.monotonic()))
        self._answer(500, b'{"detail": "Broken."}')

    def log_message(self, *args: Any) -> None:
        pass


def test_retries_honour_retry_after_and_never_repeat_a_post_after_a_500() -> None:
    _Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ogem = Ogem(base_url=f"http://127.0.0.1:{server.server_port}", api_key="k", max_retries=3)
        assert ogem.teams.get(7) == {"id": 7, "name": "Search"}
        times = [moment for method, moment in _Flaky.seen if method == "GET"]
        assert len(times) == 3
        assert times[1] - times[0] >= 1.0  # the server's Retry-After, not the short backoff

        with pytest.raises(OgemAPIError) as broken:
            ogem.teams.create(organization=1, name="X")
        assert broken.value.status == 500 and broken.value.message == "Broken."
        assert [method for method, _ in _Flaky.seen].count("POST") == 1

        ogem_without_retries = Ogem(
            base_url=f"http://127.0.0.1:{server.server_port}", api_key="k", max_retries=0
        )
        _Flaky.seen = []
        with pytest.raises(OgemAPIError) as limited:
            ogem_without_retries.teams.get(7)
        assert limited.value.status == 429 and limited.value.message == "Slow down."
    finally:
        server.shutdown()
        server.server_close()

    closed = Ogem(base_url=f"http://127.0.0.1:{free_port()}", api_key="k", max_retries=1)
    with pytest.raises(OgemConnectionError):
        closed.teams.get(1)

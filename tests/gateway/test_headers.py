from __future__ import annotations

import re

import httpx
import pytest

from tests.emulators.fixtures import slow_mock


def test_request_id_echoed_or_generated(live_ogem, master_key: str) -> None:
    url = f"{live_ogem.url}/v1/chat/completions"
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]}
    auth = {"Authorization": f"Bearer {master_key}"}
    echoed = httpx.post(url, json=body, headers={**auth, "x-request-id": "req-abc.123"})
    assert echoed.headers["x-request-id"] == "req-abc.123"
    generated = httpx.post(url, json=body, headers=auth)
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    unsafe = httpx.post(url, json=body, headers={**auth, "x-request-id": "a b\tc"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])
    for response in (echoed, generated):
        assert response.headers["x-ogem-provider"] == "mock"
        assert response.headers["x-ogem-deployment"] == "builtin:mock-chat"
        assert float(response.headers["x-ogem-overhead-ms"]) >= 0


def test_overhead_excludes_upstream_latency(
    live_ogem, master_key: str, install_deployments
) -> None:  # type: ignore[no-untyped-def]
    install_deployments(slow_mock("slow-chat", latency_ms=300))
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "slow-chat", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3
    assert float(response.headers["x-ogem-overhead-ms"]) < 100


def test_error_responses_carry_request_id(live_ogem) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions", json={}, headers={"x-request-id": "mine"}
    )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "mine"
    assert "x-ogem-overhead-ms" in response.headers


@pytest.mark.parametrize("status", [200, 400, 429])
def test_a_json_answer_is_the_response_django_builds(status: int) -> None:
    """`json_bytes_response` skips HttpResponse's constructor: what it builds must be what the
    constructor builds, attribute for attribute, and answer the same bytes."""
    from django.http import HttpResponse

    from gateway.responses import json_bytes_response

    content = b'{"id":"x"}'
    built = json_bytes_response(content, status=status)
    django = HttpResponse(content, status=status, content_type="application/json")
    assert type(built) is HttpResponse
    assert vars(built).keys() == vars(django).keys()
    for name, value in vars(django).items():
        if name == "headers":
            assert vars(built.headers) == vars(value)
        elif name == "cookies":
            assert type(built.cookies) is type(value) and not built.cookies
        else:
            assert getattr(built, name) == value, name
    assert built.serialize() == django.serialize()
    built["x-request-id"] = "abc"  # headers are still Django's to set
    assert built.headers["X-Request-Id"] == "abc"

"""Every error class on /v1 answers in OpenAI's shape with the contract's status, never a 500."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.factories import OrganizationFactory, TeamFactory

HELLO = [{"role": "user", "content": "Hi"}]


def _post(live_ogem, key: str, path: str = "/v1/chat/completions", **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{live_ogem.url}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
    )


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_malformed_json_is_400(live_ogem, master_key: str) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"},
        content=b'{"model": ',
    )
    assert response.status_code == 400
    error = _error(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], None),
        ({"messages": HELLO}, "model"),
        ({"model": 5, "messages": HELLO}, "model"),
        ({"model": "mock-chat"}, "messages"),
        ({"model": "mock-chat", "messages": "hi"}, "messages"),
        ({"model": "mock-chat", "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": "mock-chat", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "mock-chat", "messages": HELLO, "max_tokens": "9"}, "max_tokens"),
        ({"model": "mock-chat", "messages": HELLO, "user": 3}, "user"),
        ({"model": "mock-chat", "messages": HELLO, "metadata": {"tags": "a"}}, "metadata.tags"),
        ({"model": "mock-chat", "messages": HELLO, "stream_options": 1}, "stream_options"),
    ],
)
def test_wrong_types_are_400(live_ogem, master_key: str, body: object, param: str | None) -> None:
    response = _post(live_ogem, master_key, json=body)
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_streaming_refused_where_not_supported(live_ogem, master_key: str) -> None:
    response = _post(
        live_ogem,
        master_key,
        "/v1/embeddings",
        json={"model": "mock-embed", "input": "x", "stream": True},
    )
    assert response.status_code == 400
    assert _error(response)["param"] == "stream"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=HELLO)
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"


def test_unknown_route_is_404(live_ogem, master_key: str) -> None:
    response = httpx.get(
        f"{live_ogem.url}/v1/no/such/thing", headers={"Authorization": f"Bearer {master_key}"}
    )
    assert response.status_code == 404
    assert _error(response)["type"] == "not_found_error"
    assert response.headers["x-request-id"]


def test_body_too_large_is_413(live_ogem, master_key: str, settings) -> None:  # type: ignore[no-untyped-def]
    limit = settings.OGEM_MAX_REQUEST_BYTES
    content = b'{"model": "mock-chat", "messages": [], "pad": "' + b"x" * limit + b'"}'
    response = _post(live_ogem, master_key, content=content)
    assert response.status_code == 413
    error = _error(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_too_large")


def test_missing_and_invalid_keys_are_401(live_ogem) -> None:
    missing = httpx.post(f"{live_ogem.url}/v1/chat/completions", json={})
    assert missing.status_code == 401
    assert _error(missing)["type"] == "authentication_error"
    assert _error(missing)["code"] == "missing_api_key"
    wrong = _post(live_ogem, "sk-" + "a" * 48, json={"model": "mock-chat", "messages": HELLO})
    assert wrong.status_code == 401
    assert _error(wrong)["code"] == "invalid_api_key"
    garbage = _post(live_ogem, "not-a-key", json={})
    assert garbage.status_code == 401


def test_model_not_allowed_is_403(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    key = make_key(models=["mock-embed"])
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="mock-chat", messages=HELLO)
    assert caught.value.body["type"] == "permission_error"
    assert caught.value.body["code"] == "model_not_allowed"
    assert client.embeddings.create(model="mock-embed", input="ok").data


def test_other_organizations_model_is_404(live_ogem, make_key, install_deployments) -> None:  # type: ignore[no-untyped-def]
    from providers.base import Deployment

    mine, theirs = OrganizationFactory(), OrganizationFactory()
    install_deployments(
        Deployment(
            id="test:private",
            model_name="private-chat",
            provider="mock",
            upstream_model="private-chat",
            organization_id=theirs.pk,
        )
    )
    outsider = make_key(team=TeamFactory(organization=mine))
    insider = make_key(team=TeamFactory(organization=theirs))
    outside = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=outsider, max_retries=0)
    inside = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=insider, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        outside.chat.completions.create(model="private-chat", messages=HELLO)
    assert "private-chat" not in [m.id for m in outside.models.list().data]
    assert "private-chat" in [m.id for m in inside.models.list().data]
    assert inside.chat.completions.create(model="private-chat", messages=HELLO).choices


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (429, openai.RateLimitError, "rate_limit_error"),
        (500, openai.InternalServerError, "upstream_error"),
        (503, openai.InternalServerError, "upstream_error"),
        (504, openai.InternalServerError, "upstream_error"),
    ],
)
def test_simulated_upstream_errors(client: openai.OpenAI, status, exception, error_type) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exception) as caught:
        client.chat.completions.create(
            model="mock-chat",
            messages=HELLO,
            extra_body={"mock_response": {"error": {"status": status, "message": "boom"}}},
        )
    expected_status = 502 if status == 500 else status
    assert caught.value.status_code == expected_status
    assert caught.value.body["type"] == error_type
    assert "mock" in caught.value.body["message"]


def test_mid_stream_failure_is_an_sse_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock-chat",
        messages=HELLO,
        stream=True,
        extra_body={
            "mock_response": {"error": {"status": 503, "message": "gone", "after_chunks": 2}}
        },
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "gone" in caught.value.message


def test_wrong_method_is_405_in_openai_shape(live_ogem, master_key: str) -> None:
    # (GET /v1/chat/completions lists stored completions: docs/stored-completions.md.)
    response = httpx.get(
        f"{live_ogem.url}/v1/embeddings", headers={"Authorization": f"Bearer {master_key}"}
    )
    assert response.status_code == 405
    error = _error(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_chunked_body_too_large_is_413(live_ogem, master_key: str, settings) -> None:  # type: ignore[no-untyped-def]
    limit = settings.OGEM_MAX_REQUEST_BYTES

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "mock-chat", "pad": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = _post(live_ogem, master_key, content=chunks())
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"

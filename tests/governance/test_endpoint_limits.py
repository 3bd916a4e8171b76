"""Per-endpoint rate limits of a key (issue 16, item 12): `endpoint_limits` counts a key's
requests to one /v1 endpoint apart from the others, with the key's own limits still applying;
429 rate_limit_error with Retry-After and OpenAI's x-ratelimit headers; in Redis and in the
embedded default's in-process store (the `live` fixture runs both)."""

from __future__ import annotations

import openai
import pytest
from rest_framework.test import APIClient

from keys.limits import ENDPOINTS
from keys.models import VirtualKey
from providers.base import Endpoint
from tests.factories import TeamFactory
from tests.live import LiveServer

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_the_endpoint_names_are_the_gateways() -> None:
    assert set(ENDPOINTS) == {endpoint.value for endpoint in Endpoint}


def test_images_are_limited_apart_from_chat(live: LiveServer, master_key: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    created = api.post(
        "/api/v1/keys",
        {
            "name": "images-limited",
            "team": TeamFactory().pk,
            "rpm_limit": 10,
            "endpoint_limits": {"images/generations": {"rpm": 2}},
        },
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["endpoint_limits"] == {"images/generations": {"rpm": 2}}
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=created.json()["key"], max_retries=0)
    remaining = []
    for _ in range(2):
        raw = client.images.with_raw_response.generate(model="mock-image", prompt="a cat")
        assert raw.http_response.status_code == 200
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(model="mock-image", prompt="a cat")
    response = refused.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert error["message"] == (
        "Rate limit reached for /v1/images/generations: 2 requests per minute."
    )
    # Chat is not limited by the images limit, only by the key's own 10 (2 images taken).
    for number in range(8):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=MESSAGES)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-remaining-requests"] == str(7 - number)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="mock-chat", messages=MESSAGES)


def test_chat_tpm_per_endpoint(live: LiveServer) -> None:
    from keys.services import key_create

    secret = key_create(
        name="chat-tpm",
        team=TeamFactory(),
        endpoint_limits={"chat/completions": {"tpm": 50}},
    ).secret
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="mock-chat", messages=MESSAGES, max_tokens=20
    )
    assert raw.headers["x-ratelimit-limit-tokens"] == "50"
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_tokens=100)
    assert "tokens per minute" in refused.value.response.json()["error"]["message"]
    # Embeddings are not counted against the chat limit.
    client.embeddings.create(model="mock-embed", input="hi")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"images": {"rpm": 5}}, "No endpoint is named `images`"),
        ({"images/generations": {"rps": 5}}, "`rps` is not a limit (rpm or tpm)."),
        ({"images/generations": {"rpm": -1}}, "give a whole number from 0."),
        ({"images/generations": 5}, 'give an object such as {"rpm": 5, "tpm": 10000}.'),
        (["images/generations"], "Must be a JSON object."),
    ],
)
def test_bad_endpoint_limits_are_400s(master_key: str, value: object, message: str) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    response = api.post(
        "/api/v1/keys",
        {"name": "bad", "team": TeamFactory().pk, "endpoint_limits": value},
        format="json",
    )
    assert response.status_code == 400
    assert message in response.json()["endpoint_limits"][0]
    assert not VirtualKey.objects.filter(name="bad").exists()

"""Ordered fallbacks, context-window and content-policy fallbacks, through the live server."""

from __future__ import annotations

import pytest

from tests.routing.conftest import served_by

CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
POLICY_ERROR = {
    "error": {
        "message": "Your request was rejected as a result of our safety system.",
        "type": "invalid_request_error",
        "param": None,
        "code": "content_policy_violation",
    }
}


@pytest.fixture
def groups(openai_emulator, install_deployments, deployment):
    install_deployments(
        deployment("small", model="small"),
        deployment("second", model="second"),
        deployment("large", model="large"),
        deployment("lenient", model="lenient"),
    )
    return openai_emulator


def test_fallbacks_are_tried_in_order(groups, router_settings, chat) -> None:
    router_settings(fallbacks={"small": ("second", "large")})
    groups.inject(status=500)
    groups.inject(status=503)
    response = chat("small")
    assert response.status_code == 200, response.text
    assert served_by(groups) == ["small", "second", "large"]
    assert response.headers["x-ogem-model-group"] == "large"
    assert response.headers["x-ogem-attempts"] == "3"


def test_default_fallbacks_serve_groups_without_their_own(groups, router_settings, chat) -> None:
    router_settings(default_fallbacks=("lenient",))
    groups.inject(status=429)
    response = chat("small")
    assert response.status_code == 200
    assert served_by(groups) == ["small", "lenient"]


def test_context_length_error_goes_to_the_larger_window(groups, router_settings, chat) -> None:
    router_settings(
        fallbacks={"small": ("second",)}, context_window_fallbacks={"small": ("large",)}
    )
    groups.inject(status=400, body=CONTEXT_ERROR)
    response = chat("small")
    assert response.status_code == 200, response.text
    # Not the general fallback: only a larger window helps a prompt that is too long.
    assert served_by(groups) == ["small", "large"]
    assert response.headers["x-ogem-model-group"] == "large"


def test_content_policy_refusal_goes_to_its_fallback(groups, router_settings, chat) -> None:
    router_settings(content_policy_fallbacks={"small": ("lenient",)})
    groups.inject(status=400, body=POLICY_ERROR)
    response = chat("small")
    assert response.status_code == 200
    assert served_by(groups) == ["small", "lenient"]


def test_context_length_error_without_fallback_is_returned(groups, router_settings, chat) -> None:
    router_settings(fallbacks={"small": ("second",)})
    groups.inject(status=400, body=CONTEXT_ERROR)
    response = chat("small")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert served_by(groups) == ["small"]


def test_every_fallback_failing_returns_the_last_error(groups, router_settings, chat) -> None:
    router_settings(fallbacks={"small": ("second",)})
    groups.inject(status=500)
    groups.inject(status=503)
    response = chat("small")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert served_by(groups) == ["small", "second"]


def test_fallback_the_key_may_not_use_is_skipped(
    groups, router_settings, live_ogem, make_key
) -> None:
    import httpx

    router_settings(fallbacks={"small": ("second", "large")})
    key = make_key(models=["small", "large"])
    groups.inject(status=500)
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "small", "messages": [{"role": "user", "content": "Hi"}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert served_by(groups) == ["small", "large"]


def test_model_group_alias_routes_to_its_group(groups, router_settings, chat) -> None:
    router_settings(model_group_alias={"cheap": "small"})
    response = chat("cheap")
    assert response.status_code == 200
    assert served_by(groups) == ["small"]

"""The vendor sinks read their settings by the vendor's environment names, as written or in
lower case (LiteLLM's callback_vars spelling), list those names in `environment`, and refuse a
URL setting that is no http(s) URL and a Datadog site that is no Datadog host."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.callbacks.registry import SINKS, sink_class

VENDORS: dict[str, dict[str, str]] = {
    "datadog_llm_observability": {"DD_API_KEY": "k", "DD_SITE": "datadoghq.eu"},
    "newrelic": {"NEW_RELIC_LICENSE_KEY": "k", "NEW_RELIC_ACCOUNT_ID": "7"},
    "arize": {"ARIZE_SPACE_ID": "s", "ARIZE_API_KEY": "k", "ARIZE_PROJECT_NAME": "p"},
    "arize_phoenix": {
        "PHOENIX_COLLECTOR_ENDPOINT": "https://phoenix.example",
        "PHOENIX_API_KEY": "k",
    },
    "weave": {"WANDB_API_KEY": "k", "WANDB_PROJECT_ID": "acme/bot"},
    "mlflow": {"MLFLOW_TRACKING_URI": "https://mlflow.example", "MLFLOW_TRACKING_TOKEN": "t"},
    "helicone": {"HELICONE_API_KEY": "k"},
}
URL_SETTINGS = {
    "datadog_llm_observability": "DD_BASE_URL",
    "newrelic": "NEW_RELIC_EVENT_API_URL",
    "arize": "ARIZE_HTTP_ENDPOINT",
    "arize_phoenix": "PHOENIX_COLLECTOR_ENDPOINT",
    "weave": "WF_TRACE_SERVER_URL",
    "mlflow": "MLFLOW_TRACKING_URI",
    "helicone": "HELICONE_WORKER_URL",
}


def _state(sink: Any) -> dict[str, Any]:
    return dict(vars(sink))


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_lower_case_names_read_the_same(name: str) -> None:
    cls = sink_class(name)
    assert cls is not None and SINKS[name].startswith("gateway.callbacks.")
    upper = cls(VENDORS[name])
    lower = cls({key.lower(): value for key, value in VENDORS[name].items()})
    assert _state(upper) == _state(lower)
    assert set(VENDORS[name]) <= set(cls.environment)  # type: ignore[attr-defined]
    assert URL_SETTINGS[name] in cls.environment  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(VENDORS))
def test_a_url_setting_must_be_http(name: str) -> None:
    cls = sink_class(name)
    assert cls is not None
    with pytest.raises(ValueError, match=URL_SETTINGS[name]):
        cls({**VENDORS[name], URL_SETTINGS[name]: "file:///etc/passwd"})


def test_a_datadog_site_names_a_datadog_host() -> None:
    cls = sink_class("datadog_llm_observability")
    assert cls is not None
    for site in ("us5.datadoghq.com", "ap1.datadoghq.com", "datadoghq.eu", "ddog-gov.com"):
        cls({"DD_API_KEY": "k", "DD_SITE": site})
    with pytest.raises(ValueError, match="DD_SITE"):
        cls({"DD_API_KEY": "k", "DD_SITE": "internal.example/#"})

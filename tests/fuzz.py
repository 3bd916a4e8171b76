"""schemathesis against a live Ogem: no operation of an OpenAPI document may answer a 5xx.

The run is schemathesis' own engine (what `st run` drives): its examples, coverage (wrongly typed
and out-of-range values), fuzzing and stateful phases, positive and negative data, a bounded
number of examples per operation, deterministic so that CI sends the same requests every time,
and the single check `not_a_server_error`. Each server error is reported
with the curl command that reproduces it.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema


def server_errors(
    *,
    document: dict[str, Any],
    base_url: str,
    headers: dict[str, str],
    max_examples: int,
    operations: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Run schemathesis over `document` on `base_url`; the 5xx answers (and engine errors).

    `operations` are schemathesis' per-operation settings, e.g. the ids its paths address:
    `{"include-path-regex": "^/api/v1/teams/", "parameters": {"path.id": 3}}`.
    """
    config = SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "headers": headers,
            "request-timeout": 60,
            "cache": {"enabled": False},
            "workers": 1,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
            # Coverage sends the wrongly typed and out-of-range value of every field; its valid
            # boundaries, other HTTP methods and repeated query parameters would double the time
            # for nothing the fuzzing phase does not already send.
            "phases": {
                "coverage": {
                    "generation": {"mode": "negative"},
                    "unexpected-methods": [],
                    "generate-duplicate-query-parameters": False,
                }
            },
            "operations": operations or [],
        }
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            recorder = event.recorder
            for case_id, checks in recorder.checks.items():
                if any(check.status == Status.FAILURE for check in checks):
                    case = recorder.cases[case_id].value
                    failures.append(f"{recorder.label}: {case.as_curl_command()}")
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return failures

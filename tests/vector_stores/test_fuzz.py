"""schemathesis over /v1/vector_stores' operations: no answer is a 5xx, whatever the body, ids
or query parameters (the whole /v1 is fuzzed by tests/gateway/test_schemathesis.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.fuzz import server_errors
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_vector_store_routes_answer_no_server_error(live_ogem: LiveServer, master_key: str) -> None:
    document = httpx.get(f"{live_ogem.url}/v1/openapi.json").json()
    document["paths"] = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith("/v1/vector_stores")
    }
    assert len(document["paths"]) == 10
    failures = server_errors(
        document=document,
        base_url=live_ogem.url,
        headers={"Authorization": f"Bearer {master_key}"},
        max_examples=10,
    )
    assert failures == []

"""/v1/batches run by Ogem, through the live server and the official openai SDK: create, poll,
read the output; line errors; cancel mid-run; expiry; bad input; tenants isolated; accounting
at the batch price factor. Batches run in a thread here (the embedded default's runner);
test_worker_crash.py runs them on real Celery workers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from tests.batches.conftest import chat_lines, jsonl, upload
from tests.emulators.fixtures import slow_mock
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import wait_for
from tests.schemas import schema_validate

pytestmark = pytest.mark.django_db(transaction=True)

ENDED = ("completed", "failed", "expired", "cancelled")


def _ended(client: openai.OpenAI, batch_id: str) -> Any:
    def check() -> Any:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in ENDED else None

    return wait_for(check, what=f"batch {batch_id} to end")


def _create(client: openai.OpenAI, content: bytes, **options: Any) -> Any:
    source = upload(client, content)
    return client.batches.create(
        input_file_id=source.id,
        endpoint=options.pop("endpoint", "/v1/chat/completions"),
        completion_window="24h",
        **options,
    )


def _batch_validate(payload: dict[str, Any]) -> None:
    """OpenAI's Batch schema types the optional ids and timestamps as non-null while its own
    examples (and API) answer null until they are set: the nulls are checked as absent."""
    schema_validate("Batch", {name: value for name, value in payload.items() if value is not None})


def _drained_logs(batch_id: str) -> list[RequestLog]:
    usage_drain()
    return list(RequestLog.objects.filter(batch_id=batch_id).order_by("request_id"))


def test_create_poll_and_read_the_output_through_the_sdk(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    source = upload(client, chat_lines(5))
    raw = client.batches.with_raw_response.create(
        input_file_id=source.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    _batch_validate(raw.http_response.json())
    created = raw.parse()
    assert created.id.startswith("batch_")
    assert (created.object, created.endpoint, created.input_file_id) == (
        "batch",
        "/v1/chat/completions",
        source.id,
    )
    assert created.status in ("validating", "in_progress", "finalizing", "completed")
    assert created.expires_at == created.created_at + 24 * 3600
    assert created.metadata == {"job": "nightly"}
    assert created.model == "mock-chat"

    done = _ended(client, created.id)
    _batch_validate(client.batches.with_raw_response.retrieve(done.id).http_response.json())
    assert done.status == "completed"
    assert (
        done.request_counts.total,
        done.request_counts.completed,
        done.request_counts.failed,
    ) == (
        5,
        5,
        0,
    )
    assert done.error_file_id is None
    assert done.in_progress_at is not None and done.finalizing_at is not None
    assert done.completed_at >= done.finalizing_at >= done.in_progress_at
    # The mock counts "line", "n": 2 prompt tokens; its "Mock reply to: line n" is 6.
    assert (done.usage.input_tokens, done.usage.output_tokens, done.usage.total_tokens) == (
        10,
        30,
        40,
    )

    output = client.files.retrieve(done.output_file_id)
    assert (output.purpose, output.filename) == ("batch_output", f"{done.id}_output.jsonl")
    lines = jsonl(client.files.content(done.output_file_id).read())
    assert [line["custom_id"] for line in lines] == [f"req-{n}" for n in range(5)]
    for n, line in enumerate(lines):
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["error"] is None
        assert line["id"] == f"batch_req_{line['response']['request_id']}"
        assert set(line["response"]) == {"status_code", "request_id", "body"}
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"Mock reply to: line {n}"

    # One request log row per line, at half the price (OGEM_BATCH_PRICE_FACTOR's default).
    logs = _drained_logs(done.id)
    assert sorted(log.request_id for log in logs) == sorted(
        line["response"]["request_id"] for line in lines
    )
    full = (Decimal(2) * Decimal("1.00") + Decimal(6) * Decimal("2.00")) / Decimal(1_000_000)
    assert {log.cost for log in logs} == {full / 2}
    assert {log.status_code for log in logs} == {200}
    # Prometheus counts the lines.
    from ogem_site.metrics import metrics_render

    assert b'ogem_batch_lines_total{endpoint="/v1/chat/completions",outcome="ok"}' in (
        metrics_render()
    )


def test_the_batch_price_factor_is_a_setting(key_sdk, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_BATCH_PRICE_FACTOR = Decimal("0.25")
    client = key_sdk()
    done = _ended(client, _create(client, chat_lines(1)).id)
    (log,) = _drained_logs(done.id)
    assert log.cost == Decimal(14) / Decimal(1_000_000) / 4


def test_failed_lines_go_to_the_error_file_in_openais_format(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    failing = orjson.dumps(
        {
            "custom_id": "bad",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "mock-chat",
                "messages": [{"role": "user", "content": "x"}],
                "mock_response": {"error": {"status": 400, "message": "refused upstream"}},
            },
        }
    )
    done = _ended(client, _create(client, chat_lines(2) + failing + b"\n").id)
    assert done.status == "completed"
    assert (
        done.request_counts.total,
        done.request_counts.completed,
        done.request_counts.failed,
    ) == (
        3,
        2,
        1,
    )
    assert [
        line["custom_id"] for line in jsonl(client.files.content(done.output_file_id).read())
    ] == [
        "req-0",
        "req-1",
    ]
    (error_line,) = jsonl(client.files.content(done.error_file_id).read())
    assert error_line["custom_id"] == "bad"
    assert error_line["error"] is None
    assert error_line["response"]["status_code"] == 400
    assert error_line["response"]["body"]["error"]["message"]


def test_cancel_mid_run_stops_cleanly_and_keeps_partial_output(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings
) -> None:
    install_deployments(slow_mock("slow-chat", latency_ms=200, upstream_model="mock-chat"))
    settings.OGEM_BATCH_CONCURRENCY = 2
    client = key_sdk()
    batch = _create(client, chat_lines(40, model="slow-chat"))
    wait_for(
        lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2,
        what="the first lines",
    )
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    done = _ended(client, batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    completed = done.request_counts.completed
    assert 2 <= completed < 40
    lines = jsonl(client.files.content(done.output_file_id).read())
    ids = [line["custom_id"] for line in lines]
    assert ids == [f"req-{n}" for n in range(len(ids))]  # in input order, each once
    assert len(ids) == completed
    assert len(_drained_logs(batch.id)) == completed
    # Cancelling an ended batch changes nothing.
    assert client.batches.cancel(batch.id).status == "cancelled"


def test_a_batch_past_its_window_expires_with_its_rest_in_the_error_file(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings
) -> None:
    from django.utils import timezone

    from batches.models import Batch

    install_deployments(slow_mock("slow-chat", latency_ms=200, upstream_model="mock-chat"))
    settings.OGEM_BATCH_CONCURRENCY = 2
    client = key_sdk()
    batch = _create(client, chat_lines(30, model="slow-chat"))
    wait_for(
        lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2,
        what="the first lines",
    )
    Batch.objects.filter(batch_id=batch.id).update(expires_at=timezone.now())
    done = _ended(client, batch.id)
    assert done.status == "expired"
    assert done.expired_at is not None
    answered = jsonl(client.files.content(done.output_file_id).read())
    expired = jsonl(client.files.content(done.error_file_id).read())
    assert answered and expired
    assert sorted(line["custom_id"] for line in answered + expired) == sorted(
        f"req-{n}" for n in range(30)
    )
    for line in expired:
        assert line["response"] is None
        assert line["error"]["code"] == "batch_expired"
    assert done.request_counts.completed == len(answered)
    assert done.request_counts.failed == len(expired)


def test_list_pages_newest_first_and_retrieve(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    ids = [_create(client, chat_lines(1)).id for _ in range(3)]
    page = client.batches.with_raw_response.list(limit=2)
    listed = page.http_response.json()
    schema_validate(
        "ListBatchesResponse",
        {**listed, "data": [{k: v for k, v in b.items() if v is not None} for b in listed["data"]]},
    )
    first = page.parse()
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more is True
    rest = client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in rest.data] == [ids[0]]
    assert rest.has_more is False
    assert [b.id for b in client.batches.list()] == ids[::-1]
    for batch_id in ids:
        _ended(client, batch_id)


def test_another_tenants_key_gets_404(key_sdk, sdk) -> None:  # type: ignore[no-untyped-def]
    owner = key_sdk()
    stranger = key_sdk(team=TeamFactory(organization=OrganizationFactory()))
    batch = _create(owner, chat_lines(1))
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.batches.cancel(batch.id)
    assert [b.id for b in stranger.batches.list()] == []
    # Another tenant's input file is not found either.
    with pytest.raises(openai.NotFoundError) as foreign:
        stranger.batches.create(
            input_file_id=batch.input_file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
    assert foreign.value.body["param"] == "input_file_id"  # type: ignore[index]
    done = _ended(owner, batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.content(done.output_file_id)
    # The master key sees every batch.
    assert sdk.batches.retrieve(batch.id).id == batch.id


def test_bad_input_is_openai_shaped_and_writes_nothing(key_sdk, live_ogem) -> None:  # type: ignore[no-untyped-def]
    from batches.models import Batch

    client = key_sdk()
    source = upload(client, chat_lines(1))
    notes = upload(client, b"hello\n", purpose="user_data")
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"input_file_id": "file-missing"}, 404, "input_file_id"),
        ({"input_file_id": notes.id}, 400, "input_file_id"),
        ({"endpoint": "/v1/embeddings"}, 400, "endpoint"),
        ({"endpoint": "/v1/images/generations"}, 400, "endpoint"),
        ({"completion_window": "48h"}, 400, "completion_window"),
        ({"metadata": {"k": 1}}, 400, "metadata.k"),
        ({"input_file_id": None}, 400, "input_file_id"),
        ({"surprise": True}, 400, "surprise"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 5}}, 400, None),
        ({"output_expires_after": "soon"}, 400, "output_expires_after"),
    ]
    headers = {"Authorization": f"Bearer {client.api_key}"}
    for change, status, param in cases:
        body = {
            "input_file_id": source.id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            **change,
        }
        body = {name: value for name, value in body.items() if value is not None}
        answer = httpx.post(f"{live_ogem.url}/v1/batches", json=body, headers=headers)
        assert answer.status_code == status, (change, answer.text)
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        if param is not None:
            assert error["param"] == param, change
    assert not Batch.objects.exists()
    for path in ("/v1/batches/batch_nope", "/v1/batches/batch_nope/cancel"):
        method = httpx.post if path.endswith("cancel") else httpx.get
        answer = method(f"{live_ogem.url}{path}", headers=headers)
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "not_found_error"
    answer = httpx.get(f"{live_ogem.url}/v1/batches?limit=0", headers=headers)
    assert answer.status_code == 400


def test_over_the_open_batch_limit_is_429(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings
) -> None:
    install_deployments(slow_mock("slow-chat", latency_ms=200, upstream_model="mock-chat"))
    settings.OGEM_BATCH_OPEN_LIMIT = 1
    settings.OGEM_BATCH_CONCURRENCY = 1
    client = key_sdk()
    first = _create(client, chat_lines(20, model="slow-chat"))
    source = upload(client, chat_lines(1))
    with pytest.raises(openai.RateLimitError) as refused:
        client.with_options(max_retries=0).batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert refused.value.body["type"] == "rate_limit_error"  # type: ignore[index]
    client.batches.cancel(first.id)
    assert _ended(client, first.id).status == "cancelled"
    second = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert _ended(client, second.id).status == "completed"


def test_embeddings_batches_run_too(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    lines = b"".join(
        orjson.dumps(
            {
                "custom_id": f"e-{n}",
                "method": "POST",
                "url": "/v1/embeddings",
                "body": {"model": "mock-embed", "input": f"text {n}"},
            }
        )
        + b"\n"
        for n in range(3)
    )
    done = _ended(client, _create(client, lines, endpoint="/v1/embeddings").id)
    assert done.status == "completed"
    output = jsonl(client.files.content(done.output_file_id).read())
    assert [line["custom_id"] for line in output] == ["e-0", "e-1", "e-2"]
    assert all(line["response"]["body"]["object"] == "list" for line in output)


def test_a_key_revoked_mid_run_fails_its_batch_with_the_partial_output(  # type: ignore[no-untyped-def]
    key_sdk, sdk, install_deployments, settings
) -> None:
    from batches.models import Batch
    from keys.models import VirtualKey
    from keys.services import key_revoke

    install_deployments(slow_mock("slow-chat", latency_ms=200, upstream_model="mock-chat"))
    settings.OGEM_BATCH_CONCURRENCY = 1
    client = key_sdk()
    batch = _create(client, chat_lines(40, model="slow-chat"))
    wait_for(
        lambda: client.batches.retrieve(batch.id).request_counts.completed >= 1,
        what="a first line",
    )
    key_revoke(key=VirtualKey.objects.get(pk=Batch.objects.get(batch_id=batch.id).key_id))
    done = _ended(sdk, batch.id)  # the owner's key is refused now; the master key reads it
    assert done.status == "failed"
    assert done.failed_at is not None
    assert done.errors.data[0].code == "invalid_api_key"
    kept = jsonl(sdk.files.content(done.output_file_id).read())
    assert 1 <= len(kept) == done.request_counts.completed < 40


def test_output_expires_after_sets_the_output_files_expiry(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    source = upload(client, chat_lines(1))
    batch = client.batches.create(
        input_file_id=source.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    done = _ended(client, batch.id)
    output = client.files.retrieve(done.output_file_id)
    assert output.expires_at == output.created_at + 7200

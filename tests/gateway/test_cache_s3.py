"""The response cache's S3 tier (gateway/cache_s3.py, docs/caching.md "Tiers"), through the live
server and the official openai SDK, against moto's S3 server on a private port; the OpenAI
emulator counts the upstream calls."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import openai
import pytest
from moto.server import ThreadedMotoServer

from gateway.cache import cache_local_clear
from gateway.cache_s3 import s3_rest_end
from gateway.config.types import CacheSettings, S3CacheSettings
from tests.emulators.openai_api import OpenAIEmulator
from tests.gateway import test_cache
from tests.gateway.test_cache import _metric, _redis_entries_delete, _redis_entry_wait

cache_on = test_cache.cache_on  # the fixture that turns the cache on

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "ogem-cache-test"
DIMENSIONS = 8192  # three inputs: an answer of about 130 KiB, above the 64 KiB of min_bytes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[str]:
    """moto's S3 in server mode, on a port of its own: its endpoint URL."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    _bucket_client(url).create_bucket(Bucket=BUCKET)
    yield url
    server.stop()


def _bucket_client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _s3_settings(url: str, **fields: Any) -> S3CacheSettings:
    return S3CacheSettings(
        bucket=BUCKET,
        prefix=f"{uuid.uuid4().hex}/",  # each test its own objects
        region="us-east-1",
        endpoint_url=url,
        access_key_id="testing",
        secret_access_key="testing",
        **fields,
    )


@pytest.fixture
def s3_cache(cache_on, moto_s3, settings) -> Iterator[Callable[..., CacheSettings]]:  # type: ignore[no-untyped-def]
    s3_rest_end()

    def turn_on(**fields: Any) -> CacheSettings:
        return cache_on(s3=_s3_settings(moto_s3, **fields))

    yield turn_on
    s3_rest_end()


def _objects(url: str, prefix: str) -> list[str]:
    found = _bucket_client(url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in found.get("Contents") or ()]


def _objects_wait(url: str, prefix: str, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 5
    while len(keys := _objects(url, prefix)) < count:
        assert time.monotonic() < deadline, "the entry never reached S3"
        time.sleep(0.02)
    return keys


def _embed(client: openai.OpenAI, text: str) -> Any:
    return client.embeddings.with_raw_response.create(
        model="emulated", input=[text, f"{text}.", f"{text}.."], dimensions=DIMENSIONS
    )


def _embedding_calls(emulator: OpenAIEmulator) -> int:
    return sum(1 for recorded in emulator.requests if recorded.path.endswith("/embeddings"))


def test_a_large_answer_is_served_from_s3_after_l1_and_redis_forgot_it(  # type: ignore[no-untyped-def]
    s3_cache, emulated_model, sdk, moto_s3, settings
) -> None:
    cache = s3_cache()
    emulator = emulated_model()
    text = f"embed me {uuid.uuid4().hex}"
    first = _embed(sdk, text)
    assert first.headers["x-ogem-cache"] == "miss"
    (key,) = _objects_wait(moto_s3, cache.s3.prefix)
    assert key.startswith(f"{cache.s3.prefix}{settings.OGEM_CACHE_PREFIX}:cache:master:-:")
    stored = _bucket_client(moto_s3).head_object(Bucket=BUCKET, Key=key)
    expires = float(stored["Metadata"]["ogem-expires"])
    assert abs(expires - (time.time() + cache.ttl)) < 30
    # A small answer goes to Redis (when there is one), never to the bucket.
    small = sdk.embeddings.with_raw_response.create(model="emulated", input=text)
    assert small.headers["x-ogem-cache"] == "miss"

    cache_local_clear()
    _redis_entries_delete(settings.OGEM_CACHE_PREFIX)
    second = _embed(sdk, text)
    assert second.headers["x-ogem-cache"] == "hit"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert _embedding_calls(emulator) == 2  # the large one once, the small one once
    # Promoted to L1: the bucket is not asked again.
    with_bucket_gone = s3_cache()  # another prefix: S3 would miss
    assert with_bucket_gone.s3 is not None
    assert _embed(sdk, text).headers["x-ogem-cache"] == "hit"
    assert _objects(moto_s3, cache.s3.prefix) == [key]


def test_an_expired_object_is_a_miss(s3_cache, emulated_model, sdk, moto_s3) -> None:  # type: ignore[no-untyped-def]
    cache = s3_cache()
    emulator = emulated_model()
    text = f"embed me {uuid.uuid4().hex}"
    extra = {"cache": {"ttl": 1}}
    assert _embed_with(sdk, text, extra).headers["x-ogem-cache"] == "miss"
    _objects_wait(moto_s3, cache.s3.prefix)
    time.sleep(1.2)
    cache_local_clear()
    assert _embed_with(sdk, text, extra).headers["x-ogem-cache"] == "miss"
    assert _embedding_calls(emulator) == 2


def _embed_with(client: openai.OpenAI, text: str, extra: dict[str, Any]) -> Any:
    return client.embeddings.with_raw_response.create(
        model="emulated",
        input=[text, f"{text}.", f"{text}.."],
        dimensions=DIMENSIONS,
        extra_body=extra,
    )


def test_purging_an_organization_deletes_its_objects(  # type: ignore[no-untyped-def]
    s3_cache, emulated_model, make_key, live_ogem, master_key, moto_s3
) -> None:
    from rest_framework.test import APIClient

    from keys.models import VirtualKey

    cache = s3_cache()
    emulator = emulated_model()
    mine, theirs = make_key(), make_key()  # two organizations
    clients = [
        openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
        for secret in (mine, theirs)
    ]
    text = f"embed me {uuid.uuid4().hex}"
    for client in clients:
        assert _embed(client, text).headers["x-ogem-cache"] == "miss"
    _objects_wait(moto_s3, cache.s3.prefix, count=2)
    organization = VirtualKey.objects.order_by("-pk")[1].organization_id

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    purged = api.delete(f"/api/v1/cache?organization={organization}")
    assert purged.status_code == 200
    assert purged.json()["deleted"] == 1
    (kept,) = _objects(moto_s3, cache.s3.prefix)
    assert f":cache:o{organization}:" not in kept
    assert _embed(clients[0], text).headers["x-ogem-cache"] == "miss"
    assert _embed(clients[1], text).headers["x-ogem-cache"] == "hit"  # from S3: L1 was dropped
    assert _embedding_calls(emulator) == 3


@pytest.fixture(params=["refused", "silent"])
def dead_s3(request) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """An S3 endpoint that refuses connections, or accepts them and never answers."""
    if request.param == "refused":
        yield f"http://127.0.0.1:{_free_port()}"
        return
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes the handshakes; nobody ever reads
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def test_s3_down_serves_uncached_within_bounded_time(  # type: ignore[no-untyped-def]
    cache_on, dead_s3, emulated_model, sdk, live_ogem, master_key, caplog
) -> None:
    from rest_framework.test import APIClient

    s3_rest_end()
    secret = f"never-logged-{uuid.uuid4().hex}"
    cache_on(
        s3=S3CacheSettings(
            bucket=BUCKET,
            endpoint_url=dead_s3,
            region="us-east-1",
            access_key_id="testing",
            secret_access_key=secret,
            timeout=0.5,
        )
    )
    emulator = emulated_model()
    errors = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    s3_errors = _metric(live_ogem, "ogem_cache_s3_errors_total")
    text = f"embed me {uuid.uuid4().hex}"
    try:
        for _ in range(2):
            cache_local_clear()  # only S3 could have answered
            started = time.monotonic()
            answer = _embed(sdk, text)
            assert time.monotonic() - started < 3
            assert answer.http_response.status_code == 200
            assert answer.headers["x-ogem-cache"] == "miss"
    finally:
        s3_rest_end()
    assert _embedding_calls(emulator) == 2
    now = _metric(live_ogem, "ogem_cache_requests_total", result="error", model="emulated")
    assert now - errors == 2  # the second was not even tried: the tier rests after a failure
    assert _metric(live_ogem, "ogem_cache_s3_errors_total") - s3_errors >= 1
    # A purge that cannot reach the bucket says so (Redis was purged).
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    purged = api.delete("/api/v1/cache?organization=1")
    assert purged.status_code == 503
    assert purged.json() == {"detail": "The S3 tier of the response cache could not be purged."}
    assert "S3 get on bucket" in caplog.text
    assert secret not in caplog.text


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_without_s3_nothing_changes(cache_on, emulated_model, sdk, settings) -> None:  # type: ignore[no-untyped-def]
    """No S3 tier configured: a large answer goes to Redis as before."""
    cache_on()
    emulator = emulated_model()
    text = f"embed me {uuid.uuid4().hex}"
    assert _embed(sdk, text).headers["x-ogem-cache"] == "miss"
    _redis_entry_wait(settings)
    cache_local_clear()
    assert _embed(sdk, text).headers["x-ogem-cache"] == "hit"
    assert _embedding_calls(emulator) == 1

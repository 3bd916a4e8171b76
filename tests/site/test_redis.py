"""REDIS_URL's forms (ogem_site/redis.py): what each points at, what the settings give Django's
cache, Channels and Celery, and a bad one stopping Ogem at start-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ogem_site.redis import (
    CLUSTER,
    SENTINEL,
    SERVER,
    redis_broker_url,
    redis_channel_layer,
    redis_slot_key,
    redis_target,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_server_url_is_left_to_redis_py() -> None:
    for url in ("redis://:pw@h:6380/2", "rediss://h/0?ssl_cert_reqs=none", "unix:///tmp/r.sock"):
        target = redis_target(url)
        assert (target.kind, target.url) == (SERVER, url)
    assert redis_target("rediss://h").tls


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    target = redis_target(
        "redis+sentinel://app:s3cr%40t@s1:26380,s2/mymaster/3?sentinel_password=sp"
    )
    assert target.kind == SENTINEL
    assert target.nodes == (("s1", 26380), ("s2", 26379))
    assert (target.service, target.db) == ("mymaster", 3)
    assert (target.username, target.password) == ("app", "s3cr@t")
    assert target.sentinel_password == "sp"
    assert not target.tls
    assert redis_target("rediss+sentinel://s1/m").tls


def test_a_cluster_url_lists_seed_nodes() -> None:
    target = redis_target("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001")
    assert target.kind == CLUSTER
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    assert target.password == "pw"
    assert redis_target("redis+cluster://h").nodes == (("h", 6379),)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:6379", "scheme 'http'"),
        ("redis+sentinel://s1:26379", "/<service name>"),
        ("redis+sentinel://s1/m/x", "database 'x'"),
        ("redis+cluster://h:7000/2", "only database 0"),
        ("redis+cluster://h:port", "port 'port'"),
        ("redis+cluster://h1,,h2", "empty host"),
    ],
)
def test_a_malformed_url_says_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        redis_target(url)


def test_celery_and_channels_follow_a_server_and_a_sentinel_not_a_cluster() -> None:
    server = redis_target("redis://h:6379/1")
    assert redis_broker_url(server) == ("redis://h:6379/1", {})
    assert redis_channel_layer(server, prefix="ogem")["CONFIG"] == {
        "prefix": "ogem:asgi",
        "hosts": ["redis://h:6379/1"],
    }
    sentinel = redis_target("redis+sentinel://:pw@s1,s2:26380/mymaster/2?sentinel_password=sp")
    assert redis_broker_url(sentinel) == (
        "sentinel://:pw@s1:26379/2;sentinel://:pw@s2:26380/2",
        {"master_name": "mymaster", "sentinel_kwargs": {"password": "sp"}},
    )
    host = redis_channel_layer(sentinel, prefix="ogem")["CONFIG"]["hosts"][0]
    assert (host["master_name"], host["db"], host["password"]) == ("mymaster", 2, "pw")
    assert host["sentinels"] == [("s1", 26379), ("s2", 26380)]
    assert host["sentinel_kwargs"] == {"password": "sp", "username": None}
    cluster = redis_target("redis+cluster://h:7000")
    assert redis_channel_layer(cluster, prefix="ogem") == {
        "BACKEND": "channels.layers.InMemoryChannelLayer"
    }
    with pytest.raises(ValueError, match="CELERY_BROKER_URL"):
        redis_broker_url(cluster)


def test_the_hot_path_keys_share_a_hash_tag_on_a_cluster_only(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_CACHE_PREFIX = "acme"
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert redis_slot_key("leases") == "acme:leases"
    settings.REDIS_URL = "redis+cluster://127.0.0.1:7000"
    assert redis_slot_key("leases") == "{acme}:leases"
    settings.OGEM_CACHE_PREFIX = "other"
    assert redis_slot_key("usage") == "{other}:usage"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"REDIS_URL": "redis+cluster://127.0.0.1:7000"}, "set CELERY_BROKER_URL"),
        ({"REDIS_URL": "redis+sentinel://127.0.0.1"}, "/<service name>"),
        ({"REDIS_URL": "redis://h", "OGEM_REDIS_FAILURE_POLICY": "maybe"}, "`open` or `closed`"),
        ({"REDIS_URL": "redis://h", "OGEM_REDIS_TIMEOUT": "half"}, "not a number"),
    ],
)
def test_ogem_refuses_to_start_on_a_bad_redis_setting(
    environment: dict[str, str], message: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.base",
        "OGEM_VAR_DIR": str(tmp_path),
        **environment,
    }
    env.pop("CELERY_BROKER_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_a_cluster_with_its_own_broker_starts(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.base",
        "OGEM_VAR_DIR": str(tmp_path),
        "REDIS_URL": "redis+cluster://127.0.0.1:7000",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
        "OGEM_GOVERNANCE_FAIL_OPEN": "false",  # the older name of the failure policy
    }
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.CACHES['default']['BACKEND'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_BROKER_URL, s.OGEM_REDIS_FAILURE_POLICY)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django_redis.cache.RedisCache",
        "channels.layers.InMemoryChannelLayer",
        "redis://127.0.0.1:6379/5",
        "closed",
    ]


def test_the_django_cache_is_a_miss_while_redis_is_away(settings) -> None:  # type: ignore[no-untyped-def]
    """django-redis with IGNORE_EXCEPTIONS, on Ogem's client and its timeouts: an unreachable
    Redis answers every read with the default within the connect timeout, and writes are
    dropped, never raised into a portal or admin page."""
    from django_redis.cache import RedisCache

    from ogem_site.redis import redis_clients_forget

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_clients_forget()
    try:
        cache = RedisCache(
            settings.REDIS_URL,
            {
                "OPTIONS": {
                    "CLIENT_CLASS": "ogem_site.redis.OgemCacheClient",
                    "IGNORE_EXCEPTIONS": True,
                }
            },
        )
        started = time.monotonic()
        cache.set("session", "value")
        assert cache.get("session", "fallback") == "fallback"
        assert cache.get_many(["a", "b"]) == {}
        assert time.monotonic() - started < 2
    finally:
        redis_clients_forget()

"""What one identity provider token costs to validate: /v1's own async path (gateway/jwt_auth.py)
against mozilla-django-oidc's DRF class on /api/v1 (tenants/authentication.py), both against the
local IdP of conftest.py. The figures are in docs/sso.md.

Not part of `make test` (the file name does not start with test_); run it alone:
`pytest tests/oidc/measure_tokens.py -s`. Each row is the best of five runs: wall time, and the
CPU time of the measuring thread (the IdP's thread, PostgreSQL and sync_to_async's threads
excluded), which a busy machine disturbs less.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from rest_framework.test import APIRequestFactory

from gateway import jwt_auth
from gateway.jwt_auth import jwt_cache_clear, jwt_caller_authenticate
from tenants.authentication import OIDCAuthentication, userinfo_cache_clear
from tenants.oidc import oidc_cache_clear, oidc_principal, oidc_token_validate
from tests.factories import OrganizationFactory, TeamFactory
from tests.oidc.conftest import LocalIdP

RUNS = 5


def _figures(wall: float, cpu: float) -> str:
    return f"wall {wall * 1e6:,.0f} µs, thread CPU {cpu * 1e6:,.0f} µs"


def _each(call: Callable[[int], object], n: int) -> str:
    runs = []
    for _ in range(RUNS):
        started, started_cpu = time.perf_counter(), time.thread_time()
        for i in range(n):
            call(i)
        runs.append(((time.perf_counter() - started) / n, (time.thread_time() - started_cpu) / n))
    return _figures(min(r[0] for r in runs), min(r[1] for r in runs))


def _each_async(
    loop: asyncio.AbstractEventLoop, call: Callable[[int], Awaitable[object]], n: int
) -> str:
    async def run() -> tuple[float, float]:
        started, started_cpu = time.perf_counter(), time.thread_time()
        for i in range(n):
            await call(i)
        return (time.perf_counter() - started) / n, (time.thread_time() - started_cpu) / n

    runs = [loop.run_until_complete(run()) for _ in range(RUNS)]
    return _figures(min(r[0] for r in runs), min(r[1] for r in runs))


def _cold() -> None:
    oidc_cache_clear()
    jwt_cache_clear()
    userinfo_cache_clear()


@pytest.mark.django_db(transaction=True)
def test_measure_token_validation(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_OIDC_OPAQUE_TOKENS = True
    organization = OrganizationFactory(slug="acme")
    TeamFactory(organization=organization, slug="ml")
    claims = {"ogem_org": "acme", "ogem_teams": ["ml"], "ogem_role": "gw-admins"}
    n = 300
    tokens = [idp.token(sub=f"svc-{i}", **claims) for i in range(n)]
    opaque = idp.opaque_token(**claims)
    factory = APIRequestFactory()
    loop = asyncio.new_event_loop()

    async def v1(token: str) -> None:
        assert await jwt_caller_authenticate(token=token) is not None

    async def v1_new_token(i: int) -> None:
        jwt_auth._tokens.clear()  # the token cache only: slugs and the JWKS stay
        await v1(tokens[i])

    async def v1_new_token_and_slugs(i: int) -> None:
        jwt_cache_clear()
        await v1(tokens[i])

    async def v1_cold(i: int) -> None:
        _cold()
        await v1(tokens[i])

    def api(token: str) -> None:
        request = factory.get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert OIDCAuthentication().authenticate(request) is not None

    def api_cold(i: int) -> None:
        _cold()
        api(tokens[i])

    loop.run_until_complete(v1(tokens[0]))  # the JWKS and the slugs, fetched once
    api(tokens[0])
    rows = {
        "/v1, a known token": _each_async(loop, lambda i: v1(tokens[0]), n),
        "/v1, a new token (JWKS and slugs cached)": _each_async(loop, v1_new_token, n),
        "/v1, a new token, slugs resolved": _each_async(loop, v1_new_token_and_slugs, 100),
        "/v1, cold (JWKS fetched)": _each_async(loop, v1_cold, 30),
        "/api/v1, mozilla's class, a JWT (JWKS cached)": _each(lambda i: api(tokens[i]), n),
        "/api/v1, the same checks without mozilla's class": _each(
            lambda i: oidc_principal(claims=oidc_token_validate(token=tokens[i])), n
        ),
        "/api/v1, mozilla's class, cold (JWKS fetched)": _each(api_cold, 30),
        "/api/v1, mozilla's class, an opaque token (userinfo)": _each(lambda i: api(opaque), 100),
    }
    loop.close()
    for name, figures in rows.items():
        print(f"{name}: {figures}")

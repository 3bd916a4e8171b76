"""`Ogem` (sync) and `AsyncOgem`: the same resources, sent by httpx with retries."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from ogem_sdk import resources
from ogem_sdk.errors import OgemConnectionError
from ogem_sdk.transport import Call, RetryPolicy, answer_read, clean_params, page_next

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "ogem-sdk-python/0.1.0"


def since_start(since: str) -> date:
    """`30d`, `2w` or `12h` back from now, as the first UTC day of a spend query."""
    units = {"d": "days", "w": "weeks", "h": "hours"}
    amount, unit = since[:-1], since[-1:]
    if unit not in units or not amount.isdigit():
        raise ValueError(f"since must look like 30d, 2w or 12h, not {since!r}")
    return (datetime.now(UTC) - timedelta(**{units[unit]: int(amount)})).date()


def spend_call(
    *,
    group_by: str,
    since: str | None,
    start: date | str | None,
    end: date | str | None,
    filters: dict[str, Any],
) -> Call:
    if since is not None:
        if start is not None:
            raise ValueError("give since or start, not both")
        start = since_start(since)
    params = {"group_by": group_by, "start": start, "end": end, **filters}
    return Call("GET", f"{resources.API}spend/", params)


def _attach(
    client: Any,
    http: httpx.Client | httpx.AsyncClient,
    *,
    base_url: str | None,
    api_key: str | None,
) -> None:
    """Point `http` at Ogem with the key, and give `client` the resources it sends."""
    url = base_url or os.environ.get("OGEM_BASE_URL") or "http://127.0.0.1:8000"
    key = api_key or os.environ.get("OGEM_API_KEY") or ""
    if not key:
        raise ValueError("an API key is needed: api_key= or OGEM_API_KEY")
    http.base_url = url.rstrip("/")
    http.headers.update(
        {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": USER_AGENT}
    )
    client.organizations = resources.Organizations(client)
    client.teams = resources.Teams(client)
    client.users = resources.Users(client)
    client.memberships = resources.Memberships(client)
    client.keys = resources.Keys(client)
    client.budgets = resources.Budgets(client)
    client.models = resources.Models(client)
    client.batches = resources.Batches(client)
    client.files = resources.Files(client)
    client.assistants = resources.Assistants(client)
    client.threads = resources.Threads(client)
    client.assistant_runs = resources.AssistantRuns(client)
    client.fine_tuning_jobs = resources.FineTuningJobs(client)
    client.cache = resources.Cache(client)
    client.guardrails = resources.Guardrails(client)
    client.analytics = resources.Analytics(client)


def _outcome(
    client: Ogem | AsyncOgem,
    call: Call,
    *,
    attempt: int,
    response: httpx.Response | None,
    error: Exception | None = None,
) -> tuple[bool, Any]:
    """(True, the answer) when the call is settled, (False, seconds to wait) to retry it."""
    wait = client.retry.wait_for(call=call, attempt=attempt, response=response)
    if wait is not None:
        return False, wait
    if response is None:
        raise OgemConnectionError(
            f"Ogem could not be reached ({call.method} {call.path}): {error}"
        ) from error
    return True, answer_read(response)


class Ogem:
    """The management API, synchronously. `base_url` and `api_key` default to OGEM_BASE_URL and
    OGEM_API_KEY; the key is a master key or a user's key with management rights."""

    organizations: resources.Organizations[Any, Iterator[Any]]
    teams: resources.Teams[Any, Iterator[Any]]
    users: resources.Users[Any, Iterator[Any]]
    memberships: resources.Memberships[Any, Iterator[Any]]
    keys: resources.Keys[Any, Iterator[Any]]
    budgets: resources.Budgets[Any, Iterator[Any]]
    models: resources.Models[Any, Iterator[Any]]
    batches: resources.Batches[Any, Iterator[Any]]
    files: resources.Files[Any, Iterator[Any]]
    assistants: resources.Assistants[Any, Iterator[Any]]
    threads: resources.Threads[Any, Iterator[Any]]
    assistant_runs: resources.AssistantRuns[Any, Iterator[Any]]
    fine_tuning_jobs: resources.FineTuningJobs[Any, Iterator[Any]]
    cache: resources.Cache[Any, Iterator[Any]]
    guardrails: resources.Guardrails[Any, Iterator[Any]]
    analytics: resources.Analytics[Any, Iterator[Any]]

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.retry = RetryPolicy(max_retries=max_retries)
        self._http = http_client or httpx.Client(timeout=timeout)
        _attach(self, self._http, base_url=base_url, api_key=api_key)

    def send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=clean_params(call.params), json=call.json
                )
            except httpx.TransportError as exc:
                settled, value = _outcome(self, call, attempt=attempt, response=None, error=exc)
            else:
                settled, value = _outcome(self, call, attempt=attempt, response=response)
            if settled:
                return value
            time.sleep(value)
            attempt += 1

    def paginate(self, call: Call) -> Iterator[Any]:
        following: Call | None = call
        offset = 0
        while following is not None:
            rows, following = page_next(following, self.send(following), offset=offset)
            offset += len(rows)
            yield from rows

    def spend(
        self,
        *,
        group_by: str = "key",
        since: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        **filters: Any,
    ) -> Any:
        """Spend and tokens per `group_by` (key, team, organization, model, ...), from `since`
        (`30d`) or `start` to `end`, filtered by `team=`, `key=`, `model=`, `organization=`."""
        return self.send(
            spend_call(group_by=group_by, since=since, start=start, end=end, filters=filters)
        )

    def routing_status(self) -> Any:
        return self.send(Call("GET", f"{resources.API}routing/status/"))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Ogem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncOgem:
    """The management API with asyncio: every method is awaited, `list()` is iterated with
    `async for`."""

    organizations: resources.Organizations[Awaitable[Any], AsyncIterator[Any]]
    teams: resources.Teams[Awaitable[Any], AsyncIterator[Any]]
    users: resources.Users[Awaitable[Any], AsyncIterator[Any]]
    memberships: resources.Memberships[Awaitable[Any], AsyncIterator[Any]]
    keys: resources.Keys[Awaitable[Any], AsyncIterator[Any]]
    budgets: resources.Budgets[Awaitable[Any], AsyncIterator[Any]]
    models: resources.Models[Awaitable[Any], AsyncIterator[Any]]
    batches: resources.Batches[Awaitable[Any], AsyncIterator[Any]]
    files: resources.Files[Awaitable[Any], AsyncIterator[Any]]
    assistants: resources.Assistants[Awaitable[Any], AsyncIterator[Any]]
    threads: resources.Threads[Awaitable[Any], AsyncIterator[Any]]
    assistant_runs: resources.AssistantRuns[Awaitable[Any], AsyncIterator[Any]]
    fine_tuning_jobs: resources.FineTuningJobs[Awaitable[Any], AsyncIterator[Any]]
    cache: resources.Cache[Awaitable[Any], AsyncIterator[Any]]
    guardrails: resources.Guardrails[Awaitable[Any], AsyncIterator[Any]]
    analytics: resources.Analytics[Awaitable[Any], AsyncIterator[Any]]

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = RetryPolicy(max_retries=max_retries)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        _attach(self, self._http, base_url=base_url, api_key=api_key)

    def send(self, call: Call) -> Awaitable[Any]:
        return self._send(call)

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, params=clean_params(call.params), json=call.json
                )
            except httpx.TransportError as exc:
                settled, value = _outcome(self, call, attempt=attempt, response=None, error=exc)
            else:
                settled, value = _outcome(self, call, attempt=attempt, response=response)
            if settled:
                return value
            await asyncio.sleep(value)
            attempt += 1

    async def paginate(self, call: Call) -> AsyncIterator[Any]:
        following: Call | None = call
        offset = 0
        while following is not None:
            rows, following = page_next(following, await self._send(following), offset=offset)
            offset += len(rows)
            for row in rows:
                yield row

    async def spend(
        self,
        *,
        group_by: str = "key",
        since: str | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        **filters: Any,
    ) -> Any:
        """As `Ogem.spend`."""
        return await self._send(
            spend_call(group_by=group_by, since=since, start=start, end=end, filters=filters)
        )

    async def routing_status(self) -> Any:
        return await self._send(Call("GET", f"{resources.API}routing/status/"))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncOgem:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

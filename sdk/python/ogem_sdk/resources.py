"""The management API's resources, declared once for both clients.

A resource method builds a `Call`; the client it belongs to sends it (`Ogem` returns the answer,
`AsyncOgem` an awaitable of it). `OPERATIONS` lists every (method, path) the package calls: a
test compares it with `/api/v1/schema/`, so that the API and the package cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from ogem_sdk.transport import PAGE_SIZE, Call

Result = TypeVar("Result", covariant=True)
Rows = TypeVar("Rows", covariant=True)

API = "/api/v1/"


class Sender(Protocol[Result, Rows]):
    def send(self, call: Call) -> Result: ...

    def paginate(self, call: Call) -> Rows: ...


def _body(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not ...}


class Listing(Generic[Result, Rows]):
    """A resource with list, get and delete."""

    name = ""

    def __init__(self, client: Sender[Result, Rows]) -> None:
        self._client = client
        self.path = f"{API}{self.name}/"

    def list(self, *, page_size: int = PAGE_SIZE, **filters: Any) -> Rows:
        """Every object the caller may see (fetched page by page), filtered by the resource's
        query parameters (`team=`, `search=`, `ordering=`, ...)."""
        return self._client.paginate(Call("GET", self.path, {**filters, "limit": page_size}))

    def get(self, id: int | str) -> Result:
        return self._client.send(Call("GET", f"{self.path}{id}/"))

    def delete(self, id: int | str) -> Result:
        return self._client.send(Call("DELETE", f"{self.path}{id}/"))


class Collection(Listing[Result, Rows]):
    """A resource that is also created, updated (PATCH) and replaced (PUT)."""

    def create(self, **fields: Any) -> Result:
        return self._client.send(Call("POST", self.path, json=_body(fields)))

    def update(self, id: int | str, **fields: Any) -> Result:
        """Change the given fields only."""
        return self._client.send(Call("PATCH", f"{self.path}{id}/", json=_body(fields)))

    def replace(self, id: int | str, **fields: Any) -> Result:
        """Write the whole object (fields left out take their defaults)."""
        return self._client.send(Call("PUT", f"{self.path}{id}/", json=_body(fields)))


class Organizations(Collection[Result, Rows]):
    name = "organizations"

    def scim_tokens(self, id: int | str) -> Result:
        """The organization's SCIM tokens (prefixes and dates, never the secrets)."""
        return self._client.send(Call("GET", f"{self.path}{id}/scim-tokens/"))

    def scim_token_create(self, id: int | str, **fields: Any) -> Result:
        """A new SCIM token; its secret is in this answer only."""
        return self._client.send(Call("POST", f"{self.path}{id}/scim-tokens/", json=_body(fields)))


class Teams(Collection[Result, Rows]):
    name = "teams"


class Users(Collection[Result, Rows]):
    name = "users"


class Memberships(Collection[Result, Rows]):
    name = "memberships"


class Keys(Collection[Result, Rows]):
    """Virtual keys. `create` and `rotate` answer the secret (`key`) once."""

    name = "keys"

    def revoke(self, id: int | str) -> Result:
        """/v1 refuses the key from now on."""
        return self._client.send(Call("POST", f"{self.path}{id}/revoke/"))

    def rotate(self, id: int | str, *, grace_period_seconds: int | None = None) -> Result:
        """A new secret; the old one keeps working for the grace period."""
        body = (
            {} if grace_period_seconds is None else {"grace_period_seconds": grace_period_seconds}
        )
        return self._client.send(Call("POST", f"{self.path}{id}/rotate/", json=body))


class Budgets(Collection[Result, Rows]):
    name = "budgets"

    def reset(self, id: int | str) -> Result:
        """Start a new period now: spend back to zero."""
        return self._client.send(Call("POST", f"{self.path}{id}/reset/"))


class Models(Collection[Result, Rows]):
    """Database deployments (model groups and where they are served)."""

    name = "models"

    def health(self) -> Result:
        return self._client.send(Call("GET", f"{self.path}health/"))


class Batches(Collection[Result, Rows]):
    name = "batches"


class Assistants(Collection[Result, Rows]):
    """Assistants made on /v1/assistants, per tenant."""

    name = "assistants"


class Threads(Collection[Result, Rows]):
    name = "threads"


class AssistantRuns(Collection[Result, Rows]):
    """Runs of assistants on threads, with their status and usage."""

    name = "assistant-runs"


class FineTuningJobs(Collection[Result, Rows]):
    """Fine-tuning jobs made on /v1/fine_tuning/jobs, with their cost."""

    name = "fine_tuning/jobs"


class Files(Listing[Result, Rows]):
    """Files uploaded on /v1/files (uploads go through the OpenAI SDK)."""

    name = "files"


class Cache(Generic[Result, Rows]):
    def __init__(self, client: Sender[Result, Rows]) -> None:
        self._client = client

    def stats(self, **filters: Any) -> Result:
        """Hits, misses, hit rate, tokens and cost saved (`group_by=`, `start=`, `end=`...)."""
        return self._client.send(Call("GET", f"{API}cache/stats/", filters))

    def purge(self, **scope: Any) -> Result:
        """Empty a tenant's response-cache namespace (`organization=`, `team=`, `key=`...)."""
        return self._client.send(Call("DELETE", f"{API}cache/", scope))


class Guardrails(Generic[Result, Rows]):
    def __init__(self, client: Sender[Result, Rows]) -> None:
        self._client = client

    def decisions(self, **filters: Any) -> Result:
        """The guardrails' decisions on the caller's requests (no matched text is ever kept)."""
        return self._client.send(Call("GET", f"{API}guardrails/decisions/", filters))


class Analytics(Generic[Result, Rows]):
    """Charts' figures over time (`start=`, `end=`, `bucket="hour"|"day"`, `team=`...)."""

    def __init__(self, client: Sender[Result, Rows]) -> None:
        self._client = client

    def performance(self, **query: Any) -> Result:
        """Latency and TTFT p50/p95, error rate, throughput per model (`group_by="deployment"`)."""
        return self._client.send(Call("GET", f"{API}analytics/performance/", query))

    def usage(self, **query: Any) -> Result:
        """Requests, tokens and spend per team (`group_by="model"`: per model)."""
        return self._client.send(Call("GET", f"{API}analytics/usage/", query))

    def cache(self, **query: Any) -> Result:
        """The response cache's hit rate and savings over time and per model."""
        return self._client.send(Call("GET", f"{API}analytics/cache/", query))

    def insights(self, **query: Any) -> Result:
        """Cheaper models of the same class per team, unused keys, budgets' burn-down."""
        return self._client.send(Call("GET", f"{API}analytics/insights/", query))


# Every (method, path) the package calls, in the schema's spelling (tests/sdk checks it).
OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        (method, f"{API}{name}/" + suffix)
        for name in (
            "organizations",
            "teams",
            "users",
            "memberships",
            "keys",
            "budgets",
            "models",
            "batches",
            "assistants",
            "threads",
            "assistant-runs",
            "fine_tuning/jobs",
        )
        for method, suffix in (
            ("GET", ""),
            ("POST", ""),
            ("GET", "{id}/"),
            ("PUT", "{id}/"),
            ("PATCH", "{id}/"),
            ("DELETE", "{id}/"),
        )
    }
    | {
        ("GET", f"{API}files/"),
        ("GET", f"{API}files/{{file_id}}/"),
        ("DELETE", f"{API}files/{{file_id}}/"),
        ("GET", f"{API}organizations/{{id}}/scim-tokens/"),
        ("POST", f"{API}organizations/{{id}}/scim-tokens/"),
        ("POST", f"{API}keys/{{id}}/revoke/"),
        ("POST", f"{API}keys/{{id}}/rotate/"),
        ("POST", f"{API}budgets/{{id}}/reset/"),
        ("GET", f"{API}models/health/"),
        ("GET", f"{API}cache/stats/"),
        ("DELETE", f"{API}cache/"),
        ("GET", f"{API}spend/"),
        ("GET", f"{API}routing/status/"),
        ("GET", f"{API}guardrails/decisions/"),
        ("GET", f"{API}analytics/performance/"),
        ("GET", f"{API}analytics/usage/"),
        ("GET", f"{API}analytics/cache/"),
        ("GET", f"{API}analytics/insights/"),
    }
)

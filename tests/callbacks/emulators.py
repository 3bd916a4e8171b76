"""Emulators of the callback platforms' ingestion APIs, written from their public references,
each validating the shape its vendor accepts and recording what it was sent.

- Langfuse: `POST /api/public/ingestion`, HTTP basic auth (public key, secret key: one project
  per pair), `{"batch": [{"id", "timestamp", "type", "body"}], "metadata"?}`; `trace-create`
  bodies need `id`; `generation-create` bodies need `id`, `traceId`, ISO `startTime`, and
  `usage` / `usageDetails` / `costDetails` numbers when present. It answers 207 with
  `{"successes": [{"id", "status": 201}], "errors": [...]}`; a bad event is an error entry with
  status 400; a wrong key is 401.
- LangSmith: `POST /runs/batch`, `x-api-key`, `{"post": [run], "patch": [run]}`; a run needs a
  UUID `id` and `trace_id`, a `dotted_order` (`<%Y%m%dT%H%M%S%f>Z<id>` for a root run), `name`,
  a `run_type` of LangSmith's, ISO `start_time`, `inputs`, and `session_name` or `session_id`.
  It answers 202 `{}`; a bad run is 422; a wrong key is 401.
- A webhook receiver: `POST /hook`, checking `X-Ogem-Signature` when it has a secret.

`hang` makes any of them hold every request (a platform that accepts connections and never
answers) until `reset`. Scripted `Fault`s answer the next requests instead.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import re
import uuid
from typing import Any

from aiohttp import web

from billing.alerts import alert_signature
from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
LANGFUSE_TYPES = {
    "trace-create",
    "generation-create",
    "generation-update",
    "span-create",
    "span-update",
    "event-create",
    "score-create",
    "sdk-log",
}
RUN_TYPES = {"tool", "chain", "llm", "retriever", "embedding", "prompt", "parser"}


def _iso(value: Any) -> bool:
    if not isinstance(value, str) or not _ISO.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class _Holding(ScriptedEmulator):
    def __init__(self) -> None:
        super().__init__()
        self.hang = False

    async def held(self) -> None:
        """Hold while `hang` is set (a minute at most); `reset` releases."""
        for _ in range(1200):
            if not self.hang:
                return
            await asyncio.sleep(0.05)

    def reset(self) -> None:
        super().reset()
        self.hang = False


class LangfuseEmulator(_Holding):
    name = "langfuse-emulator"

    def __init__(self, projects: dict[str, tuple[str, str]]) -> None:
        """`projects`: public key -> (secret key, project name)."""
        super().__init__()
        self.projects = projects
        self.events: dict[str, list[dict[str, Any]]] = {}

    def reset(self) -> None:
        super().reset()
        self.events = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/public/ingestion", self._ingest)

    def generations(self, project: str) -> list[dict[str, Any]]:
        return [e["body"] for e in self.events.get(project, []) if e["type"] == "generation-create"]

    def traces(self, project: str) -> list[dict[str, Any]]:
        return [e["body"] for e in self.events.get(project, []) if e["type"] == "trace-create"]

    async def _ingest(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        await self.held()
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        project = self._project(received.headers.get("authorization", ""))
        if project is None:
            return json_response({"message": "Invalid credentials"}, status=401)
        body = received.body
        if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
            return json_response({"message": "Invalid request data", "error": "batch"}, status=400)
        successes, errors = [], []
        for event in body["batch"]:
            problem = _langfuse_problem(event)
            event_id = event.get("id") if isinstance(event, dict) else None
            if problem is not None:
                errors.append({"id": event_id, "status": 400, "message": problem})
                continue
            self.events.setdefault(project, []).append(event)
            successes.append({"id": event_id, "status": 201})
        return json_response({"successes": successes, "errors": errors}, status=207)

    def _project(self, header: str) -> str | None:
        if not header.startswith("Basic "):
            return None
        try:
            public, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        found = self.projects.get(public)
        if found is None or found[0] != secret:
            return None
        return found[1]


def _number_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    )


def _langfuse_problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "event must be an object"
    if not isinstance(event.get("id"), str) or not event["id"]:
        return "id is required"
    if not _iso(event.get("timestamp")):
        return "timestamp must be an ISO 8601 datetime"
    if event.get("type") not in LANGFUSE_TYPES:
        return f"unknown event type {event.get('type')!r}"
    body = event.get("body")
    if not isinstance(body, dict):
        return "body must be an object"
    if event["type"] == "trace-create":
        if not isinstance(body.get("id"), str):
            return "trace id is required"
        if "tags" in body and not (
            isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])
        ):
            return "tags must be strings"
    if event["type"] == "generation-create":
        if not isinstance(body.get("id"), str) or not isinstance(body.get("traceId"), str):
            return "generation id and traceId are required"
        for name in ("startTime", "endTime", "completionStartTime"):
            if name in body and not _iso(body[name]):
                return f"{name} must be an ISO 8601 datetime"
        usage = body.get("usage")
        if usage is not None:
            if not isinstance(usage, dict) or usage.get("unit") not in (
                None,
                "TOKENS",
                "CHARACTERS",
                "MILLISECONDS",
                "SECONDS",
                "IMAGES",
                "REQUESTS",
            ):
                return "usage.unit is not one of Langfuse's units"
            numbers = {k: v for k, v in usage.items() if k != "unit"}
            if not _number_map(numbers):
                return "usage values must be numbers"
        for name in ("usageDetails", "costDetails"):
            if name in body and not _number_map(body[name]):
                return f"{name} values must be numbers"
        if body.get("level") not in (None, "DEBUG", "DEFAULT", "WARNING", "ERROR"):
            return "level is not one of Langfuse's levels"
    return None


class LangSmithEmulator(_Holding):
    name = "langsmith-emulator"

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.runs: list[dict[str, Any]] = []

    def reset(self) -> None:
        super().reset()
        self.runs = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/runs/batch", self._batch)

    async def _batch(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        await self.held()
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        if received.headers.get("x-api-key") != self.api_key:
            return json_response({"detail": "Invalid token"}, status=401)
        body = received.body
        if not isinstance(body, dict) or set(body) - {"post", "patch"}:
            return json_response({"detail": "expected {post, patch}"}, status=422)
        runs = [*(body.get("post") or []), *(body.get("patch") or [])]
        for run in runs:
            problem = _run_problem(run)
            if problem is not None:
                return json_response({"detail": problem}, status=422)
        self.runs.extend(body.get("post") or [])
        return json_response({}, status=202)


def _uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _run_problem(run: Any) -> str | None:
    if not isinstance(run, dict):
        return "run must be an object"
    if not _uuid(run.get("id")) or not _uuid(run.get("trace_id")):
        return "id and trace_id must be UUIDs"
    dotted = run.get("dotted_order")
    if run["id"] == run["trace_id"]:
        expected = re.compile(r"^\d{8}T\d{6}\d{6}Z" + re.escape(str(run["id"])) + "$")
        if not isinstance(dotted, str) or not expected.match(dotted):
            return "dotted_order of a root run must be <time>Z<id>"
    if not isinstance(run.get("name"), str) or not run["name"]:
        return "name is required"
    if run.get("run_type") not in RUN_TYPES:
        return "run_type is not one of LangSmith's"
    if not _iso(run.get("start_time")):
        return "start_time must be an ISO 8601 datetime"
    if "end_time" in run and not _iso(run["end_time"]):
        return "end_time must be an ISO 8601 datetime"
    if not isinstance(run.get("inputs"), dict):
        return "inputs must be an object"
    if "outputs" in run and not isinstance(run["outputs"], dict):
        return "outputs must be an object"
    if not run.get("session_name") and not run.get("session_id"):
        return "session_name or session_id is required"
    return None


class WebhookEmulator(_Holding):
    name = "webhook-emulator"

    def __init__(self, secret: str = "") -> None:
        super().__init__()
        self.secret = secret
        self.events: list[dict[str, Any]] = []

    def reset(self) -> None:
        super().reset()
        self.events = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hook", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        await self.held()
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        if self.secret:
            timestamp = received.headers.get("x-ogem-timestamp", "")
            expected = alert_signature(secret=self.secret, timestamp=timestamp, body=received.raw)
            if received.headers.get("x-ogem-signature") != expected:
                return json_response({"error": "bad signature"}, status=401)
        if not isinstance(received.body, list):
            return json_response({"error": "expected a JSON array"}, status=400)
        self.events.extend(received.body)
        return json_response({"ok": True})

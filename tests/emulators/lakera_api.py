"""A local emulator of Lakera Guard's screening API, written from its reference: `POST /v2/guard`
with `Authorization: Bearer KEY` and `{"messages": [{"role", "content"}], "project_id"?,
"breakdown"?, "payload"?, "metadata"?, "dev_info"?}`; it answers `{"flagged", "metadata":
{"request_uuid"}}` and, with `breakdown: true`, one entry per detector of the project's policy
(`project_id`, `policy_id`, `detector_id`, `detector_type`, `detected`, `message_id`). Its
detectors: `prompt_attack` (a message asking to ignore previous instructions) and
`moderated_content/hate` (a message containing "hateful"). Unknown fields or a bad message are
400; a missing or wrong key is 401. Scripted `Fault`s answer the next requests instead.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "lakera-emulator-key"
FIELDS = {"messages", "project_id", "breakdown", "payload", "metadata", "dev_info"}
ROLES = {"system", "user", "assistant", "tool", "developer"}
DETECTORS = (
    ("prompt_attack", "ignore previous instructions"),
    ("moderated_content/hate", "hateful"),
)


class LakeraEmulator(ScriptedEmulator):
    name = "lakera-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/guard", self._guard)

    async def _guard(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        if received.headers.get("authorization") != f"Bearer {API_KEY}":
            return json_response({"error": "Unauthorized"}, status=401)
        problem = _validate(received.body)
        if problem is not None:
            return json_response({"error": problem}, status=400)
        body: dict[str, Any] = received.body
        texts = [str(m["content"]).lower() for m in body["messages"]]
        results = [
            {
                "project_id": body.get("project_id") or "project-default",
                "policy_id": "policy-default",
                "detector_id": f"detector-{kind.replace('/', '-')}",
                "detector_type": kind,
                "detected": any(phrase in text for text in texts),
                "message_id": 0,
            }
            for kind, phrase in DETECTORS
        ]
        answer: dict[str, Any] = {
            "flagged": any(r["detected"] for r in results),
            "metadata": {"request_uuid": str(uuid.uuid4())},
        }
        if body.get("breakdown"):
            answer["breakdown"] = results
        return json_response(answer)


def _validate(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    unknown = set(body) - FIELDS
    if unknown:
        return f"Unknown fields: {sorted(unknown)}"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return "each message needs a role of system, user, assistant, tool or developer"
        if not isinstance(message.get("content"), str):
            return "message content must be a string"
    return None

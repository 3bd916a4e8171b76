"""Local emulators of the alert channels, written from their public references.

- Slack incoming webhooks: `POST /services/T../B../X..` with a JSON body holding `text` (the
  fallback, required) and optionally `blocks` (each with a `type`; a `section`'s `text` an object
  of `type` `mrkdwn` or `plain_text` and `text` up to 3000 characters). Slack answers 200 `ok`,
  or 400 `invalid_payload` / `no_text`, 404 `no_service` for an unknown hook.
- PagerDuty Events API v2: `POST /v2/enqueue` with `routing_key` (32 characters),
  `event_action` (trigger, acknowledge or resolve) and `dedup_key` (at most 255 characters; a
  trigger without one gets a new one); a trigger needs `payload` with `summary` (at most 1024
  characters), `source` and `severity` (critical, error, warning or info). It answers 202
  `{"status": "success", "message": "Event processed", "dedup_key"}`, or 400
  `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`.
  `incidents` keeps the open alerts by dedup key, as PagerDuty does.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.emulators.vault_api import JsonEmulator, Reply, Seen

SLACK_PATH = "/services/T0000/B0000/XXXXXXXXXXXXXXXX"
PAGERDUTY_ROUTING_KEY = "R0123456789abcdef0123456789abcde"


class SlackWebhookEmulator(JsonEmulator):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    def handle(self, request: Seen) -> Reply:
        if request.method != "POST" or request.path != SLACK_PATH:
            return 404, "no_service", {}
        try:
            body = json.loads(request.body)
        except ValueError:
            return 400, "invalid_payload", {}
        if not isinstance(body, dict):
            return 400, "invalid_payload", {}
        if not isinstance(body.get("text"), str) or not body["text"]:
            return 400, "no_text", {}
        for block in body.get("blocks", []):
            text = block.get("text") if isinstance(block, dict) else None
            if block.get("type") != "section" or not isinstance(text, dict):
                return 400, "invalid_blocks", {}
            if text.get("type") not in ("mrkdwn", "plain_text") or len(text.get("text", "")) > 3000:
                return 400, "invalid_blocks", {}
        self.messages.append(body)
        return 200, "ok", {}


class PagerDutyEmulator(JsonEmulator):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self.incidents: dict[str, dict[str, Any]] = {}

    def handle(self, request: Seen) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return 404, {"status": "not found"}, {}
        try:
            event = json.loads(request.body)
        except ValueError:
            return 400, _invalid("Malformed JSON"), {}
        errors = _problems(event)
        if errors:
            return 400, _invalid(*errors), {}
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        self.events.append(event)
        if event["event_action"] == "trigger":
            self.incidents.setdefault(dedup_key, event["payload"])
        elif event["event_action"] == "resolve":
            self.incidents.pop(dedup_key, None)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, {}


def _invalid(*errors: str) -> dict[str, Any]:
    return {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}


def _problems(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["Event must be a JSON object"]
    problems = []
    if event.get("routing_key") != PAGERDUTY_ROUTING_KEY:
        problems.append("'routing_key' is invalid")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("'event_action' is invalid")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        problems.append("'dedup_key' is invalid")
    if action in ("acknowledge", "resolve") and not dedup_key:
        problems.append("'dedup_key' is required")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            return [*problems, "'payload' is missing"]
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary or len(summary) > 1024:
            problems.append("'payload.summary' is invalid")
        if not isinstance(payload.get("source"), str) or not payload["source"]:
            problems.append("'payload.source' is missing")
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            problems.append("'payload.severity' is invalid")
    return problems

"""A local emulator of IBM watsonx.ai and IBM Cloud IAM, written from their API references.

- IAM: `POST /identity/token` (form `grant_type=urn:ibm:params:oauth:grant-type:apikey`,
  `apikey`) answers `{"access_token", "expires_in", "expiration", ...}`; an unknown key 400
  `{"errorCode": "BXNIM0415E", "errorMessage": ...}`.
- watsonx.ai: `POST /ml/v1/text/chat`, `/ml/v1/text/chat_stream` (server-sent events
  `id`/`event: message`/`data`), `/ml/v1/deployments/{id}/text/chat[_stream]` and
  `/ml/v1/text/embeddings`, each requiring the `version` query parameter, the IAM bearer token and
  (outside deployments) `project_id` or `space_id`; errors `{"errors": [{"code", "message"}],
  "trace", "status_code"}`; unknown body fields refused.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "ibm-cloud-emulator-api-key"
TOKEN = "eyJ-emulator-iam-token"
PROJECT_ID = "0d1f5b6e-emulator-project"
SPACE_ID = "7c0e2a1d-emulator-space"
CHAT_FIELDS = {
    "model_id",
    "project_id",
    "space_id",
    "messages",
    "tools",
    "tool_choice",
    "tool_choice_option",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "presence_penalty",
    "response_format",
    "seed",
    "stop",
    "temperature",
    "top_p",
    "time_limit",
    "context",
}
EMBED_FIELDS = {"inputs", "model_id", "project_id", "space_id", "parameters"}


def error(status: int, code: str, message: str) -> Fault:
    return Fault(
        status,
        {
            "errors": [{"code": code, "message": message, "more_info": "https://cloud.ibm.com"}],
            "trace": "emulator-trace-0001",
            "status_code": status,
        },
    )


def words(text: str) -> int:
    return len(text.split())


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


class WatsonxEmulator(ScriptedEmulator):
    name = "watsonx-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/identity/token", self._token)
        app.router.add_post("/ml/v1/text/{action}", self._text)
        app.router.add_post("/ml/v1/deployments/{deployment}/text/{action}", self._text)

    @property
    def token_requests(self) -> int:
        return sum(1 for r in self.requests if r.path == "/identity/token")

    async def _token(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        form = {k: v[0] for k, v in parse_qs(received.raw.decode()).items()}
        if form.get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey":
            return json_response(
                {"errorCode": "BXNIM0109E", "errorMessage": "Property missing or empty."},
                status=400,
            )
        if form.get("apikey") != API_KEY:
            return json_response(
                {
                    "errorCode": "BXNIM0415E",
                    "errorMessage": "Provided API key could not be found.",
                    "context": {"requestId": "emulator"},
                },
                status=400,
            )
        now = int(time.time())
        return json_response(
            {
                "access_token": TOKEN,
                "refresh_token": "not_supported",
                "token_type": "Bearer",
                "expires_in": 3600,
                "expiration": now + 3600,
                "scope": "ibm openid",
            }
        )

    async def _text(self, request: web.Request) -> web.StreamResponse:
        received = await self.receive(request)
        action = request.match_info["action"]
        deployed = "deployment" in request.match_info
        if not received.query.get("version"):
            return error(400, "missing_version", "Missing query parameter `version`.").response()
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return error(
                401,
                "authentication_token_not_valid",
                "Failed to authenticate the request due to invalid token.",
            ).response()
        body = received.body
        if not isinstance(body, dict):
            return error(400, "json_validation_error", "Invalid JSON body.").response()
        fields = EMBED_FIELDS if action == "embeddings" else CHAT_FIELDS
        unknown = sorted(set(body) - fields)
        if unknown:
            return error(
                400, "json_validation_error", f"Unexpected field in body: {unknown[0]}"
            ).response()
        if not deployed:
            if not body.get("model_id"):
                return error(400, "json_validation_error", "model_id is required").response()
            if body.get("project_id") not in (None, PROJECT_ID) or body.get("space_id") not in (
                None,
                SPACE_ID,
            ):
                return error(404, "project_not_found", "Project or space not found.").response()
            if not body.get("project_id") and not body.get("space_id"):
                return error(
                    400, "json_validation_error", "Either project_id or space_id is required."
                ).response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        if action == "embeddings":
            return self._embeddings(body)
        if action not in ("chat", "chat_stream"):
            return error(404, "not_found", "Not found").response()
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "json_validation_error", "messages is required").response()
        text = reply if isinstance(reply, str) else "Hello from watsonx."
        prompt = sum(words(_content_text(m.get("content"))) for m in messages)
        usage = {
            "completion_tokens": words(text),
            "prompt_tokens": prompt,
            "total_tokens": prompt + words(text),
        }
        model = body.get("model_id") or "deployed-model"
        if action == "chat":
            return json_response(
                {
                    "id": "chatcmpl-watsonx-0001",
                    "object": "chat.completion",
                    "model_id": model,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "created": 1733400000,
                    "model_version": "3.1.0",
                    "created_at": "2024-12-05T12:00:00.000Z",
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [f"{w} " for w in text.split()[:-1]] + [text.split()[-1]]
        base = {
            "id": "chatcmpl-watsonx-0002",
            "object": "chat.completion.chunk",
            "model_id": model,
            "model": model,
            "created": 1733400000,
            "model_version": "3.1.0",
            "created_at": "2024-12-05T12:00:00.000Z",
        }
        events = [{"index": 0, "finish_reason": None, "delta": {"role": "assistant"}}]
        events += [{"index": 0, "finish_reason": None, "delta": {"content": p}} for p in pieces]
        for number, choice in enumerate(events, start=1):
            data = orjson.dumps(base | {"choices": [choice]}).decode()
            await response.write(f"id: {number}\nevent: message\ndata: {data}\n\n".encode())
        final = base | {
            "choices": [{"index": 0, "finish_reason": "stop", "delta": {"content": ""}}],
            "usage": usage,
        }
        last = len(events) + 1
        await response.write(
            f"id: {last}\nevent: message\ndata: {orjson.dumps(final).decode()}\n\n".encode()
        )
        await response.write_eof()
        return response

    def _embeddings(self, body: dict[str, Any]) -> web.Response:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return error(400, "json_validation_error", "inputs must be strings").response()
        return json_response(
            {
                "model_id": body["model_id"],
                "results": [{"embedding": [float(len(t)), float(words(t)), 0.5]} for t in inputs],
                "created_at": "2024-12-05T12:00:00.000Z",
                "input_token_count": sum(words(t) for t in inputs),
            }
        )


_emulator: WatsonxEmulator | None = None


def watsonx_emulator_get() -> WatsonxEmulator:
    global _emulator
    if _emulator is None:
        _emulator = WatsonxEmulator()
        _emulator.start()
    return _emulator

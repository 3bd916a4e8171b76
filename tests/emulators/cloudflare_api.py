"""A local emulator of Cloudflare Workers AI's REST API, written from its reference:
`POST /client/v4/accounts/{account_id}/ai/run/{model}` with a bearer API token.

Text-generation models take `messages` (or `prompt`) and sampling fields and answer
`{"result": {"response", "tool_calls", "usage"}, "success": true, "errors": [], "messages": []}`;
with `stream: true` they answer server-sent events `data: {"response": ..., "p": ...}`, a last
event with `usage`, then `data: [DONE]`. Embedding models (`@cf/baai/bge-*`) take `text` and
answer `{"result": {"shape", "data", "pooling"}}`. Errors: `{"success": false, "errors":
[{"code", "message"}], "result": null}`; unknown fields refused (the models' input schemas).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

ACCOUNT_ID = "023e105f4ecef8ad9ca31a8372d0c353"
API_TOKEN = "cf-emulator-api-token"
CHAT_MODELS = {"@cf/meta/llama-3.1-8b-instruct", "@hf/thebloke/codellama-7b-instruct-awq"}
EMBED_MODELS = {"@cf/baai/bge-base-en-v1.5"}
CHAT_FIELDS = {
    "messages",
    "prompt",
    "stream",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "tools",
    "raw",
    "lora",
}


def failure(status: int, code: int, message: str) -> Fault:
    return Fault(
        status,
        {"success": False, "errors": [{"code": code, "message": message}], "result": None},
    )


def words(text: str) -> int:
    return len(text.split())


class CloudflareEmulator(ScriptedEmulator):
    name = "cloudflare-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/client/v4/accounts/{account}/ai/run/{model:.+}", self._model_run)

    async def _model_run(self, request: web.Request) -> web.StreamResponse:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            return failure(401, 10000, "Authentication error").response()
        if request.match_info["account"] != ACCOUNT_ID:
            return failure(403, 10000, "Authentication error").response()
        model = request.match_info["model"]
        body = received.body
        if not isinstance(body, dict):
            return failure(400, 5006, "Error: required properties at '/' are missing").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        if model in EMBED_MODELS:
            texts = body.get("text")
            if set(body) - {"text", "pooling"} or not isinstance(texts, (str, list)):
                return failure(400, 5006, "Error: invalid input for the model").response()
            texts = [texts] if isinstance(texts, str) else texts
            return json_response(
                {
                    "result": {
                        "shape": [len(texts), 3],
                        "data": [[float(len(t)), float(words(t)), 0.25] for t in texts],
                        "pooling": "mean",
                    },
                    "success": True,
                    "errors": [],
                    "messages": [],
                }
            )
        if model not in CHAT_MODELS:
            return failure(400, 5007, f"No such model {model} or task").response()
        unknown = sorted(set(body) - CHAT_FIELDS)
        if unknown:
            return failure(
                400, 5006, f"Error: must NOT have additional properties: {unknown[0]}"
            ).response()
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages
        ):
            return failure(400, 5006, "Error: each message needs a string content").response()
        text = reply if isinstance(reply, str) else "Hello from Workers AI."
        prompt = sum(words(m["content"]) for m in messages)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": words(text),
            "total_tokens": prompt + words(text),
        }
        if not body.get("stream"):
            return json_response(
                {
                    "result": {"response": text, "tool_calls": [], "usage": usage},
                    "success": True,
                    "errors": [],
                    "messages": [],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pieces = [f"{w} " for w in text.split()[:-1]] + [text.split()[-1]]
        for piece in pieces:
            data = orjson.dumps({"response": piece, "p": "abcdefgh"}).decode()
            await response.write(f"data: {data}\n\n".encode())
        data = orjson.dumps({"response": "", "usage": usage}).decode()
        await response.write(f"data: {data}\n\ndata: [DONE]\n\n".encode())
        await response.write_eof()
        return response


_emulator: CloudflareEmulator | None = None


def cloudflare_emulator_get() -> CloudflareEmulator:
    global _emulator
    if _emulator is None:
        _emulator = CloudflareEmulator()
        _emulator.start()
    return _emulator

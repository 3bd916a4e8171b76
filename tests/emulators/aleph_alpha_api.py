"""A local emulator of Aleph Alpha's completion API, written from its reference:
`POST /complete` with a bearer token.

The body is `{"model", "prompt", "maximum_tokens", ...}` with the sampling fields (`temperature`,
`top_k`, `top_p`, penalties, `stop_sequences`, `n`; unknown fields refused); the answer is
`{"model_version", "completions": [{"completion", "finish_reason"}], "num_tokens_prompt_total",
"num_tokens_generated"}`. Errors are `{"error": "...", "code": "..."}`.
"""

from __future__ import annotations

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_TOKEN = "aleph-alpha-emulator-token"
MODELS = {"luminous-base", "pharia-1-llm-7b-control"}
FIELDS = {
    "model",
    "prompt",
    "maximum_tokens",
    "minimum_tokens",
    "echo",
    "temperature",
    "top_k",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop_sequences",
    "n",
    "best_of",
    "hosting",
}
REPLY = "Guten Tag from Luminous."


def failure(status: int, code: str, message: str) -> Fault:
    return Fault(status, {"error": message, "code": code})


class AlephAlphaEmulator(ScriptedEmulator):
    name = "aleph-alpha-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/complete", self._complete)

    async def _complete(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            return failure(401, "UNAUTHENTICATED", "invalid token").response()
        body = received.body
        if not isinstance(body, dict):
            return failure(400, "BAD_REQUEST", "invalid JSON").response()
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return failure(400, "BAD_REQUEST", f"unknown field `{unknown[0]}`").response()
        if body.get("model") not in MODELS:
            return failure(
                404, "MODEL_NOT_FOUND", f"model {body.get('model')} not found"
            ).response()
        if not isinstance(body.get("prompt"), str) or not isinstance(
            body.get("maximum_tokens"), int
        ):
            return failure(400, "BAD_REQUEST", "prompt and maximum_tokens required").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        text = reply if isinstance(reply, str) else REPLY
        n = int(body.get("n") or 1)
        return json_response(
            {
                "model_version": "2024-01",
                "completions": [
                    {"completion": text, "finish_reason": "end_of_text"} for _ in range(n)
                ],
                "num_tokens_prompt_total": len(body["prompt"].split()),
                "num_tokens_generated": n * len(text.split()),
            }
        )


_emulator: AlephAlphaEmulator | None = None


def aleph_alpha_emulator_get() -> AlephAlphaEmulator:
    global _emulator
    if _emulator is None:
        _emulator = AlephAlphaEmulator()
        _emulator.start()
    return _emulator

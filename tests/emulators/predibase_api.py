"""A local emulator of Predibase's LoRAX inference REST API, written from its reference:
`POST /{tenant_id}/deployments/v2/llms/{deployment}/generate` and `.../generate_stream` with a
bearer API token.

Bodies are `{"inputs": str, "parameters": {...}}` (LoRAX's parameters, `adapter_id` and
`adapter_source` included; unknown ones refused with a 422). `/generate` answers
`{"generated_text", "details": {"finish_reason", "generated_tokens", "prefill", "tokens"}}`;
`/generate_stream` answers server-sent events `data:{"token": {...}, "generated_text",
"details"}`, the last carrying `details` (with `input_length`). Errors:
`{"error": str, "error_type": str}`.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

TENANT_ID = "a1b2c3"
API_TOKEN = "pb_emulator-token"
DEPLOYMENTS = {"llama-3-8b-instruct", "qwen3-8b"}
ADAPTERS = {"news-summarizer/1"}
PARAMETERS = {
    "adapter_id",
    "adapter_source",
    "api_token",
    "best_of",
    "decoder_input_details",
    "details",
    "do_sample",
    "max_new_tokens",
    "repetition_penalty",
    "return_full_text",
    "seed",
    "stop",
    "temperature",
    "top_k",
    "top_p",
    "truncate",
    "typical_p",
    "watermark",
    "response_format",
}
REPLY = "Hello from a LoRAX deployment."


def failure(status: int, message: str, error_type: str = "generation") -> Fault:
    return Fault(status, {"error": message, "error_type": error_type})


class PredibaseEmulator(ScriptedEmulator):
    name = "predibase-emulator"

    def routes(self, app: web.Application) -> None:
        base = "/{tenant}/deployments/v2/llms/{deployment}"
        app.router.add_post(f"{base}/generate", self._generate)
        app.router.add_post(f"{base}/generate_stream", self._generate)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            return failure(401, "Unauthorized", "authentication").response()
        deployment = request.match_info["deployment"]
        if request.match_info["tenant"] != TENANT_ID or deployment not in DEPLOYMENTS:
            return failure(404, f"deployment {deployment} not found", "not_found").response()
        body = received.body
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return failure(422, "missing field `inputs`", "validation").response()
        parameters = body.get("parameters") or {}
        unknown = sorted(set(parameters) - PARAMETERS)
        if unknown:
            return failure(422, f"unknown field `{unknown[0]}`", "validation").response()
        adapter = parameters.get("adapter_id")
        if adapter is not None and adapter not in ADAPTERS:
            return failure(400, f"adapter {adapter} not found", "validation").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        text = reply if isinstance(reply, str) else REPLY
        words = text.split(" ")
        pieces = [f"{w} " for w in words[:-1]] + [words[-1]]
        prompt_tokens = len(body["inputs"].split())
        if request.path.endswith("/generate"):
            details: dict[str, Any] = {
                "finish_reason": "eos_token",
                "generated_tokens": len(pieces),
                "seed": None,
                "tokens": [{"id": i, "text": p, "logprob": -0.1} for i, p in enumerate(pieces)],
            }
            if parameters.get("decoder_input_details"):
                details["prefill"] = [
                    {"id": i, "text": w, "logprob": None}
                    for i, w in enumerate(body["inputs"].split())
                ]
            return json_response({"generated_text": text, "details": details})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            event = {
                "token": {"id": index, "text": piece, "logprob": -0.1, "special": False},
                "generated_text": text if last else None,
                "details": {
                    "finish_reason": "eos_token",
                    "generated_tokens": len(pieces),
                    "input_length": prompt_tokens,
                    "seed": None,
                }
                if last
                else None,
            }
            await response.write(b"data:" + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response


_emulator: PredibaseEmulator | None = None


def predibase_emulator_get() -> PredibaseEmulator:
    global _emulator
    if _emulator is None:
        _emulator = PredibaseEmulator()
        _emulator.start()
    return _emulator

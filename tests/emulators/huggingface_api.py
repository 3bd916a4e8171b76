"""A local emulator of Hugging Face inference, written from its references: the Inference
Providers router / TGI Messages API (`POST /v1/chat/completions`, OpenAI-style JSON and SSE,
unknown fields refused with TGI's 422), TGI's native `POST /generate` and `/generate_stream`
(`data:{"token":...}` events, `details` on the last), and the HF Inference tasks under
`/hf-inference/models/{owner}/{name}`: feature-extraction, Whisper-style ASR (base64 `inputs`,
`return_timestamps` chunks) and text-to-speech (audio bytes). Auth is an `hf_` bearer token;
errors are `{"error": "...", "error_type": ...}`.
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.deepgram_api import sentences
from tests.emulators.scripted import Fault, ScriptedEmulator, json_response
from tests.emulators.voyage_api import vector, words

API_KEY = "hf_emulatorToken"
CHAT_FIELDS = {
    "model",
    "messages",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "tool_prompt",
    "response_format",
}
GENERATE_PARAMETERS = {
    "max_new_tokens",
    "stop",
    "temperature",
    "top_p",
    "seed",
    "do_sample",
    "return_full_text",
    "details",
    "decoder_input_details",
}
TTS_AUDIO = b"fLaC\x00\x00\x00\x22emulated-speech:"


def hf_error(status: int, message: str, error_type: str = "validation", **headers: str) -> Fault:
    return Fault(status, {"error": message, "error_type": error_type}, headers)


@dataclass
class ChatReply:
    content: str | None = "Hello from TGI."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, Any] = field(
        default_factory=lambda: {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    )


@dataclass
class GenerateReply:
    text: str = " world, said the model."
    finish_reason: str = "eos_token"
    prompt_tokens: int = 3


class HuggingFaceEmulator(ScriptedEmulator):
    name = "huggingface-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/generate", self._generate)
        app.router.add_post("/generate_stream", self._generate)
        app.router.add_post(
            "/hf-inference/models/{model:[^/]+/[^/]+}/pipeline/feature-extraction",
            self._feature_extraction,
        )
        app.router.add_post("/hf-inference/models/{model:[^/]+/[^/]+}", self._task)

    async def _admit(self, request: web.Request) -> tuple[Any, web.Response | None]:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return received, Fault(
                401, {"error": "Invalid credentials in Authorization header"}
            ).response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return received, reply.response()
        return received, None if reply is None else reply

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received, scripted = await self._admit(request)
        if isinstance(scripted, web.Response):
            return scripted
        body = received.body
        unknown = sorted(set(body) - CHAT_FIELDS) if isinstance(body, dict) else []
        if unknown:
            return hf_error(
                422,
                "Failed to deserialize the JSON body into the target type: unknown field "
                f"`{unknown[0]}`",
            ).response()
        if not body.get("model") or not body.get("messages"):
            return hf_error(422, "missing field `messages`").response()
        for message in body["messages"]:
            if message.get("role") not in ("system", "user", "assistant", "tool"):
                return hf_error(422, f"unknown variant `{message.get('role')}`").response()
        reply = scripted if isinstance(scripted, ChatReply) else ChatReply()
        # The model calls only a declared tool, and none under tool_choice "none".
        declared = {t["function"]["name"] for t in body.get("tools") or []}
        if body.get("tool_choice") == "none":
            declared = set()
        if any(c["function"]["name"] not in declared for c in reply.tool_calls):
            reply = dataclasses.replace(
                reply, content=reply.content or "No tool.", tool_calls=[], finish_reason="stop"
            )
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            return json_response(
                {
                    "object": "chat.completion",
                    "id": "",
                    "created": 1_732_000_000,
                    "model": body["model"],
                    "system_fingerprint": "3.0.0-native",
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": reply.usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "object": "chat.completion.chunk",
                "id": "",
                "created": 1_732_000_000,
                "model": body["model"],
                "system_fingerprint": "3.0.0-native",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                "usage": None,
            }

        events = []
        text = reply.content or ""
        for i in range(0, len(text), 5):
            events.append(chunk({"role": "assistant", "content": text[i : i + 5]}))
        for index, call in enumerate(reply.tool_calls):
            arguments = call["function"]["arguments"]
            events.append(
                chunk(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ],
                    }
                )
            )
            for i in range(0, len(arguments), 6):
                piece = {"index": index, "function": {"arguments": arguments[i : i + 6]}}
                events.append(chunk({"role": "assistant", "tool_calls": [piece]}))
        events.append(chunk({"role": "assistant", "content": ""}, reply.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = chunk({}) | {"choices": [], "usage": reply.usage}
            events.append(usage_chunk)
        for event in events:
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        received, scripted = await self._admit(request)
        if isinstance(scripted, web.Response):
            return scripted
        body = received.body
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), str):
            return hf_error(422, "missing field `inputs`").response()
        unknown = sorted(set(body.get("parameters") or {}) - GENERATE_PARAMETERS)
        if unknown:
            return hf_error(422, f"unknown field `{unknown[0]}`").response()
        reply = scripted if isinstance(scripted, GenerateReply) else GenerateReply()
        pieces = [reply.text[i : i + 6] for i in range(0, len(reply.text), 6)]
        if request.path == "/generate":
            details: dict[str, Any] = {
                "finish_reason": reply.finish_reason,
                "generated_tokens": len(pieces),
                "seed": None,
                "tokens": [],
            }
            if (body.get("parameters") or {}).get("decoder_input_details"):
                details["prefill"] = [
                    {"id": i, "text": "x", "logprob": None} for i in range(reply.prompt_tokens)
                ]
            return json_response({"generated_text": reply.text, "details": details})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            event = {
                "index": index + 1,
                "token": {"id": index, "text": piece, "logprob": -0.1, "special": False},
                "generated_text": reply.text if last else None,
                "details": {
                    "finish_reason": reply.finish_reason,
                    "generated_tokens": len(pieces),
                    "input_length": reply.prompt_tokens,
                    "seed": None,
                }
                if last
                else None,
            }
            await response.write(b"data:" + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    async def _feature_extraction(self, request: web.Request) -> web.Response:
        received, scripted = await self._admit(request)
        if isinstance(scripted, web.Response):
            return scripted
        inputs = received.body.get("inputs") if isinstance(received.body, dict) else None
        if isinstance(inputs, str):
            return json_response(vector(inputs, dimension=4))
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return hf_error(400, "inputs must be a string or a list of strings").response()
        return json_response([vector(t, dimension=4) for t in inputs])

    async def _task(self, request: web.Request) -> web.Response:
        received, scripted = await self._admit(request)
        if isinstance(scripted, web.Response):
            return scripted
        body = received.body
        if not isinstance(body, dict) or "inputs" not in body:
            return hf_error(400, "inputs is required").response()
        if "whisper" in request.match_info["model"]:
            try:
                text = base64.b64decode(body["inputs"], validate=True).decode()
            except ValueError:
                return hf_error(400, "Malformed soundfile").response()
            reply: dict[str, Any] = {"text": " " + text}
            if (body.get("parameters") or {}).get("return_timestamps"):
                chunks, clock = [], 0.0
                for sentence in sentences(text):
                    end = clock + 0.5 * len(sentence)
                    chunks.append(
                        {"text": " " + " ".join(sentence) + ".", "timestamp": [clock, end]}
                    )
                    clock = end
                reply["chunks"] = chunks
            return json_response(reply)
        if not isinstance(body["inputs"], str) or not words(body["inputs"]):
            return hf_error(400, "inputs must be a non-empty string").response()
        return web.Response(body=TTS_AUDIO + body["inputs"].encode(), content_type="audio/flac")


_emulator: HuggingFaceEmulator | None = None


def huggingface_emulator_get() -> HuggingFaceEmulator:
    global _emulator
    if _emulator is None:
        _emulator = HuggingFaceEmulator()
        _emulator.start()
    return _emulator

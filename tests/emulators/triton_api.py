"""A local emulator of NVIDIA Triton Inference Server's HTTP API for LLMs, written from its
reference: the generate extension (`POST /v2/models/{model}/generate` and `/generate_stream`)
and KServe's v2 inference protocol (`POST /v2/models/{model}/infer`).

/generate takes the model's inputs as top-level keys (`text_input`, `max_tokens`, `bad_words`,
`stop_words`, sampling fields, `stream`) and answers `{"model_name", "model_version",
"text_output"}`; /generate_stream needs `"stream": true` and answers server-sent events of the
same objects, one piece of text each. /infer takes `{"inputs": [{"name", "shape", "datatype",
"data"}]}` and answers `{"model_name", "model_version", "outputs": [{"name": "text_output",
"datatype": "BYTES", "shape", "data"}]}`. Errors: `{"error": "..."}` (400 for bad input, 404
for an unknown model). The server runs without auth, as Triton does by default.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

MODELS = {"ensemble", "llama-infer"}
GENERATE_INPUTS = {
    "text_input",
    "max_tokens",
    "bad_words",
    "stop_words",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stream",
    "parameters",
}
INFER_DATATYPES = {
    "text_input": "BYTES",
    "max_tokens": "INT32",
    "temperature": "FP32",
    "top_p": "FP32",
    "top_k": "INT32",
    "seed": "INT32",
}
REPLY = "Machine learning lets computers learn from data."


def failure(status: int, message: str) -> Fault:
    return Fault(status, {"error": message})


class TritonEmulator(ScriptedEmulator):
    name = "triton-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/models/{model}/generate", self._generate)
        app.router.add_post("/v2/models/{model}/generate_stream", self._generate)
        app.router.add_post("/v2/models/{model}/infer", self._infer)

    async def _admit(self, request: web.Request) -> tuple[Any, Any]:
        received = await self.receive(request)
        model = request.match_info["model"]
        if model not in MODELS:
            return received, failure(404, f"Request for unknown model: '{model}' is not found")
        if not isinstance(received.body, dict):
            return received, failure(400, "failed to parse the request JSON buffer")
        return received, self.next_reply()

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        received, reply = await self._admit(request)
        if isinstance(reply, Fault):
            return reply.response()
        body = received.body
        unknown = sorted(set(body) - GENERATE_INPUTS)
        if unknown:
            return failure(400, f"unexpected inference input '{unknown[0]}'").response()
        if not isinstance(body.get("text_input"), str) or "max_tokens" not in body:
            return failure(400, "expected inputs 'text_input' and 'max_tokens'").response()
        streamed = request.path.endswith("_stream")
        if streamed != bool(body.get("stream")):
            return failure(400, "'stream' must be true on generate_stream only").response()
        text = reply if isinstance(reply, str) else REPLY
        head = {"model_name": request.match_info["model"], "model_version": "1"}
        if not streamed:
            return json_response(head | {"text_output": text})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = text.split(" ")
        for piece in [f"{w} " for w in words[:-1]] + [words[-1]]:
            event = head | {"text_output": piece}
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    async def _infer(self, request: web.Request) -> web.Response:
        received, reply = await self._admit(request)
        if isinstance(reply, Fault):
            return reply.response()
        inputs = received.body.get("inputs")
        if not isinstance(inputs, list):
            return failure(400, "missing 'inputs'").response()
        named: dict[str, Any] = {}
        for tensor in inputs:
            name = tensor.get("name") if isinstance(tensor, dict) else None
            if name not in INFER_DATATYPES:
                return failure(400, f"unexpected inference input '{name}'").response()
            if tensor.get("datatype") != INFER_DATATYPES[name] or tensor.get("shape") != [1]:
                return failure(
                    400, f"input '{name}': expected {INFER_DATATYPES[name]} of shape [1]"
                ).response()
            data = tensor.get("data")
            if not isinstance(data, list) or len(data) != 1:
                return failure(400, f"input '{name}': one element expected").response()
            named[name] = data[0]
        if not isinstance(named.get("text_input"), str):
            return failure(400, "expected input 'text_input'").response()
        text = reply if isinstance(reply, str) else REPLY
        return json_response(
            {
                "model_name": request.match_info["model"],
                "model_version": "1",
                "outputs": [
                    {"name": "text_output", "datatype": "BYTES", "shape": [1], "data": [text]}
                ],
            }
        )


_emulator: TritonEmulator | None = None


def triton_emulator_get() -> TritonEmulator:
    global _emulator
    if _emulator is None:
        _emulator = TritonEmulator()
        _emulator.start()
    return _emulator

"""A local emulator of Replicate's predictions API, written from its reference.

It serves `POST /v1/models/{owner}/{name}/predictions` (official models) and `POST
/v1/predictions` (a `version`), `GET /v1/predictions/{id}`, the prediction's SSE stream
(`urls.stream`: `output` events with raw text, `error`, `done`) and the output files. Auth is an
`r8_` bearer token; errors are problem+json (`{"title", "detail", "status"}`); inputs are checked
against each model's input schema (required `prompt`, unknown inputs refused). With
`Prefer: wait=N` a prediction that needs no polls comes back finished; otherwise it moves
starting → processing → succeeded (or failed) one step per poll.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "r8_emulatorToken"
CHAT_MODEL = "meta/meta-llama-3-8b-instruct"
IMAGE_MODEL = "black-forest-labs/flux-schnell"
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
INPUTS = {
    CHAT_MODEL: {
        "prompt",
        "system_prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop_sequences",
        "image",
    },
    IMAGE_MODEL: {"prompt", "num_outputs", "width", "height", "aspect_ratio", "seed"},
}
VERSIONS = {VERSION: CHAT_MODEL}
PNG = b"\x89PNG\r\n\x1a\n" + b"emulated-image"


def problem(status: int, detail: str, title: str = "Invalid request", **headers: str) -> Fault:
    return Fault(status, {"title": title, "detail": detail, "status": status}, headers)


@dataclass
class Prediction:
    """A scripted prediction: its output, how many polls it needs, and how it ends."""

    output: Any = None
    polls: int = 0
    error: str | None = None
    metrics: dict[str, Any] = field(
        default_factory=lambda: {"input_token_count": 12, "output_token_count": 6}
    )
    stream_error: str | None = None


class ReplicateEmulator(ScriptedEmulator):
    name = "replicate-emulator"

    def __init__(self) -> None:
        super().__init__()
        self.predictions: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self.predictions.clear()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create)
        app.router.add_post("/v1/predictions", self._create)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_get("/stream/{id}", self._stream)
        app.router.add_get("/files/{name}", self._file)

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return problem(
                401, "You did not pass a valid authentication token", "Unauthenticated"
            ).response()
        return None

    async def _create(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        refused = self._refused(request)
        if refused:
            return refused
        body = received.body
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return problem(422, "input is required", "Input validation failed").response()
        unknown = sorted(set(body) - {"input", "stream", "webhook", "version"})
        if unknown:
            return problem(422, f"Additional property {unknown[0]} is not allowed").response()
        if "owner" in request.match_info:
            model = f"{request.match_info['owner']}/{request.match_info['name']}"
            if "version" in body:
                return problem(422, "version is not allowed on a model's endpoint").response()
        else:
            model = VERSIONS.get(str(body.get("version")), "")
        if model not in INPUTS:
            return problem(
                404, "The requested resource could not be found.", "Not found"
            ).response()
        inputs = body["input"]
        if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
            return problem(422, "- input: prompt is required", "Input validation failed").response()
        extra = sorted(set(inputs) - INPUTS[model])
        if extra:
            return problem(
                422,
                f"- input: Additional property {extra[0]} is not allowed",
                "Input validation failed",
            ).response()
        scripted = self.next_reply()
        if isinstance(scripted, Fault):
            return scripted.response()
        script = scripted if isinstance(scripted, Prediction) else self._default(model, inputs)
        identity = f"pred{next(self._ids):04d}"
        state = {
            "script": script,
            "polls": 0,
            "public": {
                "id": identity,
                "model": model,
                "version": VERSION if model == CHAT_MODEL else "flux-version",
                "input": inputs,
                "logs": "",
                "output": None,
                "data_removed": False,
                "error": None,
                "status": "starting",
                "created_at": "2026-11-27T00:00:00.000Z",
                "urls": {
                    "get": f"{self.url}/v1/predictions/{identity}",
                    "cancel": f"{self.url}/v1/predictions/{identity}/cancel",
                    "stream": f"{self.url}/stream/{identity}",
                },
            },
        }
        self.predictions[identity] = state
        waits = request.headers.get("Prefer", "").startswith("wait")
        if waits and script.polls == 0 and not body.get("stream"):
            self._complete(state)
        return json_response(state["public"], status=201)

    def _default(self, model: str, inputs: dict[str, Any]) -> Prediction:
        if model == IMAGE_MODEL:
            count = inputs.get("num_outputs", 1)
            return Prediction(output=[f"{self.url}/files/out-{i}.png" for i in range(count)])
        words = f"Echo: {inputs['prompt'].splitlines()[-1]}".split(" ")
        return Prediction(output=[w if i == 0 else f" {w}" for i, w in enumerate(words)])

    @staticmethod
    def _complete(state: dict[str, Any]) -> None:
        script: Prediction = state["script"]
        public = state["public"]
        if script.error:
            public |= {"status": "failed", "error": script.error}
        else:
            public |= {"status": "succeeded", "output": script.output}
        public["metrics"] = {"predict_time": 0.5, **script.metrics}
        public["completed_at"] = "2026-11-27T00:00:01.000Z"

    async def _get(self, request: web.Request) -> web.Response:
        await self.receive(request)
        refused = self._refused(request)
        if refused:
            return refused
        state = self.predictions.get(request.match_info["id"])
        if state is None:
            return problem(
                404, "The requested resource could not be found.", "Not found"
            ).response()
        public = state["public"]
        if public["status"] in ("starting", "processing"):
            state["polls"] += 1
            if state["polls"] >= state["script"].polls:
                self._complete(state)
            else:
                public["status"] = "processing"
        return json_response(public)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        await self.receive(request)
        refused = self._refused(request)
        if refused:
            return refused
        state = self.predictions.get(request.match_info["id"])
        if state is None or request.headers.get("Accept") != "text/event-stream":
            return problem(400, "Accept: text/event-stream is required").response()
        script: Prediction = state["script"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, piece in enumerate(script.output or []):
            if script.stream_error is not None and index == 1:
                detail = orjson.dumps({"detail": script.stream_error}).decode()
                await response.write(f"event: error\ndata: {detail}\n\n".encode())
                await response.write(b'event: done\ndata: {"reason": "error"}\n\n')
                await response.write_eof()
                return response
            data = "\n".join(f"data: {line}" for line in str(piece).split("\n"))
            await response.write(f"event: output\nid: {index}\n{data}\n\n".encode())
        self._complete(state)
        await response.write(b"event: done\ndata: {}\n\n")
        await response.write_eof()
        return response

    async def _file(self, request: web.Request) -> web.Response:
        await self.receive(request)
        return web.Response(body=PNG, content_type="image/png")


_emulator: ReplicateEmulator | None = None


def replicate_emulator_get() -> ReplicateEmulator:
    global _emulator
    if _emulator is None:
        _emulator = ReplicateEmulator()
        _emulator.start()
    return _emulator

"""A local emulator of NLP Cloud's text generation API, written from its reference:
`POST /v1/gpu/{model}/generation` with `Authorization: Token <key>`.

The body is `{"text", ...}` with NLP Cloud's generation parameters (unknown fields refused with
a 422, as its FastAPI validation does); the answer is `{"generated_text", "nb_input_tokens",
"nb_generated_tokens"}`. Errors are `{"detail": "..."}`.
"""

from __future__ import annotations

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "nlpcloud-emulator-key"
MODELS = {"finetuned-llama-3-70b", "dolphin-mixtral-8x7b"}
FIELDS = {
    "text",
    "max_length",
    "length_no_input",
    "end_sequence",
    "remove_end_sequence",
    "remove_input",
    "bad_words",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "num_beams",
    "num_return_sequences",
}
REPLY = "NLP Cloud says hello."


def failure(status: int, detail: str) -> Fault:
    return Fault(status, {"detail": detail})


class NLPCloudEmulator(ScriptedEmulator):
    name = "nlp-cloud-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/gpu/{model}/generation", self._generation)

    async def _generation(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Token {API_KEY}":
            return failure(401, "Invalid token").response()
        if request.match_info["model"] not in MODELS:
            return failure(404, "Model not found").response()
        body = received.body
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return failure(422, "field required: text").response()
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return failure(422, f"extra fields not permitted: {unknown[0]}").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        text = reply if isinstance(reply, str) else REPLY
        if not body.get("remove_input"):
            text = body["text"] + text
        return json_response(
            {
                "generated_text": text,
                "nb_input_tokens": len(body["text"].split()),
                "nb_generated_tokens": len(text.split()),
            }
        )


_emulator: NLPCloudEmulator | None = None


def nlp_cloud_emulator_get() -> NLPCloudEmulator:
    global _emulator
    if _emulator is None:
        _emulator = NLPCloudEmulator()
        _emulator.start()
    return _emulator

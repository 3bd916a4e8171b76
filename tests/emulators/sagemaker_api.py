"""A local emulator of the SageMaker runtime, written from its API reference: `InvokeEndpoint`
(`POST /endpoints/{name}/invocations`) and `InvokeEndpointWithResponseStream`
(`.../invocations-response-stream`, answered as AWS's binary event stream of `PayloadPart`
events whose payload is the container's bytes, split at arbitrary places), every request's SigV4
signature (service `sagemaker`) verified. Errors carry `x-amzn-ErrorType` (`ValidationError`,
`ModelError` 424 with the container's `OriginalStatusCode`/`OriginalMessage`); a stream may end
with a `ModelStreamError` exception message.

Three endpoints, three containers: `tgi-chat` (TGI's OpenAI-compatible messages API),
`tgi-generate` (TGI's `{"inputs", "parameters"}` text generation and its token stream) and
`jumpstart-embed` (`{"text_inputs"}` -> `{"embedding"}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from tests.emulators.bedrock_api import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Refused,
    frame_encode,
    sigv4_verify,
)
from tests.emulators.scripted import ScriptedEmulator, json_response

REQUEST_ID = "5b2c7f0a-0000-4000-8000-sagemaker001"
ENDPOINTS = {"tgi-chat": "messages", "tgi-generate": "generate", "jumpstart-embed": "embed"}
GENERATE_PARAMETERS = {
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "do_sample",
    "details",
    "decoder_input_details",
    "return_full_text",
    "repetition_penalty",
}


@dataclass
class ModelFault:
    """The container answered an error (InvokeEndpoint's 424 ModelError)."""

    status: int
    message: str


@dataclass
class StreamFault:
    """The stream breaks with a ModelStreamError after `after` payload parts."""

    after: int
    message: str = "Model stream broke"


def _error(status: int, name: str, message: str, **extra: Any) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message, **extra}),
        content_type="application/json",
        headers={
            "x-amzn-RequestId": REQUEST_ID,
            "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.sagemaker/",
        },
    )


def payload_part(data: bytes) -> bytes:
    headers = {":event-type": "PayloadPart", ":message-type": "event"}
    return frame_encode(headers, data)


def words(text: str) -> int:
    return len(text.split())


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


class SageMakerEmulator(ScriptedEmulator):
    name = "sagemaker-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/endpoints/{endpoint}/{action}", self._invoke)

    async def _invoke(self, request: web.Request) -> web.StreamResponse:
        received = await self.receive(request)
        try:
            sigv4_verify(
                request,
                received.raw,
                keys={ACCESS_KEY: (SECRET_KEY, None)},
                region=REGION,
                service="sagemaker",
            )
        except Refused as refused:
            return _error(refused.status, refused.exception, refused.message)
        endpoint = unquote(request.match_info["endpoint"])
        action = request.match_info["action"]
        kind = ENDPOINTS.get(endpoint)
        if kind is None:
            return _error(
                400,
                "ValidationError",
                f"Endpoint {endpoint} of account 123456789012 not found.",
            )
        streaming = action == "invocations-response-stream"
        if action not in ("invocations", "invocations-response-stream"):
            return _error(404, "UnknownOperationException", "Unknown operation")
        body = received.body
        reply = self.next_reply()
        if isinstance(reply, ModelFault):
            return _error(
                424,
                "ModelError",
                f"Received client error ({reply.status}) from primary with message "
                f'"{reply.message}".',
                OriginalStatusCode=reply.status,
                OriginalMessage=reply.message,
            )
        if not isinstance(body, dict):
            return _error(424, "ModelError", "Received client error (422) from primary.")
        text = reply if isinstance(reply, str) else "Hello from SageMaker."
        if kind == "embed":
            texts = body.get("text_inputs")
            if set(body) != {"text_inputs"} or not isinstance(texts, list):
                return _error(424, "ModelError", "Received client error (400) from primary.")
            return json_response({"embedding": [[float(len(t)), 0.5] for t in texts]})
        if kind == "messages":
            events, answer = self._messages(body, text)
        else:
            events, answer = self._generate(body, text)
        if isinstance(answer, web.Response):
            return answer
        if not streaming:
            return json_response(answer, **{"x-amzn-RequestId": REQUEST_ID})
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "X-Amzn-SageMaker-Content-Type": "text/event-stream",
                "x-amzn-RequestId": REQUEST_ID,
            }
        )
        await response.prepare(request)
        data = b"".join(f"data: {e}\n\n".encode() for e in events)
        # Payload parts cut through events, as a container's writes are.
        parts = [data[i : i + 23] for i in range(0, len(data), 23)]
        frames = [payload_part(p) for p in parts]
        if isinstance(reply, StreamFault):
            frames = frames[: reply.after]
            frames.append(
                frame_encode(
                    {":exception-type": "ModelStreamError", ":message-type": "exception"},
                    orjson.dumps({"Message": reply.message, "ErrorCode": "StreamBroken"}),
                )
            )
        wire = b"".join(frames)
        for start in range(0, len(wire), 41):
            await response.write(wire[start : start + 41])
        await response.write_eof()
        return response

    def _messages(self, body: dict[str, Any], text: str) -> tuple[list[str], Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or "inputs" in body:
            return [], _error(424, "ModelError", "Received client error (422) from primary.")
        prompt = sum(words(_text(m.get("content"))) for m in messages if isinstance(m, dict))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": words(text),
            "total_tokens": prompt + words(text),
        }
        base = {
            "id": "",
            "created": 1733400000,
            "model": "tgi",
            "system_fingerprint": "3.0.1-sha-emulator",
        }
        answer = base | {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        chunk = base | {"object": "chat.completion.chunk"}
        events = [
            orjson.dumps(
                chunk
                | {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": f"{w} "},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ]
                }
            ).decode()
            for w in text.split()
        ]
        events.append(
            orjson.dumps(
                chunk
                | {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ]
                }
            ).decode()
        )
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(orjson.dumps(chunk | {"choices": [], "usage": usage}).decode())
        events.append("[DONE]")
        return events, answer

    def _generate(self, body: dict[str, Any], text: str) -> tuple[list[str], Any]:
        parameters = body.get("parameters") or {}
        if (
            not isinstance(body.get("inputs"), str)
            or set(body) - {"inputs", "parameters", "stream"}
            or set(parameters) - GENERATE_PARAMETERS
        ):
            return [], _error(424, "ModelError", "Received client error (422) from primary.")
        prompt = words(body["inputs"])
        details = {
            "finish_reason": "eos_token",
            "generated_tokens": words(text),
            "seed": None,
            "prefill": [{"id": i, "text": "t", "logprob": None} for i in range(prompt)],
            "tokens": [],
        }
        answer = [{"generated_text": text, "details": details}]
        pieces = text.split()
        events = [
            orjson.dumps(
                {
                    "index": i + 1,
                    "token": {"id": i, "text": f"{w} ", "logprob": -0.1, "special": False},
                    "generated_text": None,
                    "details": None,
                }
            ).decode()
            for i, w in enumerate(pieces[:-1])
        ]
        events.append(
            orjson.dumps(
                {
                    "index": len(pieces),
                    "token": {"id": 99, "text": pieces[-1], "logprob": -0.1, "special": False},
                    "generated_text": text,
                    "details": {
                        "finish_reason": "eos_token",
                        "generated_tokens": len(pieces),
                        "input_length": prompt,
                        "seed": None,
                    },
                }
            ).decode()
        )
        return events, answer


_emulator: SageMakerEmulator | None = None


def sagemaker_emulator_get() -> SageMakerEmulator:
    global _emulator
    if _emulator is None:
        _emulator = SageMakerEmulator()
        _emulator.start()
    return _emulator

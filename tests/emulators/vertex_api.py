"""A local emulator of Vertex AI and Google's OAuth token endpoint on a real socket.

`POST /token` is Google's token URI: it takes the `jwt-bearer` grant, verifies the assertion's
RS256 signature with the service account's public key (the test generates the key pair), its
issuer, audience (Google's token endpoint, whatever URI it is posted to, as Google requires),
scope and lifetime, and issues an access token with a scripted lifetime (`issue_token` mints
one for the identity emulator's metadata server and STS).
`POST /v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`
checks that bearer token (issued here and unexpired), the project (by id or number) and the
region, then serves:

- publisher `google`: `generateContent`, `streamGenerateContent?alt=sse` (the Gemini request
  checks and reply framing of `tests.emulators.gemini_api`, plus Vertex's `labels`) and
  `predict` for text embeddings;
- publisher `anthropic`: `rawPredict` and `streamRawPredict`: Anthropic's Messages request with
  `anthropic_version: vertex-2023-10-16` and no `model` (checked with the Anthropic emulator's
  validator), answered in Anthropic's JSON or SSE events.

Supervised tuning of Gemini (`tuningJobs`), the Cloud Storage upload it reads its data from, and
the tuned models' endpoints are tests/emulators/vertex_tuning.py's, behind the same token check.

Errors are Google-shaped for the platform (auth, quota) and Anthropic-shaped for Claude's own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import orjson
from aiohttp import web

from tests.emulators import anthropic_api
from tests.emulators.gemini_api import (
    EmulatorBase,
    Reply,
    embedding_values,
    error_response,
)
from tests.emulators.vertex_tuning import PROJECT_NUMBER, VertexTuningAPI

PROJECT = "ogem-test-project"
CLIENT_EMAIL = "ogem-gateway@ogem-test-project.iam.gserviceaccount.com"
REGIONS = {"us-central1", "us-east5", "europe-west4", "global"}
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class VertexEmulator(EmulatorBase):
    thread_name = "vertex-emulator"

    def __init__(self, *, public_key: str) -> None:
        super().__init__()
        self.public_key = public_key
        self.token_lifetime = 3600
        self.token_delay = 0.0  # seconds the token endpoint waits before answering
        self.tokens: dict[str, float] = {}  # issued access token → expiry
        self.assertions: list[dict[str, Any]] = []  # verified JWT claims, in order
        self._anthropic_script: list[anthropic_api.Reply] = []
        self.tuning = VertexTuningAPI()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def script_claude(self, *replies: anthropic_api.Reply) -> None:
        with self._lock:
            self._anthropic_script.extend(replies)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._anthropic_script.clear()
            self.tokens.clear()
            self.assertions.clear()
            self.token_lifetime = 3600
            self.token_delay = 0.0
        self.tuning.clear()

    @property
    def model_requests(self) -> list[Any]:
        return [r for r in self.requests if r.path != "/token"]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post(
            "/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{target}",
            self._model,
        )
        self.tuning.routes(app, guard=self._guard, generate=self._tuned_generate)

    async def _tuned_generate(
        self, request: web.Request, body: Any, *, model: str, stream: bool
    ) -> web.StreamResponse:
        return await self.generate(
            request, body, model=model, stream=stream, extra=frozenset({"labels"})
        )

    async def _token(self, request: web.Request) -> web.Response:
        await self.receive(request)
        await asyncio.sleep(self.token_delay)
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _oauth_error("unsupported_grant_type", "Invalid grant_type")
        try:
            claims = jwt.decode(
                str(form.get("assertion") or ""),
                self.public_key,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=CLIENT_EMAIL,
            )
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if claims.get("scope") != SCOPE or claims["exp"] - claims["iat"] > 3600:
            return _oauth_error("invalid_scope", "Invalid scope or lifetime")
        with self._lock:
            self.assertions.append(claims)
            token = f"ya29.emulator-{len(self.assertions)}"
            self.tokens[token] = time.time() + self.token_lifetime
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def issue_token(self) -> tuple[str, int]:
        """A token the model endpoints accept, and its lifetime (another issuer's)."""
        with self._lock:
            token = f"ya29.issued-{len(self.tokens) + 1}"
            self.tokens[token] = time.time() + self.token_lifetime
        return token, self.token_lifetime

    async def _guard(
        self, request: web.Request, *, project: str | None = None, region: str | None = None
    ) -> web.Response | None:
        """Log the request and check it (`_refusal`)."""
        await self.receive(request)
        return self._refusal(request, project=project, region=region)

    def _refusal(
        self, request: web.Request, *, project: str | None, region: str | None
    ) -> web.Response | None:
        """The error answer to a request without a token issued here and unexpired, or for
        another project (by id or number) or an unknown region; None when it may go on."""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        if expiry is None or expiry < time.time():
            return error_response(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        if project is not None and project not in (PROJECT, PROJECT_NUMBER):
            return error_response(403, f"Permission denied on resource project {project}.")
        if region is not None and region not in REGIONS:
            return error_response(400, f"Unsupported region: {region}")
        return None

    async def _model(self, request: web.Request) -> web.StreamResponse:
        body = await self.receive(request)
        info = request.match_info
        refused = self._refusal(request, project=info["project"], region=info["region"])
        if refused is not None:
            return refused
        if not isinstance(body, dict):
            return error_response(400, "Invalid JSON payload received.")
        model, _, method = info["target"].partition(":")
        if info["publisher"] == "google":
            if method in ("generateContent", "streamGenerateContent"):
                return await self.generate(
                    request,
                    body,
                    model=model,
                    stream=method == "streamGenerateContent",
                    extra=frozenset({"labels"}),
                )
            if method == "predict":
                return self._predict(body)
        if info["publisher"] == "anthropic" and method in ("rawPredict", "streamRawPredict"):
            return await self._claude(request, body, model=model, stream=method != "rawPredict")
        return error_response(404, f"Publisher model {info['publisher']}/{model} not found.")

    def _predict(self, body: dict[str, Any]) -> web.Response:
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            return error_response(400, "instances: required")
        dimensions = int((body.get("parameters") or {}).get("outputDimensionality") or 8)
        predictions = []
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict) or not isinstance(instance.get("content"), str):
                return error_response(400, f"instances[{i}].content: required")
            if set(instance) - {"content", "task_type", "title"}:
                return error_response(400, f"instances[{i}]: unknown field")
            text = instance["content"]
            predictions.append(
                {
                    "embeddings": {
                        "values": embedding_values(text, dimensions),
                        "statistics": {"token_count": len(text.split()), "truncated": False},
                    }
                }
            )
        return web.json_response({"predictions": predictions, "metadata": {}})

    async def _claude(
        self, request: web.Request, body: dict[str, Any], *, model: str, stream: bool
    ) -> web.StreamResponse:
        def refuse(message: str) -> web.Response:
            return anthropic_api._error_response(400, "invalid_request_error", message)

        if body.get("anthropic_version") != "vertex-2023-10-16":
            return refuse("anthropic_version: must be vertex-2023-10-16")
        if "model" in body:
            return refuse("model: Extra inputs are not permitted")
        if bool(body.get("stream")) != stream:
            return refuse("stream: must match the method (streamRawPredict streams)")
        checked = {k: v for k, v in body.items() if k != "anthropic_version"} | {"model": model}
        try:
            anthropic_api.validate_messages_request(checked)
        except anthropic_api.InvalidRequest as exc:
            return refuse(str(exc))
        with self._lock:
            reply = (
                self._anthropic_script.pop(0)
                if self._anthropic_script
                else anthropic_api._default_reply(checked)
            )
        if reply.status != 200:
            return anthropic_api._error_response(
                reply.status, reply.error_type, reply.error_message, **reply.headers
            )
        reply = anthropic_api.callable_only(checked, reply)
        if not stream:
            return web.json_response(anthropic_api._message(checked, reply))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        for name, data in anthropic_api.stream_events(checked, reply):
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        await response.write_eof()
        return response


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


__all__ = ["CLIENT_EMAIL", "PROJECT", "PROJECT_NUMBER", "Reply", "VertexEmulator"]

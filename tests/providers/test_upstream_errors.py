"""One map from an upstream's error answer to Ogem's error, the same for every provider.

Each provider's emulator answers every status below in that provider's own error shape (OpenAI's
and Anthropic's `error` objects, Mistral's flat one, Google's, Bedrock's header-named exceptions,
Cohere's `message`, FastAPI's `detail`, Deepgram's `err_msg`, Hugging Face's `error` string,
Replicate's RFC 7807 problem), over a real socket; the adapter must give the same Ogem status,
type and code for each, the message `<provider> returned <status> [<label>]: <message>`, and the
deployment's secret, which the upstream echoes, redacted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.errors import GatewayError
from providers.adapter import ProviderAdapter, UploadFile, UpstreamResponse
from providers.anthropic.errors import ERROR_TYPE_STATUS
from providers.base import Deployment, Endpoint
from providers.bedrock.auth import credentials_forget
from providers.bedrock.errors import EXCEPTION_STATUS
from providers.registry import adapter_get
from tests.emulators import (
    ai21_api,
    anthropic_api,
    assemblyai_api,
    bedrock_api,
    cohere_api,
    deepgram_api,
    gemini_api,
    huggingface_api,
    jina_ai_api,
    replicate_api,
    voyage_api,
)
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.scripted import Fault
from tests.emulators.vertex_api import PROJECT, VertexEmulator

# upstream status → (Ogem status, type, code); client errors keep OpenAI-shaped bodies' code.
TABLE: dict[int, tuple[int, str, str | None]] = {
    400: (400, "invalid_request_error", None),
    401: (502, "upstream_error", "upstream_rejected_credentials"),
    402: (502, "upstream_error", "upstream_payment_required"),
    403: (502, "upstream_error", "upstream_rejected_credentials"),
    404: (404, "not_found_error", None),
    408: (504, "upstream_error", "upstream_timeout"),
    409: (400, "invalid_request_error", None),
    413: (413, "invalid_request_error", "request_too_large"),
    422: (400, "invalid_request_error", None),
    424: (502, "upstream_error", "upstream_dependency_failed"),
    429: (429, "rate_limit_error", "rate_limit_exceeded"),
    499: (502, "upstream_error", "upstream_error"),
    500: (502, "upstream_error", "upstream_error"),
    502: (502, "upstream_error", "upstream_error"),
    503: (503, "upstream_error", "upstream_unavailable"),
    504: (504, "upstream_error", "upstream_timeout"),
    529: (503, "upstream_error", "upstream_unavailable"),
}
RETRY_AFTER = "7"
VERTEX_TOKEN = "ya29.table-test-token"
AUDIO = [UploadFile("file", "a.wav", b"RIFF0000WAVEfmt ", "audio/wav")]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
ANTHROPIC_TYPES = {status: kind for kind, status in ERROR_TYPE_STATUS.items()}
BEDROCK_EXCEPTIONS = {status: name for name, status in reversed(EXCEPTION_STATUS.items())}


@dataclass(frozen=True)
class Case:
    """One provider: how its emulator answers an error, and the call that meets it."""

    provider: str
    secret: str  # what the upstream echoes: the deployment's credential
    # (emulators, status, message, headers) → the deployment, its upstream's answer scripted
    arrange: Callable[[Emulators, int, str, dict[str, str]], Deployment]
    label: Callable[[int], str] = lambda status: ""  # the upstream's name for the error
    endpoint: Endpoint = Endpoint.CHAT
    body: dict[str, Any] | None = None
    files: list[UploadFile] | None = None
    streams: bool = True
    openai_shaped: bool = False  # its body carries `code` and `param` (kept for client errors)
    variant: str = ""  # told apart from another Case of the provider


class Emulators:
    """The emulators the table runs against, started once for the module."""

    def __init__(self) -> None:
        self.openai = OpenAIEmulator(api_key=UPSTREAM_KEY).start()
        self.vertex = VertexEmulator(public_key="").start()
        self.vertex.tokens[VERTEX_TOKEN] = time.time() + 3600

    def stop(self) -> None:
        self.openai.stop()


def _deployment(
    provider: str, api_base: str, api_key: str | None = None, **extra: Any
) -> Deployment:
    return Deployment(
        id=f"table:{provider}",
        model_name=provider,
        provider=provider,
        upstream_model=extra.pop("model", "model-x"),
        api_base=api_base,
        api_key=api_key,
        **extra,
    )


def _openai(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    e.openai.reset()
    kind = "invalid_request_error" if status < 500 else "server_error"
    error = {"message": message, "type": kind, "param": "messages", "code": "invalid_value"}
    e.openai.inject(status=status, body={"error": error}, headers=headers)
    return _deployment("openai", f"{e.openai.url}/v1", UPSTREAM_KEY)


def _mistral(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    e.openai.reset()
    flat = {"object": "error", "message": message, "type": "invalid_request_error", "code": None}
    e.openai.inject(status=status, body=flat, headers=headers)
    return _deployment("mistral", f"{e.openai.url}/v1", UPSTREAM_KEY)


def _anthropic(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    emulator = anthropic_api.anthropic_emulator_get()
    emulator.reset()
    kind = ANTHROPIC_TYPES.get(status, "api_error")
    emulator.script(anthropic_api.reply_error(status, kind, message, headers=headers))
    return _deployment("anthropic", emulator.url, anthropic_api.API_KEY)


def _bedrock(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    emulator = bedrock_api.bedrock_emulator_get()
    emulator.reset()
    credentials_forget()
    exception = BEDROCK_EXCEPTIONS.get(status, "InternalServerException")
    emulator.script(bedrock_api.reply_error(status, exception, message, headers=headers))
    keys = {
        "aws_access_key_id": bedrock_api.ACCESS_KEY,
        "aws_secret_access_key": bedrock_api.SECRET_KEY,
    }
    return _deployment(
        "bedrock",
        emulator.url,
        None,
        model="anthropic.claude-3-5-haiku-20241022-v1:0",
        region=bedrock_api.REGION,
        params=keys,
    )


def _cohere(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    emulator = cohere_api.cohere_emulator_get()
    emulator.reset()
    emulator.script(cohere_api.reply_error(status, message, headers=headers))
    return _deployment("cohere", emulator.url, cohere_api.API_KEY)


def _gemini(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
    emulator = gemini_api.gemini_emulator_get()
    emulator.reset()
    emulator.script(gemini_api.reply_error(status, message, headers=headers))
    return _deployment("gemini", emulator.url, gemini_api.API_KEY, model="gemini-2.0-flash")


def _vertex(*, claude: bool) -> Callable[[Emulators, int, str, dict[str, str]], Deployment]:
    """Gemini on Vertex AI (Google's errors), or Claude on Vertex AI (Anthropic's)."""

    def arrange(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
        e.vertex.reset()
        e.vertex.tokens[VERTEX_TOKEN] = time.time() + 3600
        if claude:
            kind = ANTHROPIC_TYPES.get(status, "api_error")
            e.vertex.script_claude(
                anthropic_api.reply_error(status, kind, message, headers=headers)
            )
        else:
            e.vertex.script(gemini_api.reply_error(status, message, headers=headers))
        return _deployment(
            "vertex_ai",
            e.vertex.url,
            VERTEX_TOKEN,
            model="claude-3-5-haiku@20241022" if claude else "gemini-2.0-flash",
            params={"vertex_project": PROJECT},
        )

    return arrange


def _scripted(
    provider: str, module: Any, fault: Callable[[int, str, dict], Fault], **case: Any
) -> Case:
    """The Case of a provider whose emulator answers scripted `Fault`s (`module`: its emulator
    module, with its `API_KEY` and its `*_emulator_get`)."""
    get = next(getattr(module, name) for name in dir(module) if name.endswith("_emulator_get"))

    def arrange(e: Emulators, status: int, message: str, headers: dict[str, str]) -> Deployment:
        emulator = get()
        emulator.reset()
        emulator.script(fault(status, message, headers))
        model = replicate_api.CHAT_MODEL if provider == "replicate" else "model-x"
        return _deployment(provider, emulator.url, module.API_KEY, model=model)

    return Case(provider, module.API_KEY, arrange, **case)


def _detail(status: int, message: str, headers: dict[str, str]) -> Fault:
    return voyage_api.detail(status, message, **headers)


EMBEDDINGS: dict[str, Any] = {
    "endpoint": Endpoint.EMBEDDINGS,
    "body": {"model": "m", "input": "x"},
    "streams": False,
}
TRANSCRIPTIONS: dict[str, Any] = {
    "endpoint": Endpoint.AUDIO_TRANSCRIPTIONS,
    "files": AUDIO,
    "streams": False,
}
CASES = [
    Case(
        "openai",
        UPSTREAM_KEY,
        _openai,
        label=lambda s: "invalid_request_error" if s < 500 else "server_error",
        openai_shaped=True,
    ),
    Case("mistral", UPSTREAM_KEY, _mistral),
    Case(
        "anthropic",
        anthropic_api.API_KEY,
        _anthropic,
        label=lambda s: ANTHROPIC_TYPES.get(s, "api_error"),
    ),
    Case(
        "bedrock",
        bedrock_api.SECRET_KEY,
        _bedrock,
        label=lambda s: BEDROCK_EXCEPTIONS.get(s, "InternalServerException"),
    ),
    Case("cohere", cohere_api.API_KEY, _cohere),
    Case(
        "gemini",
        gemini_api.API_KEY,
        _gemini,
        label=lambda s: gemini_api.STATUS_NAMES.get(s, "UNKNOWN"),
    ),
    Case(
        "vertex_ai",
        VERTEX_TOKEN,
        _vertex(claude=False),
        label=lambda s: gemini_api.STATUS_NAMES.get(s, "UNKNOWN"),
    ),
    Case(
        "vertex_ai",
        VERTEX_TOKEN,
        _vertex(claude=True),
        variant="claude",
        label=lambda s: ANTHROPIC_TYPES.get(s, "api_error"),
    ),
    _scripted("voyage", voyage_api, _detail, **EMBEDDINGS),
    _scripted("jina_ai", jina_ai_api, _detail, **EMBEDDINGS),
    _scripted("ai21", ai21_api, _detail),
    _scripted(
        "deepgram",
        deepgram_api,
        lambda s, m, h: deepgram_api.dg_error(s, "ERR", m, **h),
        body={"model": "nova-3"},
        **TRANSCRIPTIONS,
    ),
    _scripted(
        "assemblyai",
        assemblyai_api,
        lambda s, m, h: assemblyai_api.aai_error(s, m, **h),
        body={"model": "slam-1"},
        **TRANSCRIPTIONS,
    ),
    _scripted("huggingface", huggingface_api, lambda s, m, h: huggingface_api.hf_error(s, m, **h)),
    _scripted("replicate", replicate_api, lambda s, m, h: replicate_api.problem(s, m, **h)),
]
CASE_IDS = [f"{case.provider}-{case.variant}" if case.variant else case.provider for case in CASES]


def _adapter(provider: str) -> ProviderAdapter:
    adapter = adapter_get(provider)
    assert adapter is not None
    return adapter


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    started = Emulators()
    yield started
    started.stop()


async def _meet(case: Case, deployment: Deployment, *, stream: bool) -> GatewayError:
    adapter: ProviderAdapter = _adapter(case.provider)
    body = dict(case.body or CHAT)
    with pytest.raises(GatewayError) as caught:
        if stream:
            async for _ in adapter.stream(
                endpoint=case.endpoint, deployment=deployment, body=body, files=case.files
            ):
                pass
        else:
            await adapter.call(
                endpoint=case.endpoint, deployment=deployment, body=body, files=case.files
            )
    return caught.value


def _expected_message(case: Case, status: int) -> str:
    label = case.label(status)
    return f"{case.provider} returned {status}{' ' + label if label else ''}: no to [redacted]"


@pytest.mark.parametrize("status", sorted(TABLE))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_every_provider_maps_every_status_the_same_way(
    emulators: Emulators, case: Case, status: int
) -> None:
    deployment = case.arrange(
        emulators, status, f"no to {case.secret}", {"Retry-After": RETRY_AFTER}
    )
    error = await _meet(case, deployment, stream=False)
    ogem_status, kind, code = TABLE[status]
    client_error = ogem_status in (400, 404)
    if case.openai_shaped and client_error:
        code = "invalid_value"
    body = error.to_body()["error"]
    assert (error.status, body["type"], body["code"]) == (ogem_status, kind, code)
    assert body["message"] == _expected_message(case, status)
    assert case.secret not in str(body)
    expected_param = "messages" if case.openai_shaped and ogem_status in (400, 404, 413) else None
    assert body["param"] == expected_param
    assert error.headers == ({"Retry-After": RETRY_AFTER} if status == 429 else {})
    if ogem_status >= 500:
        assert error.provider == case.provider  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [401, 429, 529])
@pytest.mark.parametrize("case", [c for c in CASES if c.streams], ids=lambda c: c.provider)
async def test_a_stream_refused_at_its_start_maps_the_same_way(
    emulators: Emulators, case: Case, status: int
) -> None:
    deployment = case.arrange(emulators, status, f"no to {case.secret}", {})
    error = await _meet(case, deployment, stream=True)
    assert (error.status, error.code) == TABLE[status][::2]
    assert error.message == _expected_message(case, status)


@pytest.mark.parametrize("status", sorted(TABLE))
async def test_the_mock_simulates_upstream_errors_through_the_same_map(status: int) -> None:
    body = {**CHAT, "mock_response": {"error": {"status": status, "message": "boom"}}}
    with pytest.raises(GatewayError) as caught:
        await _adapter("mock").call(
            endpoint=Endpoint.CHAT, deployment=_deployment("mock", "", None), body=body
        )
    error = caught.value.to_body()["error"]
    assert (caught.value.status, error["type"], error["code"]) == TABLE[status]
    assert error["message"] == f"mock returned {status}: boom"


def _mapped(provider: str, status: int, body: bytes, **deployment: Any) -> GatewayError:
    """The error `provider`'s adapter makes of an upstream answer (no socket needed)."""
    return _adapter(provider).map_error(
        deployment=_deployment(provider, "", **{"api_key": None, **deployment}),
        response=UpstreamResponse(status, {"Retry-After": "20"}, body),
    )


def test_openai_insufficient_quota_is_the_payment_error_not_a_rate_limit() -> None:
    body = (
        b'{"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",'
        b' "param": null, "code": "insufficient_quota"}}'
    )
    error = _mapped("openai", 429, body)
    assert (error.status, error.type, error.code) == (
        502,
        "upstream_error",
        "upstream_payment_required",
    )
    assert error.headers == {}


@pytest.mark.parametrize(
    ("message", "redacted"),
    [
        # OpenAI echoes a masked key: no part of it is shown.
        (
            "Incorrect API key provided: sk-proj-********************abcd. You can find your "
            "API key at https://platform.openai.com/account/api-keys.",
            "Incorrect API key provided: [redacted]. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
        ),
        ("API key not valid: AIzaSyA1234567890abcdefghijklmnop", "API key not valid: [redacted]"),
        ("token r8_0123456789abcdef refused", "token [redacted] refused"),
        ("sent Authorization: Bearer eyJhbGciOi.payload.sig", "sent Authorization: [redacted]"),
        ("key-42 is not valid", "[redacted] is not valid"),
        ("a risk-assessment of desk-12345678 stays", "a risk-assessment of desk-12345678 stays"),
    ],
)
@pytest.mark.parametrize("provider", ["openai", "cohere"])
def test_one_redaction_rule(provider: str, message: str, redacted: str) -> None:
    body = b'{"error": {"message": "%s"}}' % message.encode()
    error = _mapped(provider, 401, body, api_key="key-42")
    assert error.message == f"{provider} returned 401: {redacted}"


def test_every_credential_of_the_deployment_is_redacted() -> None:
    params = {
        "vertex_credentials": {
            "type": "service_account",
            "private_key": "-----BEGIN PRIVATE KEY-----abc",
            "client_email": "svc@project.iam.gserviceaccount.com",
        },
        "aws_secret_access_key": "aws-secret",
        "aws_access_key_id": "AKIA0000",
        "extra_headers": {"X-Tenant": "t-1"},
        "max_tokens": 100,
    }
    echoed = (
        "tok-1 | -----BEGIN PRIVATE KEY-----abc | aws-secret | t-1 | AKIA0000 | "
        "svc@project.iam.gserviceaccount.com | service_account | 100"
    )
    error = _mapped(
        "openai", 400, b'{"message": "%s"}' % echoed.encode(), api_key="tok-1", params=params
    )
    assert error.message == (
        "openai returned 400: [redacted] | [redacted] | [redacted] | [redacted] | AKIA0000 | "
        "svc@project.iam.gserviceaccount.com | service_account | 100"
    )


def test_a_non_json_body_says_its_text_but_not_an_html_page() -> None:
    text = b"upstream connect error or disconnect/reset before headers"
    assert _mapped("anthropic", 502, text).message == f"anthropic returned 502: {text.decode()}"
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    assert _mapped("voyage", 502, html).message == "voyage returned 502"
    assert _mapped("voyage", 418, b"").status == 400

"""IBM Cloud IAM: an API key exchanged for a bearer token, cached until shortly before it expires.

`POST {iam_url}` with the form `grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=...`
answers `{"access_token", "expires_in", "expiration"}` (IBM Cloud IAM's API reference). A
deployment may instead hold a ready token (`params.token`, LiteLLM's `WATSONX_TOKEN`), sent as is.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import orjson
from cachetools import LRUCache, TLRUCache

from providers.base import Deployment
from providers.errors import GatewayError, UpstreamError
from providers.http import UpstreamRequest

PROVIDER = "watsonx"
IAM_URL = "https://iam.cloud.ibm.com/identity/token"
GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey"
REFRESH_MARGIN_SECONDS = 300.0

# (token, unix expiry) by (IAM URL, digest of the API key).
_tokens: TLRUCache[tuple[str, str], tuple[str, float]] = TLRUCache(
    maxsize=1024, ttu=lambda _key, value, _now: value[1] - REFRESH_MARGIN_SECONDS, timer=time.time
)
_tokens_lock = threading.Lock()
_locks: LRUCache[tuple[str, str], asyncio.Lock] = LRUCache(maxsize=1024)

# Sends one request and returns (status, body): the adapter's own transport, so the exchange
# obeys the deployment's proxy, timeouts and address policy.
Send = Callable[[UpstreamRequest], Awaitable[tuple[int, bytes]]]


def iam_url(deployment: Deployment) -> str:
    return str(deployment.params.get("iam_url") or IAM_URL)


def token_request(*, url: str, api_key: str) -> UpstreamRequest:
    return UpstreamRequest(
        method="POST",
        url=url,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        },
        content=urlencode({"grant_type": GRANT_TYPE, "apikey": api_key}).encode(),
    )


def _refused(status: int, body: bytes) -> GatewayError:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = {}
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return UpstreamError(
        f"watsonx: IBM Cloud IAM refused the API key ({status}"
        + (f": {message})" if isinstance(message, str) else ")"),
        provider=PROVIDER,
        code="upstream_rejected_credentials",
    )


async def bearer_token(deployment: Deployment, *, send: Send) -> str:
    """The bearer token for the deployment's calls: its own `token`, else its API key's."""
    ready = deployment.params.get("token") or os.environ.get("WATSONX_TOKEN")
    if isinstance(ready, str) and ready:
        return ready
    api_key = (
        deployment.api_key
        or str(deployment.params.get("apikey") or "")
        or os.environ.get("WATSONX_APIKEY")
        or os.environ.get("WATSONX_API_KEY")
    )
    if not api_key:
        raise UpstreamError(
            f"The watsonx deployment {deployment.id} has neither an API key nor a token.",
            provider=PROVIDER,
            code="upstream_credentials_missing",
        )
    url = iam_url(deployment)
    key = (url, hashlib.sha256(api_key.encode()).hexdigest())
    with _tokens_lock:
        cached = _tokens.get(key)
        lock = _locks.setdefault(key, asyncio.Lock())
    if cached is not None:
        return cached[0]
    async with lock:  # one exchange per key at a time, not one per waiting request
        with _tokens_lock:
            cached = _tokens.get(key)
        if cached is not None:
            return cached[0]
        status, body = await send(token_request(url=url, api_key=api_key))
        if status >= 400:
            raise _refused(status, body)
        try:
            answer = orjson.loads(body)
            token = str(answer["access_token"])
            expiry = float(answer.get("expiration") or time.time() + int(answer["expires_in"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(
                "watsonx: IBM Cloud IAM answered without a token.", provider=PROVIDER
            ) from exc
        with _tokens_lock:
            _tokens[key] = (token, expiry)
        return token


def tokens_forget() -> None:
    """Drop cached tokens (tests)."""
    with _tokens_lock:
        _tokens.clear()

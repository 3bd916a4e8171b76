"""Google credentials for Vertex AI, through google-auth.

Where a deployment's credentials come from, first match wins:
  1. `params.vertex_credentials`: a credentials JSON as LiteLLM takes it (a dict, a JSON string or
     a file's path): a service-account key, or (operator deployments only) any other type
     google-auth reads: `external_account` (workload identity federation), `authorized_user`,
     `impersonated_service_account`;
  2. the file named by `GOOGLE_APPLICATION_CREDENTIALS` (operator deployments only), any of those;
  3. the deployment's `api_key`, used as a ready OAuth access token;
  4. application-default credentials (operator deployments only): gcloud's ADC file or the
     metadata server (Compute Engine, GKE, Cloud Run; `GCE_METADATA_HOST` points elsewhere).
An organization's deployment uses only its own service-account key or token: the other types
read the server's files, URLs or identity.

google-auth's refresh is blocking, so it runs in a worker thread, one at a time per credential
(concurrent requests on an event loop await the one refresh in flight); its HTTP calls go back
to the event loop's pooled aiohttp session, with the deployment's timeouts and address policy
(an organization's `token_uri` is the organization's choice). A token is reused until
`REFRESH_MARGIN` seconds before it expires. Errors name the account, never the key.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
import httpx
import orjson
from cachetools import LRUCache
from google.oauth2 import service_account

from providers.adapter import upstream_refusal
from providers.addresses import AddressPolicy, AddressRefusedError, url_host_check
from providers.base import Deployment, Timeouts
from providers.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from providers.http import http_session, http_timeout

PROVIDER = "vertex_ai"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = 300
ADC_RETRY_SECONDS = 60.0  # after application-default credentials were not found
SERVICE_ACCOUNT = "service_account"


class GoogleCredential:
    """One source of credentials and its current access token."""

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials | None,
        *,
        label: str,
        project_id: str = "",
    ) -> None:
        self.credentials = credentials  # None: application-default, found on first refresh
        self.label = label  # names the account in errors, never the key
        self.project_id = project_id
        self.token = ""
        self.fresh_until = 0.0  # time.time() before which `token` is used as it is
        self._lock = threading.Lock()
        self.refreshing: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}
        self._missing: tuple[float, Exception] | None = None  # ADC not found: until, why

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"GoogleCredential({self.label!r})"

    def refresh_blocking(self, request: google.auth.transport.Request) -> None:
        """Get a new token unless another thread just did (a worker thread: this blocks)."""
        with self._lock:
            if self.fresh_until > time.time():
                return
            if self.credentials is None:
                self.credentials = self._application_default(request)
            self.credentials.refresh(request)
            expiry = self.credentials.expiry  # naive UTC; None: the token does not expire
            self.token = str(self.credentials.token)
            self.fresh_until = (
                expiry.replace(tzinfo=UTC).timestamp() if expiry else time.time() + 3600
            ) - REFRESH_MARGIN

    def _application_default(
        self, request: google.auth.transport.Request
    ) -> google.auth.credentials.Credentials:
        if self._missing is not None and self._missing[0] > time.monotonic():
            raise self._missing[1]
        try:
            # No scopes here: with them google-auth would look the project up over the network.
            found, _ = google.auth.default(request=request)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            self._missing = (time.monotonic() + ADC_RETRY_SECONDS, exc)
            raise
        return google.auth.credentials.with_scopes_if_required(found, [SCOPE])


@dataclass(frozen=True, slots=True)
class _Response(google.auth.transport.Response):
    status: int
    headers: Mapping[str, str]
    data: bytes


class _TransportBase(google.auth.transport.Request):
    """google-auth's HTTP calls (`_exchange` makes one), its last status kept."""

    status = 0  # the token endpoint's last answer, for the error message

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        response = self._exchange(url, method, body, dict(headers or {}))
        self.status = response.status
        return response

    def _exchange(
        self, url: str, method: str, body: bytes | None, headers: dict[str, str]
    ) -> _Response:
        raise NotImplementedError


class _Transport(_TransportBase):
    """google-auth's HTTP calls, made from its refresh thread through the event loop's pooled
    session: the deployment's address policy and timeouts apply as to every upstream call."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, policy: AddressPolicy | None, timeouts: Timeouts
    ) -> None:
        self._loop = loop
        self._policy = policy
        self._timeouts = timeouts

    def _exchange(
        self, url: str, method: str, body: bytes | None, headers: dict[str, str]
    ) -> _Response:
        future = asyncio.run_coroutine_threadsafe(
            self._send(url, method, body, headers), self._loop
        )
        try:
            return future.result(timeout=self._timeouts.total + 5)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise google.auth.exceptions.TransportError("TimeoutError") from exc

    async def _send(
        self, url: str, method: str, body: bytes | None, headers: dict[str, str]
    ) -> _Response:
        try:
            if self._policy is not None:
                self._policy.check_literal(urlsplit(url).hostname or "")
            async with http_session(self._policy).request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=http_timeout(self._timeouts),
                allow_redirects=False,
            ) as response:
                # The headers stay case-insensitive: google-auth reads `metadata-flavor`.
                return _Response(response.status, response.headers.copy(), await response.read())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise google.auth.exceptions.TransportError(type(exc).__name__) from exc


# Parsed credentials by their JSON (a key file's: its path and modification time) and policy.
_credentials: LRUCache[Any, GoogleCredential] = LRUCache(maxsize=256)
_credentials_lock = threading.Lock()


def credentials_info_parse(credentials: Any) -> dict[str, Any]:
    """`vertex_credentials` as LiteLLM takes it: a dict, a JSON string or a JSON file's path."""
    info = credentials
    if isinstance(credentials, str):
        text = credentials.strip()
        if not text.startswith("{"):
            try:
                with open(os.path.expanduser(text), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise InvalidRequestError(
                    "The deployment's vertex_credentials file cannot be read."
                ) from exc
        try:
            info = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(
                "The deployment's vertex_credentials are not valid JSON."
            ) from exc
    if not isinstance(info, dict):
        raise InvalidRequestError("The deployment's vertex_credentials are not a JSON object.")
    info = {"type": SERVICE_ACCOUNT, **info}
    if info["type"] == SERVICE_ACCOUNT:
        missing = [name for name in ("client_email", "private_key") if not info.get(name)]
        if missing:
            raise InvalidRequestError(
                f"The deployment's vertex_credentials lack {', '.join(missing)}."
            )
        info.setdefault("token_uri", DEFAULT_TOKEN_URI)
    return info


def _credential_load(info: dict[str, Any], *, tenant: bool) -> GoogleCredential:
    kind = str(info.get("type"))
    if tenant and kind != SERVICE_ACCOUNT:
        raise InvalidRequestError(
            f"An organization's vertex_credentials must be a service account key, not {kind}."
        )
    try:
        if kind == SERVICE_ACCOUNT:
            loaded: Any = service_account.Credentials.from_service_account_info(info)
            project_id = info.get("project_id")
        else:
            # The operator's own configuration (google-auth warns about untrusted ones). No
            # scopes here: with them it would look an external account's project up over the
            # network; they are added right after.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded, project_id = google.auth.load_credentials_from_dict(info)
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"The deployment's vertex_credentials ({kind}) cannot be used: {_reason(exc)}."
        ) from exc
    label = (
        f"the service account {info['client_email']}"
        if kind == SERVICE_ACCOUNT
        else f"the {kind} credentials"
    )
    return GoogleCredential(
        google.auth.credentials.with_scopes_if_required(loaded, [SCOPE]),
        label=label,
        project_id=str(project_id or info.get("project_id") or _default_project()),
    )


def _default_project() -> str:
    return os.environ.get("GOOGLE_CLOUD_PROJECT", os.environ.get("GCLOUD_PROJECT", ""))


def _reason(exc: Exception) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text if "PRIVATE KEY" not in text else type(exc).__name__


def _cached(key: Any, build: Any) -> GoogleCredential:
    with _credentials_lock:
        found = _credentials.get(key)
    if found is None:
        found = build()
        with _credentials_lock:
            found = _credentials.setdefault(key, found)
    return found


def deployment_credentials(deployment: Deployment) -> GoogleCredential | None:
    """The deployment's Google credentials (parsed once per distinct JSON), or None when it
    has none but its `api_key`. Raises InvalidRequestError for unusable credentials."""
    tenant = deployment.address_policy is not None
    credentials = deployment.params.get("vertex_credentials")
    if not credentials and not tenant:
        credentials = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if credentials:
        if isinstance(credentials, str):
            key: Any = credentials
            if not credentials.lstrip().startswith("{"):
                # A key file: its modification time is part of the key, so a rotated file is reread.
                try:
                    key += f"@{os.stat(os.path.expanduser(credentials)).st_mtime_ns}"
                except OSError:
                    pass
        else:
            key = orjson.dumps(credentials, option=orjson.OPT_SORT_KEYS).decode()
        return _cached(
            (key, deployment.address_policy),
            lambda: _credential_load(credentials_info_parse(credentials), tenant=tenant),
        )
    if deployment.api_key or tenant:
        return None
    return _cached(
        "application-default",
        lambda: GoogleCredential(
            None,
            label="the application-default credentials",
            project_id=_default_project(),
        ),
    )


async def access_token(
    credential: GoogleCredential,
    *,
    timeouts: Timeouts | None = None,
    policy: AddressPolicy | None = None,
) -> str:
    """A valid access token: the cached one, else one refresh shared by the concurrent callers.
    `policy`: the addresses the token endpoint may be at (the deployment's)."""
    if credential.fresh_until > time.time():
        return credential.token
    loop = asyncio.get_running_loop()
    flight = credential.refreshing.get(loop)
    if flight is None:
        transport = _Transport(loop, policy=policy, timeouts=timeouts or Timeouts())
        flight = loop.create_task(_refresh(credential, transport))
        credential.refreshing[loop] = flight
        flight.add_done_callback(lambda done: _landed(credential, loop, done))
    await asyncio.shield(flight)
    return credential.token


def _landed(
    credential: GoogleCredential, loop: asyncio.AbstractEventLoop, flight: asyncio.Future[None]
) -> None:
    credential.refreshing.pop(loop, None)
    if not flight.cancelled():
        flight.exception()  # retrieved: every waiter may have gone


async def _refresh(credential: GoogleCredential, transport: _Transport) -> None:
    await asyncio.to_thread(_refresh_blocking, credential, transport)


def _refresh_blocking(credential: GoogleCredential, transport: _TransportBase) -> None:
    """Refresh the token (blocks), google-auth's failures as Ogem's errors."""
    try:
        credential.refresh_blocking(transport)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise UpstreamError(
            f"{PROVIDER}: no Google credentials found (vertex_credentials, "
            "GOOGLE_APPLICATION_CREDENTIALS, an access token or the metadata server).",
            provider=PROVIDER,
            code="upstream_rejected_credentials",
        ) from exc
    except google.auth.exceptions.GoogleAuthError as exc:
        failure = _transport_failure(exc)
        if failure is not None and isinstance(failure.__cause__, AddressRefusedError):
            raise upstream_refusal(provider=PROVIDER, error=failure.__cause__) from exc
        if failure is not None and failure.__cause__ is not None:
            raise UpstreamUnavailableError(
                f"{PROVIDER}: the token endpoint is unreachable ({failure}).", provider=PROVIDER
            ) from exc
        raise UpstreamError(
            f"{PROVIDER}: the token endpoint refused {credential.label}"
            f"{_refusal(exc, status=transport.status)}",
            provider=PROVIDER,
            code="upstream_rejected_credentials",
        ) from exc


class _BlockingTransport(_TransportBase):
    """google-auth's HTTP calls from the control plane (Celery, a view's worker thread), where
    there is no event loop: blocking httpx, the deployment's address policy checked first."""

    def __init__(self, *, policy: AddressPolicy | None, timeouts: Timeouts) -> None:
        self._policy = policy
        self._timeouts = timeouts

    def _exchange(
        self, url: str, method: str, body: bytes | None, headers: dict[str, str]
    ) -> _Response:
        try:
            if self._policy is not None:
                url_host_check(url, policy=self._policy)
            response = httpx.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(self._timeouts.first_byte, connect=self._timeouts.connect),
                follow_redirects=False,
            )
        except (AddressRefusedError, httpx.HTTPError, OSError) as exc:
            raise google.auth.exceptions.TransportError(type(exc).__name__) from exc
        return _Response(response.status_code, response.headers, response.content)


def _transport_failure(exc: BaseException) -> google.auth.exceptions.TransportError | None:
    """The TransportError under a google-auth error: ours wrap the network failure as their
    cause; google-auth's own (an unexpected status from the metadata server) have none."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, google.auth.exceptions.TransportError):
            return seen
        seen = seen.__cause__
    return None


def _refusal(exc: google.auth.exceptions.GoogleAuthError, *, status: int) -> str:
    """ ": STATUS DESCRIPTION" of the OAuth error (never the whole body, which may quote a
    secret); google-auth's message when it failed before any answer (a credential source)."""
    if not status:
        return f": {exc.args[0]}" if exc.args and isinstance(exc.args[0], str) else ""
    answer: Any = exc.args[1] if len(exc.args) > 1 else {}
    if isinstance(answer, str | bytes):  # the STS client keeps the body as text
        try:
            answer = orjson.loads(answer)
        except orjson.JSONDecodeError:
            answer = {}
    reason = ""
    if isinstance(answer, dict):
        reason = str(answer.get("error_description") or answer.get("error") or "")
    return f": {status} {reason}".rstrip()


async def deployment_token(deployment: Deployment) -> str:
    """The bearer token of a deployment's calls: its credentials' access token, else its
    `api_key` used as one."""
    credential = deployment_credentials(deployment)
    if credential is not None:
        return await access_token(
            credential, timeouts=deployment.timeouts, policy=deployment.address_policy
        )
    return _api_key_token(deployment)


def deployment_token_blocking(deployment: Deployment) -> str:
    """`deployment_token` for the control plane (no event loop): the same cached credential,
    refreshed in this thread when it is stale."""
    credential = deployment_credentials(deployment)
    if credential is None:
        return _api_key_token(deployment)
    if credential.fresh_until <= time.time():
        transport = _BlockingTransport(
            policy=deployment.address_policy, timeouts=deployment.timeouts
        )
        _refresh_blocking(credential, transport)
    return credential.token


def _api_key_token(deployment: Deployment) -> str:
    if deployment.api_key:
        return deployment.api_key
    raise UpstreamError(
        f"The Vertex AI deployment {deployment.id} has no credentials "
        "(vertex_credentials, GOOGLE_APPLICATION_CREDENTIALS or an access token).",
        provider=PROVIDER,
        code="upstream_rejected_credentials",
    )


def tokens_forget() -> None:
    """Drop every cached credential and token (tests; a rotated key)."""
    with _credentials_lock:
        _credentials.clear()

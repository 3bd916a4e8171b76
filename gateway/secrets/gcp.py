"""Google Secret Manager: `secret://gcp/projects/<p>/secrets/<name>[/versions/<v>][#<field>]`.

`GET {endpoint}/v1/projects/<p>/secrets/<name>/versions/<v or latest>:access` with an OAuth access
token from google-auth's application-default credentials: the file named by
`GOOGLE_APPLICATION_CREDENTIALS` (a service-account key, or an `external_account` configuration of
workload identity federation), gcloud's ADC file, else the metadata server (Compute Engine, GKE,
Cloud Run; `GCE_METADATA_HOST` points elsewhere). `OGEM_GCP_SECRETMANAGER_URL` overrides the
endpoint (default https://secretmanager.googleapis.com). Secrets are read off the request path
(configuration loads), so google-auth's blocking refresh is called as it is, with timeouts.
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.urllib3
import orjson
import urllib3
from cachetools import LRUCache
from google.auth.exceptions import TransportError

from gateway.secrets.http import http_failure, http_json
from gateway.secrets.reference import SecretReference

WHAT = "Google Secret Manager"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"

_lock = threading.Lock()
# Credentials by where application-default credentials were found (a rotated key file is new).
_credentials: LRUCache[tuple[str, ...], Any] = LRUCache(maxsize=8)
_transport: google.auth.transport.urllib3.Request | None = None


def _request() -> google.auth.transport.urllib3.Request:
    global _transport
    if _transport is None:
        pool = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5.0, read=10.0), retries=False)
        _transport = google.auth.transport.urllib3.Request(pool)
    return _transport


def _environment() -> tuple[str, ...]:
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    try:
        stamp = str(os.stat(path).st_mtime_ns) if path else ""
    except OSError:
        stamp = ""
    return (path, stamp, os.environ.get("GCE_METADATA_HOST", ""))


def _token(ref: SecretReference) -> str:
    """A valid access token (google-auth refreshes it shortly before it expires)."""
    with _lock:
        key = _environment()
        credentials = _credentials.get(key)
        try:
            if credentials is None:
                # No scopes here: with them google-auth would look an external account's
                # project up over the network; they are added right after.
                found, _ = google.auth.default(request=_request())
                credentials = google.auth.credentials.with_scopes_if_required(found, [SCOPE])
                _credentials[key] = credentials
            if not credentials.valid:
                credentials.refresh(_request())
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ref.fail(
                "no Google credentials found (GOOGLE_APPLICATION_CREDENTIALS, gcloud's "
                "application-default credentials or the metadata server)"
            ) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            if isinstance(exc, TransportError) or isinstance(exc.__cause__, TransportError):
                raise ref.fail("Google's token endpoint is unreachable") from exc
            raise ref.fail(f"Google refused the credentials ({_oauth_error(exc)})") from exc
        return str(credentials.token)


def _oauth_error(exc: google.auth.exceptions.GoogleAuthError) -> str:
    """The OAuth error code (`invalid_grant`, ...), never the body, which may quote a secret."""
    answer = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    if isinstance(answer, str):  # the STS client keeps the body as text
        try:
            return str(orjson.loads(answer)["error"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
    return type(exc).__name__


def gcp_credentials_clear() -> None:
    """Forget the credentials, so a changed environment is read again."""
    with _lock:
        _credentials.clear()


def gcp_fetch(ref: SecretReference) -> str:
    endpoint = os.environ.get(
        "OGEM_GCP_SECRETMANAGER_URL", "https://secretmanager.googleapis.com"
    ).rstrip("/")
    name = ref.path if "/versions/" in ref.path else f"{ref.path}/versions/latest"
    headers = {"Authorization": f"Bearer {_token(ref)}"}
    status, body = http_json(ref, WHAT, "GET", f"{endpoint}/v1/{name}:access", headers=headers)
    if status != 200 or not isinstance(body, dict):
        raise http_failure(ref, WHAT, status)
    try:
        return base64.b64decode(body["payload"]["data"]).decode()
    except (KeyError, TypeError, ValueError) as exc:
        raise ref.fail(f"{WHAT} returned no payload") from exc

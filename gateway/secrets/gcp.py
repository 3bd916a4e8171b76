"""Google Secret Manager: `secret://gcp/projects/<p>/secrets/<name>[/versions/<v>][#<field>]`.

`GET {endpoint}/v1/projects/<p>/secrets/<name>/versions/<v or latest>:access` with an OAuth access
token: from the service account key file in `GOOGLE_APPLICATION_CREDENTIALS` (a signed JWT
exchanged at its `token_uri`), else from the metadata server (`GCE_METADATA_HOST`, default
metadata.google.internal). `OGEM_GCP_SECRETMANAGER_URL` overrides the endpoint
(default https://secretmanager.googleapis.com).
"""

from __future__ import annotations

import base64
import json
import os
import time

import jwt

from gateway.secrets.http import http_failure, http_json
from gateway.secrets.reference import SecretReference
from gateway.secrets.tokens import token_get

WHAT = "Google Secret Manager"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _from_service_account(ref: SecretReference, path: str) -> tuple[str, float]:
    try:
        with open(path) as handle:
            account = json.load(handle)
        email, private_key = account["client_email"], account["private_key"]
    except (OSError, ValueError, KeyError) as exc:
        raise ref.fail(f"cannot read the service account file {path}") from exc
    token_uri = account.get("token_uri") or "https://oauth2.googleapis.com/token"
    now = int(time.time())
    claims = {"iss": email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}
    headers = {"kid": account["private_key_id"]} if account.get("private_key_id") else None
    assertion = jwt.encode(claims, private_key, algorithm="RS256", headers=headers)
    status, body = http_json(
        ref,
        "Google OAuth",
        "POST",
        token_uri,
        data={"grant_type": JWT_BEARER, "assertion": assertion},
    )
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise http_failure(ref, "Google OAuth", status)
    return str(body["access_token"]), float(body.get("expires_in") or 3600)


def _from_metadata(ref: SecretReference) -> tuple[str, float]:
    host = os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
    status, body = http_json(
        ref, "the metadata server", "GET", url, headers={"Metadata-Flavor": "Google"}
    )
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise http_failure(ref, "the metadata server", status)
    return str(body["access_token"]), float(body.get("expires_in") or 3600)


def _token(ref: SecretReference) -> str:
    account_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
    if account_file:
        return token_get(f"gcp:{account_file}", lambda: _from_service_account(ref, account_file))
    host = os.environ.get("GCE_METADATA_HOST", "")
    return token_get(f"gcp-metadata:{host}", lambda: _from_metadata(ref))


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

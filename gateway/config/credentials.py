"""Which upstream credential a deployment may use, and its secrets at rest.

A deployment's key comes from one of three places:
- a reference (`os.environ/NAME`, `file:///path`, `secret://...`): it reads the server's own
  environment, files and secret managers, so only shared deployments (written by the operator)
  may hold one;
- a named `Credential`, usable by an organization's deployment only when the operator granted it
  to that organization;
- the key itself, entered by whoever writes the deployment and stored encrypted.

Nor may an organization's deployment fall back to the server's own cloud identity (Vertex AI's
GOOGLE_APPLICATION_CREDENTIALS, Bedrock's AWS chain). The same rules apply on write (API, admin)
and on load, so a row written before them is refused.
Secret params (`api_key`, `aws_secret_access_key`, `extra_headers`, ...) are stored encrypted in
`ModelDeployment.encrypted_secrets` (name -> token) beside the plain ones; their names are shown,
their values decrypted only when loading.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.config.provider_names import provider_canonical
from gateway.config.secrets import secret_resolve
from ogem_site.crypto import secret_decrypt, secret_value_encrypt
from providers.base import param_is_secret

if TYPE_CHECKING:
    from gateway.models import Credential, ModelDeployment

# What the API and admin show in place of a stored secret; sent back, it keeps the stored value.
REDACTED = "********"
API_KEY = "api_key"


def deployment_params_split(
    params: Mapping[str, Any], *, current: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain params, encrypted secret params) of what a client sent; a secret sent back as
    REDACTED keeps its `current` token, an empty one is removed."""
    plain: dict[str, Any] = {}
    tokens: dict[str, str] = {}
    for name, value in params.items():
        if not param_is_secret(name):
            plain[name] = value
        elif value == REDACTED:
            if name in current:
                tokens[name] = current[name]
        elif value not in (None, ""):
            tokens[name] = secret_value_encrypt(value)
    return plain, tokens


def deployment_params_shown(plain: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """Params as the API and admin show them: secrets by name only."""
    return {**plain, **{name: REDACTED for name in secrets if name != API_KEY}}


def credential_problem(
    *, organization_id: int | None, credential_ref: str, credential: Credential | None
) -> str | None:
    """Why a deployment of this organization (None: shared) may not use this credential."""
    if organization_id is None:
        return None
    if credential_ref:
        return (
            "an organization's deployment cannot use an os.environ/, file:// or secret:// "
            "reference (those are for the operator's shared deployments): give its api_key, or "
            "a credential the operator granted to the organization"
        )
    if credential is not None and not credential_is_granted(
        credential=credential, organization_id=organization_id
    ):
        return f'no credential named "{credential.name}" is granted to this organization'
    return None


def credential_is_granted(*, credential: Credential, organization_id: int) -> bool:
    # Iterates the (possibly prefetched) grants: loading many rows makes no query per row.
    return any(org.pk == organization_id for org in credential.organizations.all())


def credential_secret(*, credential: Credential, environ: Mapping[str, str] | None = None) -> str:
    """The secret a named credential holds; raises SecretError or DecryptionError."""
    if credential.reference:
        return secret_resolve(credential.reference, environ=environ)
    return secret_decrypt(credential.encrypted_value)


def deployment_write_problem(
    *,
    deployment: ModelDeployment | None,
    organization_id: int | None,
    data: Mapping[str, Any],
    api_key: str | None,
) -> tuple[str, str] | None:
    """(field, message) when this write would leave the deployment a key it may not use.

    `data` holds the fields written (`credential_ref`, `credential`); `api_key` is the key given,
    if any. The source given replaces the others (gateway.services), so the check is on the result.
    """
    given = [
        name
        for name, value in (
            ("api_key", api_key),
            ("credential", data.get("credential")),
            ("credential_ref", data.get("credential_ref")),
        )
        if value
    ]
    if len(given) > 1:
        return given[0], "Give one of api_key, credential or credential_ref, not several."
    if given:
        credential_ref = data.get("credential_ref") or ""
        credential = data.get("credential")
    else:
        credential_ref = data.get(
            "credential_ref", deployment.credential_ref if deployment is not None else ""
        )
        credential = data.get(
            "credential", deployment.credential if deployment is not None else None
        )
    message = credential_problem(
        organization_id=organization_id, credential_ref=credential_ref, credential=credential
    )
    if message is not None:
        field = "credential_ref" if credential_ref else "credential"
        return field, f"{message[0].upper()}{message[1:]}."
    if organization_id is None:
        return None
    if "params" in data:
        params = dict(data["params"] or {})
    else:
        stored = deployment.encrypted_secrets if deployment is not None else {}
        params = {
            **(deployment.params if deployment is not None else {}),
            **dict.fromkeys(stored, REDACTED),
        }
    kept_key = (
        api_key is None and deployment is not None and API_KEY in deployment.encrypted_secrets
    )
    message = ambient_credential_problem(
        provider=provider_canonical(
            str(data.get("provider", deployment.provider if deployment else ""))
        ),
        params=params,
        has_key=bool(api_key or credential_ref or credential or kept_key),
    )
    return None if message is None else ("params", f"{message[0].upper()}{message[1:]}.")


def _google_credentials_type(account: Any) -> str:
    """The `type` of a Google credentials JSON (a key without one is a service account's)."""
    if isinstance(account, str):
        if not account.lstrip().startswith("{"):
            return "service_account"  # absent, kept (REDACTED) or refused as a path above
        try:
            account = json.loads(account)
        except ValueError:
            return "service_account"  # refused when used: not JSON
    if not isinstance(account, Mapping):
        return "service_account"
    return str(account.get("type") or "service_account")


def ambient_credential_problem(
    *, provider: str, params: Mapping[str, Any], has_key: bool
) -> str | None:
    """Why an organization's deployment would fall back to the server's own cloud identity.

    Vertex AI without its own service account uses GOOGLE_APPLICATION_CREDENTIALS (and sends the
    token it gets to the deployment's api_base); `vertex_credentials` as a path reads a server
    file; Bedrock without its own keys, or with `aws_profile_name`, signs with the server's AWS
    identity. An organization brings its own.
    """
    if provider == "vertex_ai":
        account = params.get("vertex_credentials")
        is_path = isinstance(account, str) and not account.lstrip().startswith(("{", REDACTED))
        if is_path:
            return (
                "the vertex_credentials param must be the service account's JSON, not a path on "
                "the server"
            )
        if not account and not has_key:
            return (
                "an organization's vertex_ai deployment needs its own vertex_credentials or "
                "api_key (the server's Google credentials are the operator's)"
            )
        kind = _google_credentials_type(account)
        if kind != "service_account":
            return (
                f"an organization's vertex_credentials must be a service account key, not {kind} "
                "(the other types read the server's files, URLs or cloud identity)"
            )
    if provider == "bedrock":
        if params.get("aws_profile_name"):
            return "the aws_profile_name param reads the server's AWS profiles (operator only)"
        if not (params.get("aws_access_key_id") and params.get("aws_secret_access_key")):
            return (
                "an organization's bedrock deployment needs its own aws_access_key_id and "
                "aws_secret_access_key (the server's AWS identity is the operator's)"
            )
    return None

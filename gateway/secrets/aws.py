"""AWS Secrets Manager: `secret://aws/<secret name or ARN>[#<field>]`.

botocore signs `GetSecretValue` with SigV4 from the usual credential chain (`AWS_ACCESS_KEY_ID`
and `AWS_SECRET_ACCESS_KEY`, a profile, or an instance role). The region comes from
`AWS_REGION` or `AWS_DEFAULT_REGION` (default us-east-1); `AWS_ENDPOINT_URL_SECRETS_MANAGER` or
`AWS_ENDPOINT_URL` points it elsewhere (a VPC endpoint, or moto in tests).
"""

from __future__ import annotations

import base64
import os
import threading
from typing import Any

from gateway.secrets.reference import SecretReference

_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_REASONS = {
    "ResourceNotFoundException": "no such secret",
    "AccessDeniedException": "access denied",
    "UnrecognizedClientException": "authentication failed",
    "InvalidSignatureException": "authentication failed",
    "DecryptionFailure": "the secret cannot be decrypted",
}


def _client() -> Any:
    # Imported on use (here and below): botocore.session takes about 0.35 s to import, and only
    # AWS secret references need it; the configuration loader imports this module at start.
    import botocore.session

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or os.environ.get(
        "AWS_ENDPOINT_URL", ""
    )
    with _lock:
        client = _clients.get((region, endpoint))
        if client is None:
            session = botocore.session.get_session()
            client = session.create_client(
                "secretsmanager", region_name=region, endpoint_url=endpoint or None
            )
            _clients[(region, endpoint)] = client
        return client


def aws_clients_clear() -> None:
    """Forget the clients, so changed credentials or endpoints are read again."""
    with _lock:
        _clients.clear()


def aws_fetch(ref: SecretReference) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = _client().get_secret_value(SecretId=ref.path)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise ref.fail(f"AWS Secrets Manager: {_REASONS.get(code, code or 'error')}") from exc
    except BotoCoreError as exc:
        raise ref.fail(f"AWS Secrets Manager: {type(exc).__name__}") from exc
    if "SecretString" in answer:
        return str(answer["SecretString"])
    binary = answer.get("SecretBinary", b"")
    if isinstance(binary, str):
        binary = base64.b64decode(binary)
    return binary.decode()

"""AWS credentials for a Bedrock deployment, and SigV4 signing with botocore.

Where credentials come from, first match wins (LiteLLM's parameter names):
  1. `params.aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`): static keys;
  2. otherwise botocore's standard chain (environment, `params.aws_profile_name` or the default
     profile, web identity, container and instance-profile metadata).
When `params.aws_role_name` (a role ARN) is set, those credentials call STS AssumeRole
(`aws_session_name`, `aws_external_id`; `aws_sts_endpoint` overrides STS's URL) and the
temporary credentials sign the requests. Resolved credentials are cached per process until five
minutes before they expire; resolution that needs I/O runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError
from cachetools import LRUCache, TLRUCache

from providers.base import Deployment
from providers.errors import UpstreamError

PROVIDER = "bedrock"
SERVICE = "bedrock"
DEFAULT_REGION = "us-east-1"
REFRESH_MARGIN_SECONDS = 300.0
STATIC_LIFETIME_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"AwsCredentials(access_key={self.access_key[:4]}...)"


# (credentials, unix expiry) by deployment and source, until REFRESH_MARGIN_SECONDS before it.
_cache: TLRUCache[tuple[str, ...], tuple[AwsCredentials, float]] = TLRUCache(
    maxsize=1024, ttu=lambda _key, value, _now: value[1] - REFRESH_MARGIN_SECONDS, timer=time.time
)
_cache_lock = threading.Lock()  # event loops in several threads may resolve
_locks: LRUCache[tuple[str, ...], asyncio.Lock] = LRUCache(maxsize=1024)


def region_for(deployment: Deployment) -> str:
    return (
        deployment.region
        or str(deployment.params.get("aws_region_name") or "")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def _param(deployment: Deployment, name: str) -> str | None:
    value = deployment.params.get(name)
    return str(value) if value else None


def _cache_key(deployment: Deployment) -> tuple[str, ...]:
    return (
        deployment.id,
        _param(deployment, "aws_access_key_id") or "",
        _param(deployment, "aws_profile_name") or "",
        _param(deployment, "aws_role_name") or "",
        _param(deployment, "aws_session_name") or "",
    )


def _chain_credentials(deployment: Deployment) -> AwsCredentials:
    session = botocore.session.Session(profile=_param(deployment, "aws_profile_name"))
    found = session.get_credentials()
    if found is None:
        raise UpstreamError(
            "bedrock: no AWS credentials found (set aws_access_key_id/aws_secret_access_key, "
            "a profile, or run with an instance or container role).",
            provider=PROVIDER,
            code="upstream_credentials_missing",
        )
    frozen = found.get_frozen_credentials()
    return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)


def _base_credentials(deployment: Deployment) -> AwsCredentials:
    access_key = _param(deployment, "aws_access_key_id")
    secret_key = _param(deployment, "aws_secret_access_key")
    if access_key and secret_key:
        return AwsCredentials(access_key, secret_key, _param(deployment, "aws_session_token"))
    return _chain_credentials(deployment)


def _assume_role(
    deployment: Deployment, base: AwsCredentials, role_arn: str
) -> tuple[AwsCredentials, float]:
    client = botocore.session.Session().create_client(
        "sts",
        region_name=region_for(deployment),
        endpoint_url=_param(deployment, "aws_sts_endpoint"),
        aws_access_key_id=base.access_key,
        aws_secret_access_key=base.secret_key,
        aws_session_token=base.token,
    )
    arguments: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": _param(deployment, "aws_session_name") or "ogem",
    }
    external_id = _param(deployment, "aws_external_id")
    if external_id:
        arguments["ExternalId"] = external_id
    try:
        answer = client.assume_role(**arguments)["Credentials"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise UpstreamError(
            f"bedrock: STS AssumeRole failed: {error.get('Code', '')} {error.get('Message', '')}",
            provider=PROVIDER,
            code="upstream_rejected_credentials",
        ) from exc
    except BotoCoreError as exc:
        raise UpstreamError(
            f"bedrock: STS AssumeRole failed ({type(exc).__name__}).",
            provider=PROVIDER,
            code="upstream_unavailable",
        ) from exc
    finally:
        client.close()
    credentials = AwsCredentials(
        answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"]
    )
    return credentials, answer["Expiration"].timestamp()


def _resolve(deployment: Deployment) -> tuple[AwsCredentials, float]:
    base = _base_credentials(deployment)
    role_arn = _param(deployment, "aws_role_name")
    if role_arn:
        return _assume_role(deployment, base, role_arn)
    return base, time.time() + STATIC_LIFETIME_SECONDS


async def credentials_resolve(deployment: Deployment) -> AwsCredentials:
    """The deployment's current credentials (cached; refreshed before they expire)."""
    key = _cache_key(deployment)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached[0]
    if _param(deployment, "aws_access_key_id") and not _param(deployment, "aws_role_name"):
        resolved = _resolve(deployment)  # no I/O: static keys
    else:
        with _cache_lock:
            lock = _locks.setdefault(key, asyncio.Lock())
        async with lock:
            with _cache_lock:
                cached = _cache.get(key)
            if cached is not None:
                return cached[0]
            resolved = await asyncio.to_thread(_resolve, deployment)
    with _cache_lock:
        _cache[key] = resolved
    return resolved[0]


def credentials_forget() -> None:
    """Drop cached credentials (tests; a configuration reload keeps them until they expire)."""
    with _cache_lock:
        _cache.clear()


def request_sign(
    *,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    credentials: AwsCredentials,
    region: str,
    service: str = SERVICE,
) -> dict[str, str]:
    """The headers to send: `headers` plus X-Amz-Date, X-Amz-Security-Token and Authorization
    (`service`: the signing name, `sagemaker` for SageMaker's runtime)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer_credentials = Credentials(
        credentials.access_key, credentials.secret_key, credentials.token
    )
    SigV4Auth(signer_credentials, service, region).add_auth(request)
    return dict(request.headers.items())

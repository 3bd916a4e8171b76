"""One blocking JSON exchange with a deployment's upstream, for the provider APIs Celery tasks
drive (fine-tuning jobs, OpenAI's vector stores): its address checked, its errors mapped to
Ogem's, its secrets kept out of them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import orjson

from providers.addresses import AddressRefusedError, url_host_check
from providers.base import Deployment
from providers.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamUnavailableError,
    error_body_parse,
    upstream_error,
)

TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def upstream_json_exchange(
    deployment: Deployment,
    method: str,
    url: str,
    *,
    params: dict[str, Any],
    headers: dict[str, str],
    json: Any = None,
    content: bytes | Iterable[bytes] | None = None,
    files: dict[str, Any] | None = None,
    data: dict[str, str] | None = None,
    object_only: bool = False,
) -> Any:
    """The decoded JSON answer of one request to `url` with a JSON body (`json`), raw bytes
    (`content`) or a form (`files`, `data`); with `object_only`, the answer must be an object.
    Errors as Ogem's."""
    policy = deployment.address_policy
    try:
        if policy is not None:
            url_host_check(url, policy=policy)
        response = httpx.request(
            method,
            url,
            params=params,
            headers=headers,
            content=orjson.dumps(json) if json is not None else content,
            files=files,
            data=data,
            timeout=TIMEOUT,
            follow_redirects=False,
        )
    except AddressRefusedError as exc:
        raise InvalidRequestError(f"The deployment's upstream address is refused: {exc}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise UpstreamUnavailableError(
            f"{deployment.provider} could not be reached ({type(exc).__name__}).",
            provider=deployment.provider,
        ) from None
    if response.status_code >= 400:
        raise upstream_error(
            provider=deployment.provider,
            status=response.status_code,
            failure=error_body_parse(response.content, response.headers),
            secrets=deployment.secrets,
        )
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = _NOT_JSON
    if answer is _NOT_JSON or (object_only and not isinstance(answer, dict)):
        what = "a JSON object" if object_only else "JSON"
        raise GatewayError(
            f"{deployment.provider} answered a body that is not {what}.",
            status=502,
            code="upstream_error",
        )
    return answer


_NOT_JSON = object()

"""OpenAI's Vector Stores API, for vector stores passed through to an OpenAI (or Azure OpenAI)
account (docs/vector-stores.md, "Pass-through to OpenAI"): a store is created upstream
(`POST /vector_stores`), the tenant's files uploaded (`POST /files`, purpose `assistants`) and
attached (`POST /vector_stores/{id}/files`), their status read back
(`GET /vector_stores/{id}/files/{file_id}`), searches forwarded
(`POST /vector_stores/{id}/search`), and deletes too. Azure OpenAI serves the same API under
`{resource}/openai/...?api-version=...`.

Blocking httpx on purpose, like the fine-tuning upstream: it runs in a view's worker thread or a
Celery task, never on the /v1 event loop. An upstream error becomes Ogem's error the same way as
on /v1 (providers.errors.upstream_error), secrets redacted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from providers.base import Deployment
from providers.blocking import upstream_json_exchange

PROVIDERS = ("openai", "azure")
# Azure's data-plane version with vector stores (and their search).
AZURE_API_VERSION = "2025-04-01-preview"


def _id(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class OpenAIVectorStores:
    """One provider account's Vector Stores API, from the deployment whose credentials it uses."""

    deployment: Deployment
    # The deployment's provider adapter (its API base and auth headers).
    adapter: Any

    @property
    def azure(self) -> bool:
        return self.deployment.provider == "azure"

    def _base(self) -> str:
        base = str(self.adapter.api_base(self.deployment))
        return f"{base.rstrip('/')}/openai" if self.azure else base.rstrip("/")

    def _headers(self) -> dict[str, str]:
        headers = dict(self.adapter.auth_headers(self.deployment))
        headers["OpenAI-Beta"] = "assistants=v2"
        return headers

    def _params(self) -> dict[str, str]:
        if not self.azure:
            return {}
        version = self.deployment.params.get("vector_stores_api_version") or AZURE_API_VERSION
        return {"api-version": str(version)}

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = self._headers()
        if json is not None:
            headers["Content-Type"] = "application/json"
        return upstream_json_exchange(  # type: ignore[no-any-return]
            self.deployment,
            method,
            f"{self._base()}{path}",
            params=self._params(),
            headers=headers,
            json=json,
            files=files,
            data=data,
            object_only=True,
        )

    def store_create(
        self, *, name: str, metadata: dict[str, str], expires_after_days: int | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "metadata": metadata}
        if expires_after_days:
            body["expires_after"] = {"anchor": "last_active_at", "days": expires_after_days}
        return self._call("POST", "/vector_stores", json=body)

    def store_update(self, *, store_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/vector_stores/{_id(store_id)}", json=body)

    def store_delete(self, *, store_id: str) -> None:
        self._call("DELETE", f"/vector_stores/{_id(store_id)}")

    def search(self, *, store_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"/vector_stores/{_id(store_id)}/search", json=body)

    # -- files -------------------------------------------------------------------------------------
    def file_upload(self, *, filename: str, stream: IO[bytes]) -> str:
        """Upload a file (purpose `assistants`), streamed from `stream`; its upstream id."""
        answer = self._call(
            "POST",
            "/files",
            files={"file": (filename, stream, "application/octet-stream")},
            data={"purpose": "assistants"},
        )
        return str(answer["id"])

    def file_delete(self, *, file_id: str) -> None:
        self._call("DELETE", f"/files/{_id(file_id)}")

    def store_file_attach(
        self,
        *,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any] | None,
        chunking_strategy: dict[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"file_id": file_id}
        if attributes:
            body["attributes"] = attributes
        if chunking_strategy:
            body["chunking_strategy"] = chunking_strategy
        return self._call("POST", f"/vector_stores/{_id(store_id)}/files", json=body)

    def store_file_get(self, *, store_id: str, file_id: str) -> dict[str, Any]:
        return self._call("GET", f"/vector_stores/{_id(store_id)}/files/{_id(file_id)}")

    def store_file_update(
        self, *, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            f"/vector_stores/{_id(store_id)}/files/{_id(file_id)}",
            json={"attributes": attributes},
        )

    def store_file_delete(self, *, store_id: str, file_id: str) -> None:
        self._call("DELETE", f"/vector_stores/{_id(store_id)}/files/{_id(file_id)}")

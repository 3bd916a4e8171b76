"""OpenAI's Batch API for pass-through batches: the requests are uploaded as a `batch` file
(`POST /files`), the batch created on it (`POST /batches`), polled (`GET /batches/{id}`), its
output and error files read (`GET /files/{id}/content`) and cancelled (`POST /batches/{id}/cancel`).

Azure OpenAI serves the same API (providers/azure/batch.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from providers.adapter import json_parse
from providers.base import Deployment, Endpoint
from providers.batch import BatchRequest, BatchResult, ProviderBatches, UpstreamBatch
from providers.errors import UpstreamError
from providers.http import UploadFile, UpstreamRequest
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

# An ended batch's status in OpenAI's lifecycle, and Ogem's outcome for it.
_ENDED = {"completed": "completed", "cancelled": "cancelled", "expired": "expired"}
_ENDED_FAILED = "failed"
# The metadata key naming Ogem's batch on the provider's.
MARKER = "ogem_batch_id"


class OpenAIBatches(ProviderBatches):
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
    adapter: OpenAICompatibleAdapter

    # -- where and how: Azure overrides these ---------------------------------------------------
    def route(self, deployment: Deployment, path: str) -> str:
        return f"{self.adapter.api_base(deployment)}/{path}"

    def line_url(self, endpoint: Endpoint) -> str:
        return f"/v1/{endpoint.value}"

    def model(self, deployment: Deployment) -> str:
        return deployment.upstream_model

    def _request(self, deployment: Deployment, method: str, path: str, **rest: Any) -> Any:
        return UpstreamRequest(
            method=method,
            url=self.route(deployment, path),
            headers=self.adapter.headers(deployment),
            **rest,
        )

    async def _json(self, deployment: Deployment, request: UpstreamRequest) -> dict[str, Any]:
        response = await self.adapter.exchange(request, deployment=deployment)
        answer = json_parse(response.body, provider=self.adapter.name)
        if not isinstance(answer, dict):
            raise UpstreamError(
                f"{self.adapter.name} answered with an unexpected body.",
                provider=self.adapter.name,
            )
        return answer

    # -- the interface ----------------------------------------------------------------------------
    async def submit(
        self,
        *,
        deployment: Deployment,
        endpoint: Endpoint,
        requests: list[BatchRequest],
        marker: str,
    ) -> tuple[str, str]:
        url = self.line_url(endpoint)
        content = b"".join(
            orjson.dumps(
                {
                    "custom_id": request.key,
                    "method": "POST",
                    "url": url,
                    "body": {**request.body, "model": self.model(deployment)},
                }
            )
            + b"\n"
            for request in requests
        )
        upload = self._request(
            deployment,
            "POST",
            "files",
            form={"purpose": "batch"},
            files=[UploadFile("file", "batch.jsonl", content, "application/jsonl")],
        )
        file_id = str((await self._json(deployment, upload))["id"])
        create = self._request(
            deployment,
            "POST",
            "batches",
            json={
                "input_file_id": file_id,
                "endpoint": url,
                "completion_window": "24h",
                "metadata": {MARKER: marker},
            },
        )
        return str((await self._json(deployment, create))["id"]), file_id

    async def find(self, *, deployment: Deployment, marker: str) -> tuple[str, str] | None:
        # The newest batches first: one sent moments ago is on the first page.
        answer = await self._json(deployment, self._request(deployment, "GET", "batches"))
        for batch in answer.get("data") or []:
            if (batch.get("metadata") or {}).get(MARKER) == marker:
                return str(batch["id"]), str(batch.get("input_file_id") or "")
        return None

    async def poll(self, *, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        answer = await self._json(
            deployment, self._request(deployment, "GET", f"batches/{quote(batch_id, safe='')}")
        )
        status = str(answer.get("status") or "")
        counts = answer.get("request_counts") or {}
        state = UpstreamBatch(
            status="in_progress",
            total=int(counts.get("total") or 0),
            completed=int(counts.get("completed") or 0),
            failed=int(counts.get("failed") or 0),
            output_ref=str(answer.get("output_file_id") or ""),
            error_ref=str(answer.get("error_file_id") or ""),
            raw=answer,
        )
        if status == "cancelling":
            state.status = "cancelling"
        elif status in _ENDED or status == _ENDED_FAILED:
            state.status = "ended"
            state.outcome = _ENDED.get(status, _ENDED_FAILED)
            errors = (answer.get("errors") or {}).get("data") or []
            if errors:
                state.message = str(errors[0].get("message") or "")
        return state

    async def results(
        self, *, deployment: Deployment, endpoint: Endpoint, batch: UpstreamBatch
    ) -> list[BatchResult]:
        found: list[BatchResult] = []
        for file_id in (batch.output_ref, batch.error_ref):
            if not file_id:
                continue
            request = self._request(deployment, "GET", f"files/{quote(file_id, safe='')}/content")
            response = await self.adapter.exchange(request, deployment=deployment)
            for raw in response.body.splitlines():
                if not raw.strip():
                    continue
                line = json_parse(raw, provider=self.adapter.name)
                answer = line.get("response") if isinstance(line, dict) else None
                if not isinstance(answer, dict):
                    continue  # not run (cancelled or expired): Ogem lists those itself
                body = answer.get("body")
                found.append(
                    BatchResult(
                        key=str(line.get("custom_id")),
                        status_code=int(answer.get("status_code") or 500),
                        body=body if isinstance(body, dict) else {"data": body},
                    )
                )
        return found

    async def cancel(self, *, deployment: Deployment, batch_id: str) -> None:
        await self._json(
            deployment,
            self._request(deployment, "POST", f"batches/{quote(batch_id, safe='')}/cancel"),
        )

"""The Gemini API's batch mode for pass-through batches: the chat requests, translated to
`GenerateContentRequest`s, are sent inlined (`POST models/{model}:batchGenerateContent` with
`batch.inputConfig.requests.requests[] = {request, metadata: {key}}`); the batch is a long-running
operation (`GET batches/{id}`: `metadata.state`, `metadata.batchStats`, and once `done`,
`response.inlinedResponses.inlinedResponses[]` in input order, each a `response` or an `error`),
cancelled with `POST batches/{id}:cancel`."""

from __future__ import annotations

from typing import Any

from providers.adapter import json_parse, translating
from providers.base import Deployment, Endpoint
from providers.batch import (
    BatchRequest,
    BatchResult,
    ProviderBatches,
    UpstreamBatch,
    error_result,
)
from providers.errors import UpstreamError
from providers.gemini import translate
from providers.gemini.adapter import DEFAULT_API_BASE, DEFAULT_API_VERSION, GeminiAdapter
from providers.http import UpstreamRequest

# BatchState names (the API reference's `BATCH_STATE_*`; the guides' examples say `JOB_STATE_*`).
_OUTCOMES = {
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
}


def _state_name(value: Any) -> str:
    return str(value or "").removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")


def _count(stats: dict[str, Any], name: str) -> int:
    try:
        return int(stats.get(name) or 0)  # int64 fields arrive as strings
    except (TypeError, ValueError):
        return 0


class GeminiBatches(ProviderBatches):
    adapter: GeminiAdapter

    def _base(self, deployment: Deployment) -> str:
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/")
        version = deployment.api_version or DEFAULT_API_VERSION
        return base if base.endswith(f"/{version}") else f"{base}/{version}"

    async def _json(self, deployment: Deployment, request: UpstreamRequest) -> dict[str, Any]:
        response = await self.adapter.exchange(request, deployment=deployment)
        answer = json_parse(response.body, provider=self.adapter.name)
        if not isinstance(answer, dict):
            raise UpstreamError(
                f"{self.adapter.name} answered with an unexpected body.",
                provider=self.adapter.name,
            )
        return answer

    def _operation(self, deployment: Deployment, name: str, suffix: str = "") -> str:
        # `name` is the operation's resource name, "batches/<id>", kept as the provider gave it.
        return f"{self._base(deployment)}/{name.strip('/')}{suffix}"

    async def submit(
        self,
        *,
        deployment: Deployment,
        endpoint: Endpoint,
        requests: list[BatchRequest],
        marker: str,
    ) -> tuple[str, str]:
        with translating(self.adapter.name):
            inlined = [
                {
                    "request": translate.chat_request_to_gemini(
                        body=request.body, deployment=deployment
                    ),
                    "metadata": {"key": request.key},
                }
                for request in requests
            ]
        payload = {
            "batch": {
                "displayName": f"ogem-{marker}",
                "inputConfig": {"requests": {"requests": inlined}},
            }
        }
        answer = await self._json(
            deployment,
            UpstreamRequest(
                method="POST",
                url=self.adapter.model_url(deployment, "batchGenerateContent"),
                headers=self.adapter.headers(deployment),
                json=payload,
            ),
        )
        return str(answer["name"]), ""

    async def find(self, *, deployment: Deployment, marker: str) -> tuple[str, str] | None:
        answer = await self._json(
            deployment,
            UpstreamRequest(
                method="GET",
                url=f"{self._base(deployment)}/batches?pageSize=100",
                headers=self.adapter.headers(deployment),
            ),
        )
        for operation in answer.get("operations") or []:
            if (operation.get("metadata") or {}).get("displayName") == f"ogem-{marker}":
                return str(operation["name"]), ""
        return None

    async def poll(self, *, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        answer = await self._json(
            deployment,
            UpstreamRequest(
                method="GET",
                url=self._operation(deployment, batch_id),
                headers=self.adapter.headers(deployment),
            ),
        )
        metadata = answer.get("metadata") or {}
        stats = metadata.get("batchStats") or {}
        state = UpstreamBatch(
            status="in_progress",
            total=_count(stats, "requestCount"),
            completed=_count(stats, "successfulRequestCount"),
            failed=_count(stats, "failedRequestCount"),
            raw=answer,
        )
        outcome = _OUTCOMES.get(_state_name(metadata.get("state")))
        if outcome is not None and (answer.get("done") or outcome != "completed"):
            state.status = "ended"
            state.outcome = outcome
            error = answer.get("error") or {}
            state.message = str(error.get("message") or "")
        return state

    async def results(
        self, *, deployment: Deployment, endpoint: Endpoint, batch: UpstreamBatch
    ) -> list[BatchResult]:
        output = (batch.raw.get("response") or {}).get("inlinedResponses") or {}
        found: list[BatchResult] = []
        for item in output.get("inlinedResponses") or []:
            key = str((item.get("metadata") or {}).get("key") or "")
            if "response" in item:
                body = translate.gemini_response_to_chat(
                    item["response"], model=deployment.upstream_model
                )
                found.append(BatchResult(key, 200, body))
            else:
                error = item.get("error") or {}
                found.append(
                    error_result(
                        key=key,
                        kind=str(error.get("status") or "INTERNAL"),
                        message=str(error.get("message") or "The request failed upstream."),
                    )
                )
        return found

    async def cancel(self, *, deployment: Deployment, batch_id: str) -> None:
        await self.adapter.exchange(
            UpstreamRequest(
                method="POST",
                url=self._operation(deployment, batch_id, ":cancel"),
                headers=self.adapter.headers(deployment),
            ),
            deployment=deployment,
        )

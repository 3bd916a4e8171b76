"""Anthropic's Message Batches API for pass-through batches: each OpenAI chat request becomes a
Messages API request (`POST /v1/messages/batches`, `requests: [{custom_id, params}]`), the batch
is polled (`GET /v1/messages/batches/{id}`), its results (JSONL, one `{custom_id, result}` per
request) translated back to OpenAI chat completions, and it is cancelled with
`POST /v1/messages/batches/{id}/cancel`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from providers.adapter import json_parse, translating
from providers.anthropic.adapter import anthropic_headers, messages_url
from providers.anthropic.errors import PROVIDER
from providers.anthropic.translate import chat_request_to_messages, messages_response_to_chat
from providers.base import Deployment, Endpoint
from providers.batch import (
    BatchRequest,
    BatchResult,
    ProviderBatches,
    UpstreamBatch,
    error_result,
)
from providers.errors import UpstreamError
from providers.http import UpstreamRequest


class AnthropicBatches(ProviderBatches):
    def _request(self, deployment: Deployment, method: str, path: str, **rest: Any) -> Any:
        return UpstreamRequest(
            method=method,
            url=messages_url(deployment.api_base, path=path),
            headers=anthropic_headers(deployment),
            **rest,
        )

    async def _json(self, deployment: Deployment, request: UpstreamRequest) -> dict[str, Any]:
        response = await self.adapter.exchange(request, deployment=deployment)
        answer = json_parse(response.body, provider=PROVIDER)
        if not isinstance(answer, dict):
            raise UpstreamError(f"{PROVIDER} answered with an unexpected body.", provider=PROVIDER)
        return answer

    async def submit(
        self,
        *,
        deployment: Deployment,
        endpoint: Endpoint,
        requests: list[BatchRequest],
        marker: str,
    ) -> tuple[str, str]:
        with translating(PROVIDER):
            payload = [
                {
                    "custom_id": request.key,
                    "params": chat_request_to_messages(
                        body=request.body, deployment=deployment, stream=False
                    ),
                }
                for request in requests
            ]
        answer = await self._json(
            deployment,
            self._request(deployment, "POST", "messages/batches", json={"requests": payload}),
        )
        return str(answer["id"]), ""

    async def poll(self, *, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        answer = await self._json(
            deployment,
            self._request(deployment, "GET", f"messages/batches/{quote(batch_id, safe='')}"),
        )
        reported = answer.get("request_counts") or {}
        counts = {name: int(value or 0) for name, value in reported.items()}
        state = UpstreamBatch(
            status="in_progress",
            total=sum(counts.values()),
            completed=counts.get("succeeded", 0),
            failed=counts.get("errored", 0),
            raw=answer,
        )
        processing = answer.get("processing_status")
        if processing == "canceling":
            state.status = "cancelling"
        elif processing == "ended":
            state.status = "ended"
            if answer.get("cancel_initiated_at"):
                state.outcome = "cancelled"
            elif counts.get("expired"):
                state.outcome = "expired"
            else:
                state.outcome = "completed"
        return state

    async def results(
        self, *, deployment: Deployment, endpoint: Endpoint, batch: UpstreamBatch
    ) -> list[BatchResult]:
        batch_id = quote(str(batch.raw.get("id") or ""), safe="")
        request = self._request(deployment, "GET", f"messages/batches/{batch_id}/results")
        response = await self.adapter.exchange(request, deployment=deployment)
        found: list[BatchResult] = []
        for raw in response.body.splitlines():
            if not raw.strip():
                continue
            line = json_parse(raw, provider=PROVIDER)
            key = str(line.get("custom_id"))
            result = line.get("result") or {}
            kind = result.get("type")
            if kind == "succeeded":
                found.append(BatchResult(key, 200, messages_response_to_chat(result["message"])))
            elif kind == "errored":
                error = (result.get("error") or {}).get("error") or {}
                found.append(
                    error_result(
                        key=key,
                        kind=str(error.get("type") or "api_error"),
                        message=str(error.get("message") or "The request failed upstream."),
                    )
                )
            # canceled and expired requests were not run: Ogem lists those itself
        return found

    async def cancel(self, *, deployment: Deployment, batch_id: str) -> None:
        await self._json(
            deployment,
            self._request(
                deployment, "POST", f"messages/batches/{quote(batch_id, safe='')}/cancel"
            ),
        )

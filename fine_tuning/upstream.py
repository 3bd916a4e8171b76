"""The providers' fine-tuning APIs, called from the control plane (a /v1 view's worker thread,
Celery): OpenAI's (`{api_base}/files`, `{api_base}/fine_tuning/jobs/...`, `{api_base}/models/...`),
Azure OpenAI's data plane (`{resource}/openai/files?api-version=...`, `.../fine_tuning/jobs`),
and Vertex AI's tuning jobs (providers/vertex_ai/tuning.py, which answers in OpenAI's shapes).

Blocking httpx on purpose: nothing here runs on the /v1 event loop. An upstream error becomes
Ogem's error the same way as on /v1 (providers.errors.upstream_error), secrets redacted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any, Protocol

from fine_tuning.prices import fine_tunable_snapshot
from providers.base import Deployment
from providers.blocking import upstream_json_exchange
from providers.registry import adapter_get
from providers.vertex_ai.tuning import VertexTuning, tunable_model

PROVIDERS = ("openai", "azure", "vertex_ai")
# Azure's data-plane version with fine-tuning (files, jobs, events, checkpoints, pause, resume).
AZURE_API_VERSION = "2025-04-01-preview"


@dataclass(frozen=True, slots=True)
class FineTuningUpstream:
    """One provider account's fine-tuning API, from the deployment a job goes through."""

    deployment: Deployment

    @property
    def azure(self) -> bool:
        return self.deployment.provider == "azure"

    def _base(self) -> str:
        adapter = adapter_get(self.deployment.provider)
        base = adapter.api_base(self.deployment) if adapter is not None else ""  # type: ignore[attr-defined]
        return f"{base.rstrip('/')}/openai" if self.azure else base.rstrip("/")

    @property
    def account(self) -> str:
        """Names the account (provider, API base, key digest): files forwarded to one account
        are reused by every job of that account."""
        digest = hashlib.sha256((self.deployment.api_key or "").encode()).hexdigest()[:16]
        return f"{self.deployment.provider}|{self._base()}|{digest}"

    def _headers(self) -> dict[str, str]:
        adapter = adapter_get(self.deployment.provider)
        return dict(adapter.auth_headers(self.deployment)) if adapter is not None else {}  # type: ignore[attr-defined]

    def _params(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        params = dict(extra or {})
        if self.azure:
            params["api-version"] = (
                self.deployment.params.get("fine_tuning_api_version") or AZURE_API_VERSION
            )
        return {k: v for k, v in params.items() if v is not None}

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        query: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> Any:
        return upstream_json_exchange(
            self.deployment,
            method,
            f"{self._base()}{path}",
            params=self._params(query),
            headers=self._headers(),
            json=json,
            files=files,
            data=data,
        )

    def file_upload(self, *, filename: str, stream: IO[bytes], param: str = "training_file") -> str:
        """Upload a training or validation file (purpose `fine-tune`); its upstream id."""
        answer = self._call(
            "POST",
            "/files",
            files={"file": (filename, stream, "application/jsonl")},
            data={"purpose": "fine-tune"},
        )
        return str(answer["id"])

    def job_check(self, *, body: dict[str, Any]) -> None:
        """OpenAI checks a job's parameters itself, when it is created."""

    def job_create(self, *, body: dict[str, Any]) -> dict[str, Any]:
        payload = {k: v for k, v in body.items() if v is not None}
        return self._call("POST", "/fine_tuning/jobs", json=payload)

    def job_get(self, *, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/fine_tuning/jobs/{job_id}")

    def job_action(self, *, job_id: str, action: str) -> dict[str, Any]:
        """`cancel`, `pause` or `resume`."""
        return self._call("POST", f"/fine_tuning/jobs/{job_id}/{action}")

    def job_events(self, *, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The job's latest events, newest first (the provider's order)."""
        answer = self._call("GET", f"/fine_tuning/jobs/{job_id}/events", query={"limit": limit})
        return list(answer.get("data") or [])

    def job_checkpoints(self, *, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        answer = self._call(
            "GET", f"/fine_tuning/jobs/{job_id}/checkpoints", query={"limit": limit}
        )
        return list(answer.get("data") or [])

    def model_delete(self, *, model: str) -> None:
        """Delete a fine-tuned model upstream. Azure has no data-plane call for it (a model is
        deleted with its Azure deployment, in Azure's control plane): nothing is sent there."""
        if self.azure:
            return
        self._call("DELETE", f"/models/{model}")

    def served_params(self) -> dict[str, Any]:
        """The deployment params the fine-tuned model's deployment keeps."""
        kept = ("organization", "project")
        return {k: self.deployment.params[k] for k in kept if k in self.deployment.params}


class FineTuningAPI(Protocol):
    """What fine_tuning calls at a provider, in OpenAI's shapes (ids are the provider's)."""

    deployment: Deployment

    @property
    def account(self) -> str: ...

    def file_upload(self, *, filename: str, stream: IO[bytes], param: str = ...) -> str: ...

    def job_check(self, *, body: dict[str, Any]) -> None:
        """Refuse, before any file is forwarded, what the provider is known not to take."""

    def job_create(self, *, body: dict[str, Any]) -> dict[str, Any]: ...

    def job_get(self, *, job_id: str) -> dict[str, Any]: ...

    def job_action(self, *, job_id: str, action: str) -> dict[str, Any]: ...

    def job_events(self, *, job_id: str, limit: int = ...) -> list[dict[str, Any]]: ...

    def job_checkpoints(self, *, job_id: str, limit: int = ...) -> list[dict[str, Any]]: ...

    def model_delete(self, *, model: str) -> None: ...

    def served_params(self) -> dict[str, Any]: ...


def fine_tuning_api(deployment: Deployment) -> FineTuningAPI:
    if deployment.provider == "vertex_ai":
        return VertexTuning(deployment=deployment)
    return FineTuningUpstream(deployment=deployment)


def base_model_tunable(*, deployment: Deployment, model: str) -> bool:
    """Whether the deployment's provider fine-tunes `model` (its base model) here. A Vertex AI
    deployment needs a Cloud Storage bucket for the training data, and a Gemini model."""
    if deployment.provider == "vertex_ai":
        return tunable_model(model) is not None and bool(VertexTuning(deployment).bucket()[0])
    return deployment.provider in PROVIDERS and fine_tunable_snapshot(model) is not None

"""/model/info, /v2/model/info, /model_group/info and /health over Ogem's deployments."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from billing.pricing import shipped_price
from gateway.rest import ModelHealthView

from .base import LiteLLMError, LiteLLMView, answer_or_raise, error_message
from .dispatch import resource_call


def _price(provider: str, model: str) -> dict[str, float | None]:
    price = shipped_price(model=model, provider=provider) if model else None
    return {
        "input_cost_per_token": float(price.input) if price is not None else None,
        "output_cost_per_token": float(price.output) if price is not None else None,
    }


def _deployments(request: Request) -> list[dict[str, Any]]:
    query = {"limit": 1000}
    if request.query_params.get("model"):
        query["model_name"] = request.query_params["model"]
    return answer_or_raise(resource_call(request, resource="models", method="GET", query=query))[
        "results"
    ]


def _model_to_litellm(deployment: dict[str, Any]) -> dict[str, Any]:
    provider = deployment.get("provider") or ""
    upstream = deployment.get("upstream_model") or deployment.get("model_name") or ""
    return {
        "model_name": deployment["model_name"],
        "litellm_params": {
            "model": f"{provider}/{upstream}" if provider else upstream,
            "api_base": deployment.get("api_base") or None,
            "rpm": deployment.get("rpm"),
            "tpm": deployment.get("tpm"),
        },
        "model_info": {
            "id": str(deployment.get("deployment_id") or deployment.get("id")),
            "db_model": deployment.get("source") == "database",
            "litellm_provider": provider,
            "mode": "chat",
            "access_groups": deployment.get("access_groups") or [],
            **_price(provider, upstream),
        },
    }


class ModelInfoView(LiteLLMView):
    def get(self, request: Request) -> Response:
        return Response({"data": [_model_to_litellm(row) for row in _deployments(request)]})


class ModelGroupInfoView(LiteLLMView):
    def get(self, request: Request) -> Response:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in _deployments(request):
            groups[row["model_name"]].append(_model_to_litellm(row))
        data = []
        for name, members in sorted(groups.items()):
            info = members[0]["model_info"]
            data.append(
                {
                    "model_group": name,
                    "providers": sorted({m["model_info"]["litellm_provider"] for m in members}),
                    "mode": "chat",
                    "input_cost_per_token": info["input_cost_per_token"],
                    "output_cost_per_token": info["output_cost_per_token"],
                    "tpm": sum(m["litellm_params"]["tpm"] or 0 for m in members) or None,
                    "rpm": sum(m["litellm_params"]["rpm"] or 0 for m in members) or None,
                }
            )
        return Response({"data": data})


class HealthView(LiteLLMView):
    """LiteLLM's /health: one real request to each deployment, as /api/v1/models/health does
    (its answer already has LiteLLM's shape)."""

    def get(self, request: Request) -> Response:
        response = ModelHealthView.as_view()(request._request)
        if response.status_code >= 400:
            return self.handle_exception(_as_error(response))
        return Response(response.data)


def _as_error(response: Any) -> Exception:
    return LiteLLMError(error_message(response.data), status=response.status_code)

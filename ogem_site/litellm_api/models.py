"""/model/info, /v2/model/info, /model_group/info and /health over Ogem's deployments."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from billing.pricing import params_price, shipped_price_by_name
from gateway.rest import ModelHealthView

from .base import LiteLLMError, LiteLLMView, answer_or_raise, error_message
from .dispatch import resource_call

# model_info keys a deployment's own entry may not replace: they say who it is.
_OWN_INFO = frozenset({"id", "db_model", "litellm_provider", "access_groups"})


def _price(row: dict[str, Any], *, provider: str, model: str) -> dict[str, Any]:
    """The per-token prices a request through this deployment is charged: the table's (or an
    override's), then the deployment's own LiteLLM prices, as spend records them."""
    params = row.get("params") or {}
    price = params_price(model=model, provider=provider, params=params) if model else None
    if price is None:
        price = shipped_price_by_name(model=row.get("model_name") or "")
    if price is None:
        return {"input_cost_per_token": None, "output_cost_per_token": None}
    found: dict[str, Any] = {
        "input_cost_per_token": float(price.input),
        "output_cost_per_token": float(price.output),
    }
    for name, value in (
        ("cache_read_input_token_cost", price.cache_read),
        ("cache_creation_input_token_cost", price.cache_write),
        ("output_cost_per_reasoning_token", price.reasoning),
        ("input_cost_per_request", price.request),
    ):
        if value is not None:
            found[name] = float(value)
    if price.max_output_tokens is not None:
        found["max_output_tokens"] = price.max_output_tokens
    return found


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
    params = deployment.get("params") or {}
    # The deployment's own model_info (a LiteLLM config's: mode, context sizes, prices, ...).
    own = params.get("model_info") if isinstance(params.get("model_info"), dict) else {}
    info = {key: value for key, value in own.items() if key not in _OWN_INFO}
    info.setdefault("mode", "chat")
    return {
        "model_name": deployment["model_name"],
        "litellm_params": {
            "model": f"{provider}/{upstream}" if provider else upstream,
            "api_base": deployment.get("api_base") or None,
            "rpm": deployment.get("rpm"),
            "tpm": deployment.get("tpm"),
        },
        "model_info": {
            **info,
            "id": str(deployment.get("deployment_id") or deployment.get("id")),
            "db_model": deployment.get("source") == "database",
            "litellm_provider": provider,
            "access_groups": deployment.get("access_groups") or [],
            **_price(deployment, provider=provider, model=upstream),
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
            group = {
                "model_group": name,
                "providers": sorted({m["model_info"]["litellm_provider"] for m in members}),
                "mode": info["mode"],
                "input_cost_per_token": info["input_cost_per_token"],
                "output_cost_per_token": info["output_cost_per_token"],
                "tpm": sum(m["litellm_params"]["tpm"] or 0 for m in members) or None,
                "rpm": sum(m["litellm_params"]["rpm"] or 0 for m in members) or None,
            }
            # The group's context sizes: the largest a member declares, as LiteLLM reports them.
            for size in ("max_input_tokens", "max_output_tokens", "max_tokens"):
                values = [
                    m["model_info"][size]
                    for m in members
                    if isinstance(m["model_info"].get(size), int)
                ]
                group[size] = max(values) if values else None
            data.append(group)
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

"""The management REST API under /api/v1/ (DRF). Paths work with and without a trailing slash."""

from typing import Any

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from assistants.rest import AssistantViewSet, RunViewSet, ThreadViewSet
from batches.rest import BatchViewSet
from billing.rest import (
    BudgetViewSet,
    CacheAnalyticsView,
    CacheStatsView,
    GuardrailDecisionListView,
    InsightsAnalyticsView,
    PerformanceAnalyticsView,
    SpendView,
    UsageAnalyticsView,
)
from files.rest import FileViewSet
from fine_tuning.rest import FineTuningJobViewSet
from gateway.rest import (
    CachePurgeView,
    ModelDeploymentViewSet,
    ModelHealthView,
    RoutingStatusView,
)
from keys.rest import KeyViewSet
from tenants.rest.views import MembershipViewSet, OrganizationViewSet, TeamViewSet, UserViewSet


def management_endpoints_only(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[Any]:
    """drf-spectacular's preprocessing hook: the schema (and `manage.py spectacular`) documents
    /api/v1 only; SCIM and LiteLLM's root routes are other APIs with their own documents."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]


class OptionalSlashRouter(DefaultRouter):
    """Scripts use the contract's paths without a slash; browsers and DRF's links add one."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("organizations", OrganizationViewSet, basename="organization")
router.register("teams", TeamViewSet, basename="team")
router.register("users", UserViewSet, basename="user")
router.register("memberships", MembershipViewSet, basename="membership")
router.register("keys", KeyViewSet, basename="key")
router.register("budgets", BudgetViewSet, basename="budget")
router.register("models", ModelDeploymentViewSet, basename="model")
router.register("batches", BatchViewSet, basename="batch")
router.register("files", FileViewSet, basename="file")
router.register("assistants", AssistantViewSet, basename="assistant")
router.register("threads", ThreadViewSet, basename="thread")
router.register("assistant-runs", RunViewSet, basename="assistant-run")
router.register("fine_tuning/jobs", FineTuningJobViewSet, basename="fine-tuning-job")

resources = [
    re_path(r"^spend/?$", SpendView.as_view(), name="spend"),
    re_path(
        r"^analytics/performance/?$",
        PerformanceAnalyticsView.as_view(),
        name="analytics-performance",
    ),
    re_path(r"^analytics/usage/?$", UsageAnalyticsView.as_view(), name="analytics-usage"),
    re_path(r"^analytics/cache/?$", CacheAnalyticsView.as_view(), name="analytics-cache"),
    re_path(r"^analytics/insights/?$", InsightsAnalyticsView.as_view(), name="analytics-insights"),
    re_path(r"^cache/?$", CachePurgeView.as_view(), name="cache"),
    re_path(r"^cache/stats/?$", CacheStatsView.as_view(), name="cache-stats"),
    re_path(
        r"^guardrails/decisions/?$",
        GuardrailDecisionListView.as_view(),
        name="guardrail-decisions",
    ),
    re_path(r"^routing/status/?$", RoutingStatusView.as_view(), name="routing-status"),
    # Before the router's `models/{id}`, which would take "health" for an id.
    re_path(r"^models/health/?$", ModelHealthView.as_view(), name="model-health"),
    *router.urls,
]

urlpatterns = [
    # The schema documents this API only, not every DRF view of the site (SCIM has its own).
    path(
        "schema/",
        SpectacularAPIView.as_view(patterns=[path("api/v1/", include(resources))]),
        name="api-schema",
    ),
    # Split: Swagger UI's init script is a file of its own, as the Content-Security-Policy wants.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    *resources,
]

"""LiteLLM's management routes at the root, as its clients call them."""

from django.urls import path

from . import budgets, keys, models, spend, tenancy

urlpatterns = [
    path("key/generate", keys.KeyGenerateView.as_view(), name="litellm-key-generate"),
    path("key/info", keys.KeyInfoView.as_view(), name="litellm-key-info"),
    path("key/list", keys.KeyListView.as_view(), name="litellm-key-list"),
    path("key/update", keys.KeyUpdateView.as_view(), name="litellm-key-update"),
    path("key/delete", keys.KeyDeleteView.as_view(), name="litellm-key-delete"),
    path("team/new", tenancy.TeamNewView.as_view()),
    path("team/info", tenancy.TeamInfoView.as_view()),
    path("team/list", tenancy.TeamListView.as_view()),
    path("team/update", tenancy.TeamUpdateView.as_view()),
    path("team/delete", tenancy.TeamDeleteView.as_view()),
    path("team/member_add", tenancy.TeamMemberAddView.as_view()),
    path("team/member_update", tenancy.TeamMemberUpdateView.as_view()),
    path("team/member_delete", tenancy.TeamMemberDeleteView.as_view()),
    path("user/new", tenancy.UserNewView.as_view()),
    path("user/info", tenancy.UserInfoView.as_view()),
    path("user/update", tenancy.UserUpdateView.as_view()),
    path("user/delete", tenancy.UserDeleteView.as_view()),
    path("organization/new", tenancy.OrganizationNewView.as_view()),
    path("organization/list", tenancy.OrganizationListView.as_view()),
    path("organization/member_add", tenancy.OrganizationMemberAddView.as_view()),
    path("customer/new", tenancy.CustomerNewView.as_view()),
    path("budget/new", budgets.BudgetNewView.as_view()),
    path("budget/info", budgets.BudgetInfoView.as_view()),
    path("budget/list", budgets.BudgetListView.as_view()),
    path("budget/update", budgets.BudgetUpdateView.as_view()),
    path("budget/delete", budgets.BudgetDeleteView.as_view()),
    path("spend/logs", spend.SpendLogsView.as_view()),
    path("global/spend/report", spend.GlobalSpendReportView.as_view()),
    path("model/info", models.ModelInfoView.as_view()),
    path("v2/model/info", models.ModelInfoView.as_view()),
    path("model_group/info", models.ModelGroupInfoView.as_view()),
    path("health", models.HealthView.as_view()),
]

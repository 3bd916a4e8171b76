"""SCIM 2.0 under /scim/v2/ (RFC 7644 §3.2). Anything else under the prefix is a SCIM 404."""

from django.urls import path, re_path

from tenants.scim import views

app_name = "scim"

urlpatterns = [
    path("ServiceProviderConfig", views.ServiceProviderConfigView.as_view(), name="spc"),
    path("Schemas", views.SchemasView.as_view(), name="schemas"),
    path("Schemas/<str:item_id>", views.SchemasView.as_view(), name="schema"),
    path("ResourceTypes", views.ResourceTypesView.as_view(), name="resource-types"),
    path("ResourceTypes/<str:item_id>", views.ResourceTypesView.as_view(), name="resource-type"),
    path("Users", views.UsersView.as_view(), name="users"),
    path("Users/.search", views.SearchView.as_view(resource_type="User"), name="users-search"),
    path("Users/<str:user_id>", views.UserView.as_view(), name="user"),
    path("Groups", views.GroupsView.as_view(), name="groups"),
    path("Groups/.search", views.SearchView.as_view(resource_type="Group"), name="groups-search"),
    path("Groups/<str:group_id>", views.GroupView.as_view(), name="group"),
    path(".search", views.RootSearchView.as_view(), name="search"),
    re_path(r"^(?P<rest>.*)$", views.NotFoundView.as_view(), name="not-found"),
]

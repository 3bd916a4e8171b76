from django.urls import path

from ogem_site.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("keys/", views.keys, name="keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="key_revoke"),
    path("keys/<int:key_id>/rotate/", views.key_rotate, name="key_rotate"),
    path("usage/", views.usage, name="usage"),
    path("teams/", views.teams, name="teams"),
    path("models/", views.models, name="models"),
    path("batches/", views.batches, name="batches"),
    path("vector-stores/", views.vector_stores, name="vector_stores"),
    path("fine-tuning/", views.fine_tuning, name="fine_tuning"),
    path("playground/", views.playground, name="playground"),
    path(
        "playground/realtime-secret/",
        views.playground_realtime_secret,
        name="playground_realtime_secret",
    ),
    path("sso/", views.sso_discover, name="sso_discover"),
]

"""LiteLLM's management routes at the root, as its clients call them."""

from django.urls import path

from . import keys

urlpatterns = [
    path("key/generate", keys.KeyGenerateView.as_view(), name="litellm-key-generate"),
    path("key/info", keys.KeyInfoView.as_view(), name="litellm-key-info"),
    path("key/list", keys.KeyListView.as_view(), name="litellm-key-list"),
    path("key/update", keys.KeyUpdateView.as_view(), name="litellm-key-update"),
    path("key/delete", keys.KeyDeleteView.as_view(), name="litellm-key-delete"),
]

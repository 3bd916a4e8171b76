from django.contrib import admin
from django.urls import include, path

from assistants.api import assistants_mount
from batches.api import batches_mount
from files.api import files_mount
from fine_tuning.api import fine_tuning_mount
from gateway.api import api as gateway_api
from gateway.api import api_routes_end
from vector_stores.api import vector_stores_mount

# /v1 routes of the apps above the gateway, then the gateway's catch-all 404 (last: first match).
files_mount(gateway_api)
batches_mount(gateway_api)
vector_stores_mount(gateway_api)
assistants_mount(gateway_api)
fine_tuning_mount(gateway_api)
api_routes_end()

urlpatterns = [
    path("v1/", gateway_api.urls),
    path("api/v1/", include("ogem_site.api_urls")),
    path("scim/v2/", include("tenants.scim.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    # LiteLLM's management API (/key/generate, /team/new, ...): before the portal's root.
    path("", include("ogem_site.litellm_api.urls")),
    path("", include("ogem_site.portal.urls")),
]

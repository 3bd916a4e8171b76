from django.contrib import admin
from django.urls import include, path

from gateway.api import api as gateway_api

urlpatterns = [
    path("v1/", gateway_api.urls),
    path("api/v1/", include("ogem_site.api_urls")),
    path("scim/v2/", include("tenants.scim.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("ogem_site.portal.urls")),
]

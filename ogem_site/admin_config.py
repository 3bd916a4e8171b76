"""Django admin's app config with Ogem's site (kept apart: it loads before any model)."""

from django.contrib.admin.apps import AdminConfig


class OgemAdminConfig(AdminConfig):
    default_site = "ogem_site.admin_site.OgemAdminSite"

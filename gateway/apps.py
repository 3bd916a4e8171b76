from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # Imported here: they import models, which load after every AppConfig.
        from django.db import transaction

        from billing.analytics import analytics_deployments_set
        from billing.pricing import price_deployment_lookup_set
        from gateway.catalog import model_catalog_build, provider_names
        from gateway.registry import registry_get
        from gateway.selectors import guardrail_definition_owners
        from ogem_site.broadcast import TENANTS, broadcast_publish
        from tenants.catalog import guardrail_owners_set, model_catalog_set
        from tenants.dependents import TenantDependent, tenant_dependent_register

        # Admin's unpriced warning (billing) resolves logged deployment ids in the registry.
        price_deployment_lookup_set(lambda deployment_id: registry_get().by_id.get(deployment_id))
        # Analytics' cheaper-model insight (billing) compares the deployments served now.
        analytics_deployments_set(lambda: tuple(registry_get().by_id.values()))
        # Allow-lists and deployments are checked against what is served when they are written.
        model_catalog_set(lookup=model_catalog_build, providers=provider_names)
        # An organization's own guardrails are attachable to its own tenants only.
        guardrail_owners_set(lookup=lambda names: guardrail_definition_owners(names=names))
        # Identity provider tokens' callers carry their team's and organization's models and
        # routing settings: every worker forgets them when one changes (gateway/jwt_auth.py).
        tenant_dependent_register(
            TenantDependent(
                member_removed=lambda user, organization, reason: None,
                team_removed=lambda team: None,
                tenant_changed=lambda team, organization: transaction.on_commit(
                    lambda: broadcast_publish(topic=TENANTS)
                ),
            )
        )

from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    label = "keys"
    verbose_name = "Virtual keys"

    def ready(self) -> None:
        # Imported here: both modules import models, which load after every AppConfig.
        from keys.services import key_cache_forget, key_revoke_all
        from tenants.dependents import TenantDependent, tenant_dependent_register

        # Keys hang off organizations, teams and users; tenants tells keys when those change.
        tenant_dependent_register(
            TenantDependent(
                member_removed=lambda user, organization, reason: key_revoke_all(
                    user=user, organization=organization, audit_reason=reason
                ),
                team_removed=lambda team: key_revoke_all(team=team),
                tenant_changed=lambda team, organization: key_cache_forget(
                    team=team, organization=organization
                ),
            )
        )

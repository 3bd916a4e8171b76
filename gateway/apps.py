from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # Budgets change in billing (admin, REST, Celery's period resets); the data plane's
        # snapshots of them are the gateway's to drop, in every process that changes one.
        from billing.cache import budget_cache_register_invalidator
        from gateway.governance import governance_snapshots_changed

        budget_cache_register_invalidator(governance_snapshots_changed)

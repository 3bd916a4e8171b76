from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here: both modules import models, which load after every AppConfig.
        from billing.selectors import key_budget_annotate, key_budget_get, key_spend_map
        from billing.services import key_budget_set, key_period_spend_map
        from keys.budgets import KeyBudgetStore, key_budget_store_set

        # A key's own budget is a Budget row: keys reads and writes it through this store.
        key_budget_store_set(
            KeyBudgetStore(
                get=key_budget_get,
                set=key_budget_set,
                annotate=key_budget_annotate,
                spend=lambda key_ids: key_spend_map(key_ids=key_ids),
                period_spend=lambda key_ids: key_period_spend_map(key_ids=key_ids),
            )
        )

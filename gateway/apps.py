from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        # Imported here: these modules import models, which load after every AppConfig.
        from billing.pricing import price_deployment_lookup_set
        from gateway.auth import KEY_CACHE_TOPIC
        from gateway.governance import GOVERNANCE_TOPIC
        from gateway.metrics import usage_streams_render
        from gateway.registry import registry_get
        from ogem_site.broadcast import broadcast_topic_register
        from ogem_site.metrics import metrics_scrape_register

        # The gateway joins the layers below it: what they announce or ask for is answered here.
        broadcast_topic_register(KEY_CACHE_TOPIC)
        broadcast_topic_register(GOVERNANCE_TOPIC)
        metrics_scrape_register(usage_streams_render)
        price_deployment_lookup_set(lambda deployment_id: registry_get().by_id.get(deployment_id))

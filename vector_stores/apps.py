from django.apps import AppConfig


class VectorStoresConfig(AppConfig):
    name = "vector_stores"
    verbose_name = "Vector stores"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The Responses API (gateway, a lower layer) runs `file_search` through the hook it
        # offers; it cannot import this app.
        from gateway.responses_api.file_search import file_search_runner_set
        from vector_stores.search import vector_stores_check, vector_stores_search

        file_search_runner_set(vector_stores_search, check=vector_stores_check)

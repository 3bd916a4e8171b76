from django.apps import AppConfig


class FineTuningConfig(AppConfig):
    name = "fine_tuning"
    verbose_name = "Fine-tuning"
    default_auto_field = "django.db.models.BigAutoField"

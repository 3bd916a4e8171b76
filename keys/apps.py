from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"
    label = "keys"
    verbose_name = "Virtual keys"

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.base")

app = Celery("ogem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

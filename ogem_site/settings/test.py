"""Test settings: the embedded default, or PostgreSQL and Redis when CI exports their URLs."""

import os

from ogem_site.settings.base import *  # noqa: F403
from ogem_site.settings.base import CACHES, REDIS_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
if REDIS_URL:
    # One prefix per test process so parallel runs never see each other's keys.
    CACHES["default"]["KEY_PREFIX"] = f"ogem-test-{os.getpid()}"

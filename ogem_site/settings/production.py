"""Production: the same settings, refusing to start with a default secret or DEBUG on."""

from ogem_site.env import (
    config_master_key,
    env_bool,
    env_collect_end,
    env_int,
    env_list,
    env_require,
    env_str,
)
from ogem_site.settings.base import *  # noqa: F403
from ogem_site.settings.base import DATABASES

env_require(not env_bool("DJANGO_DEBUG", default=False), "DJANGO_DEBUG must be false in production")
env_require(
    len(env_str("DJANGO_SECRET_KEY")) >= 32,
    "DJANGO_SECRET_KEY must be at least 32 characters in production",
)
env_require(
    len(env_str("OGEM_MASTER_KEY") or config_master_key()[0]) >= 20,
    "OGEM_MASTER_KEY (or a LiteLLM config's general_settings.master_key) must be set to at "
    "least 20 characters in production",
)
_encryption_keys = env_list("OGEM_ENCRYPTION_KEYS")
env_require(
    bool(_encryption_keys) and all(len(key) >= 32 for key in _encryption_keys),
    "OGEM_ENCRYPTION_KEYS must be set to one or more comma-separated keys of at least 32 "
    "characters in production",
)
env_require(
    not DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    "DATABASE_URL must point at PostgreSQL in production",
)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("OGEM_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env_bool("OGEM_SECURE_COOKIES", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# HSTS, sent on HTTPS responses (X-Forwarded-Proto: https from the proxy included). Off until set:
# browsers remember it for the whole duration, so turn it on once HTTPS works (docs/deploy.md).
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)

env_collect_end(module=__name__)

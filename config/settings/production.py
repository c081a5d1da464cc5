"""Production settings: PostgreSQL, Redis, object storage, TLS-only cookies.

Nothing here has a default secret; the process refuses to start without them.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DATABASE_URL, REDIS_URL, env, env_bool, env_int

if not env("DJANGO_SECRET_KEY"):
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY for production.")
if not DATABASE_URL:
    raise ImproperlyConfigured("Set DATABASE_URL (postgres://...) for production.")
if not REDIS_URL:
    raise ImproperlyConfigured("Set REDIS_URL (redis://...) for production.")

DEBUG = False
HUIZHEN_SHOW_DEMO_LOGINS = False
HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER = env_bool("HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER", True)
SECURE_SSL_REDIRECT = env_bool("HUIZHEN_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("HUIZHEN_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_NAME = "__Host-huizhen-session"
CSRF_COOKIE_NAME = "__Host-huizhen-csrf"
STORAGES = {  # noqa: F405
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

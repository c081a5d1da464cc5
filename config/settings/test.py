"""Test settings: PostgreSQL and Redis, as in production (defaults: 127.0.0.1)."""

import os
from pathlib import Path

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/huizhen")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("HUIZHEN_SMS_BACKEND", "memory")
# Tests end other sessions and switch triggers per connection: one plain connection each,
# unless a benchmark asks for the production pool.
os.environ.setdefault("HUIZHEN_DB_POOL_MAX", "0")

from .base import *  # noqa: E402,F403
from .base import DATA_DIR  # noqa: E402

# Tasks run inline so that a test sees the result of what it dispatched.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("HUIZHEN_TEST_CELERY_EAGER", "true") == "true"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
MEDIA_ROOT = Path(os.environ.get("HUIZHEN_MEDIA_ROOT") or DATA_DIR / "test-media")
STORAGES = {  # noqa: F405
    **STORAGES,  # noqa: F405
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {  # noqa: F405
    **LOGGING,  # noqa: F405
    "root": {"handlers": ["console"], "level": "WARNING"},
}

# One test database per run, so that several runs on one server do not collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_huizhen_{os.getpid()}"}  # noqa: F405

# Keys of this run only, in the shared Redis: tests clear their own keys, never the database.
CACHES["default"]["KEY_PREFIX"] = f"test{os.getpid()}"  # noqa: F405
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-test{os.getpid()}"  # noqa: F405

"""Settings shared by every environment, read from the environment (12-factor).

With nothing set, Huizhen runs on its embedded default: an SQLite file, an in-memory
channel layer, Celery tasks run inline, files on local disk and a generated secret key,
all kept under ``HUIZHEN_DATA_DIR`` (``./var`` by default).
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return int(value) if value is not None else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DATA_DIR = Path(env("HUIZHEN_DATA_DIR", str(BASE_DIR / "var")) or "").resolve()


def _secret_key() -> str:
    """The configured key, else one generated once and kept (mode 0600) in the data folder."""
    configured = env("DJANGO_SECRET_KEY")
    if configured:
        return configured
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "django_prometheus",
    "registry",
    "imaging",
    "appointments",
    "consult",
    "ehr_bridge",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "registry.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "registry.middleware.SessionTimeoutMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
# PostgreSQL connections per process come from a psycopg pool: under ASGI each request runs
# its synchronous part on a thread of its own, so persistent per-thread connections would
# pile up to one per concurrent request. 0 switches the pool off (one connection per
# request thread, kept for 60 s).
HUIZHEN_DB_POOL_MAX = env_int("HUIZHEN_DB_POOL_MAX", 16)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=0 if HUIZHEN_DB_POOL_MAX else 60
        )
    }
    if HUIZHEN_DB_POOL_MAX:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": HUIZHEN_DB_POOL_MAX,
            "timeout": env_int("HUIZHEN_DB_POOL_TIMEOUT_SECONDS", 10),
        }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "huizhen.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer and Celery broker ------------------------------------------------
HUIZHEN_SITE_NAME = env("HUIZHEN_SITE_NAME", "Huizhen")

REDIS_URL = env("REDIS_URL")
# Every message Huizhen sends over the layer goes to a group of open sockets and is worth
# nothing once they have gone, so Redis pub/sub (one PUBLISH per message, delivered to the
# subscribed processes) is enough, and several times faster than the list-backed layer
# (docs/benchmarks.md, signalling). HUIZHEN_CHANNEL_LAYER=core keeps the list-backed one.
# Past 100 pooled connections redis-py 8 raises and its sockets time out after 5 s: both set.
_CHANNEL_REDIS_HOST = {
    "address": REDIS_URL,
    "max_connections": env_int("HUIZHEN_REDIS_MAX_CONNECTIONS", 500),
    "socket_timeout": None,
}
if REDIS_URL and env("HUIZHEN_CHANNEL_LAYER", "pubsub") == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [_CHANNEL_REDIS_HOST], "capacity": 1000, "expiry": 30},
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_CHANNEL_REDIS_HOST]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: with no broker configured, tasks run inline in the calling process.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_DEFAULT_QUEUE = env("HUIZHEN_CELERY_QUEUE", "huizhen")
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"

# --- Files --------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("HUIZHEN_MEDIA_ROOT", str(DATA_DIR / "media")) or "")
S3_BUCKET = env("HUIZHEN_S3_BUCKET")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env("HUIZHEN_S3_ENDPOINT_URL"),
            "region_name": env("HUIZHEN_S3_REGION"),
            "access_key": env("HUIZHEN_S3_ACCESS_KEY_ID"),
            "secret_key": env("HUIZHEN_S3_SECRET_ACCESS_KEY"),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Request size limits (bulk uploads such as DICOM go through their own streaming endpoints).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("HUIZHEN_MAX_REQUEST_BYTES", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

# --- Authentication and sessions ----------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_AGE = env_int("HUIZHEN_SESSION_ABSOLUTE_SECONDS", 12 * 3600)  # absolute
HUIZHEN_SESSION_IDLE_SECONDS = env_int("HUIZHEN_SESSION_IDLE_SECONDS", 30 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Lockout after repeated failed logins (per username and address).
AXES_FAILURE_LIMIT = env_int("HUIZHEN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("HUIZHEN_LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "registry.auth.lockout_response"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

# Access tokens for API clients: stored hashed, expiring, revoked with the account.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_int("HUIZHEN_TOKEN_TTL_HOURS", 12)),
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": 20,
    "AUTH_HEADER_PREFIX": "Bearer",
}

# Two-factor authentication (TOTP) for specialists and administrators.
HUIZHEN_REQUIRE_2FA = env_bool("HUIZHEN_REQUIRE_2FA", False)
OTP_TOTP_ISSUER = "Huizhen"

# Break-the-glass: emergency access to one patient's record, time-limited.
HUIZHEN_BREAK_GLASS_HOURS = 4

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["registry.permissions.IsActiveStaff"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "registry.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": env("HUIZHEN_LOGIN_RATE", "10/min"),
        "user": env("HUIZHEN_USER_RATE", "1200/min"),
    },
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "NUM_PROXIES": env_int("HUIZHEN_NUM_PROXIES", 0) if env("HUIZHEN_NUM_PROXIES") else None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Huizhen API",
    "DESCRIPTION": "Remote consultation, imaging, appointments and EHR bridge for county "
    "medical communities.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "OrganisationKindEnum": "registry.models.OrganisationKind",
        "IdentifierKindEnum": "registry.models.IdentifierKind",
        "ConsentKindEnum": "registry.models.ConsentKind",
        "WeekdayEnum": "appointments.models.Weekday",
        "InboundStatusEnum": "ehr_bridge.models.InboundStatus",
        "OutboundStatusEnum": "ehr_bridge.models.OutboundStatus",
        "UploadStatusEnum": "consult.models.UploadStatus",
        "ReportStatusEnum": "consult.models.ReportStatus",
        "AlertStatusEnum": "consult.models.AlertStatus",
        "ConversionStatusEnum": "imaging.pathology.models.ConversionStatus",
        "EcgStatusEnum": "imaging.ecg.models.EcgStatus",
        "BookingStatusEnum": "appointments.states.BookingStatus",
        "SlotStatusEnum": "appointments.models.SlotStatus",
        "WaitlistStatusEnum": "appointments.models.WaitlistStatus",
        "ConsultStateEnum": "consult.states.ConsultState",
        "ReferralStateEnum": "consult.models.ReferralState",
        "RecordingStatusEnum": "consult.models.RecordingStatus",
        "LiveSessionStatusEnum": "consult.models.LiveSessionStatus",
    },
}

# Throttle counters and other shared short-lived state.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("HUIZHEN_CACHE_PREFIX", "huizhen"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("HUIZHEN_TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Notifications ---------------------------------------------------------------------------
# "console" writes to the log; "file" appends JSON lines to HUIZHEN_SMS_FILE; "http" posts to
# a generic gateway at HUIZHEN_SMS_HTTP_URL.
HUIZHEN_SMS_BACKEND = env("HUIZHEN_SMS_BACKEND", "file")
HUIZHEN_SMS_FILE = env("HUIZHEN_SMS_FILE", str(DATA_DIR / "sms.jsonl"))
HUIZHEN_SMS_HTTP_URL = env("HUIZHEN_SMS_HTTP_URL")
HUIZHEN_SMS_HTTP_TOKEN = env("HUIZHEN_SMS_HTTP_TOKEN")
HUIZHEN_SMS_HTTP_TIMEOUT = float(env("HUIZHEN_SMS_HTTP_TIMEOUT", "10") or 10)

# --- Outbox --------------------------------------------------------------------------------------
HUIZHEN_OUTBOX_MAX_ATTEMPTS = env_int("HUIZHEN_OUTBOX_MAX_ATTEMPTS", 8)
HUIZHEN_OUTBOX_BATCH = env_int("HUIZHEN_OUTBOX_BATCH", 100)

# --- Protocol servers ----------------------------------------------------------------------------
HUIZHEN_HTTP_HOST = env("HUIZHEN_HTTP_HOST", "127.0.0.1")
HUIZHEN_HTTP_PORT = env_int("HUIZHEN_HTTP_PORT", 8000)
# Addresses of reverse proxies whose X-Forwarded-For / -Proto headers are believed.
HUIZHEN_TRUSTED_PROXIES = env("HUIZHEN_TRUSTED_PROXIES", "127.0.0.1")
HUIZHEN_DICOM_AE_TITLE = env("HUIZHEN_DICOM_AE_TITLE", "HUIZHEN")
HUIZHEN_DICOM_PORT = env_int("HUIZHEN_DICOM_PORT", 11112)
HUIZHEN_DICOM_REQUIRE_KNOWN_AE = env_bool("HUIZHEN_DICOM_REQUIRE_KNOWN_AE", True)
# Largest DICOM object accepted (bytes) and largest decoded image (bytes).
HUIZHEN_DICOM_MAX_OBJECT_BYTES = env_int("HUIZHEN_DICOM_MAX_OBJECT_BYTES", 1024 * 1024 * 1024)
HUIZHEN_DICOM_MAX_PIXEL_BYTES = env_int("HUIZHEN_DICOM_MAX_PIXEL_BYTES", 2 * 1024 * 1024 * 1024)
# A different object under a known SOP Instance UID: "reject" (warning status) or "replace".
HUIZHEN_DICOM_ON_CONFLICT = env("HUIZHEN_DICOM_ON_CONFLICT", "reject")
# Browser viewers allowed to call DICOMweb cross-origin: "https://viewer.example.org,..." or "*".
HUIZHEN_DICOMWEB_CORS_ORIGINS = env_list("HUIZHEN_DICOMWEB_CORS_ORIGINS", "")
# Per-user request rate for DICOMweb (e.g. "6000/min"); unset: a viewer fetches frame by frame.
HUIZHEN_DICOMWEB_RATE = env("HUIZHEN_DICOMWEB_RATE")
# Most results one QIDO-RS page returns.
HUIZHEN_DICOMWEB_MAX_RESULTS = env_int("HUIZHEN_DICOMWEB_MAX_RESULTS", 1000)
HUIZHEN_DICOM_HOST = env("HUIZHEN_DICOM_HOST", "127.0.0.1")
HUIZHEN_MLLP_HOST = env("HUIZHEN_MLLP_HOST", "127.0.0.1")
HUIZHEN_MLLP_PORT = env_int("HUIZHEN_MLLP_PORT", 2575)
# Largest HL7 message accepted (bytes); a larger frame is answered AR and the connection closed.
HUIZHEN_MLLP_MAX_MESSAGE_BYTES = env_int("HUIZHEN_MLLP_MAX_MESSAGE_BYTES", 1024 * 1024)
# Seconds a frame may take to arrive whole, and an idle connection may stay open.
HUIZHEN_MLLP_FRAME_TIMEOUT = float(env("HUIZHEN_MLLP_FRAME_TIMEOUT", "30") or 30)
HUIZHEN_MLLP_IDLE_TIMEOUT = float(env("HUIZHEN_MLLP_IDLE_TIMEOUT", "600") or 600)
HUIZHEN_MLLP_MAX_CONNECTIONS = env_int("HUIZHEN_MLLP_MAX_CONNECTIONS", 200)
# Threads (and so database connections) the listener uses to store messages.
HUIZHEN_MLLP_DB_THREADS = env_int("HUIZHEN_MLLP_DB_THREADS", 8)
# Accept only senders (MSH-3/MSH-4) registered as HL7 partners; the deploy check asks for it.
HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER = env_bool("HUIZHEN_MLLP_REQUIRE_KNOWN_SENDER", False)
# Character set of messages with an empty MSH-18 (HL7's default is ASCII).
HUIZHEN_MLLP_DEFAULT_CHARSET = env("HUIZHEN_MLLP_DEFAULT_CHARSET", "ASCII") or "ASCII"
# Processing attempts before a message is parked, and the first retry delay (doubling).
HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS = env_int("HUIZHEN_MLLP_PROCESS_MAX_ATTEMPTS", 5)
HUIZHEN_MLLP_RETRY_SECONDS = env_int("HUIZHEN_MLLP_RETRY_SECONDS", 30)
# Protocol servers that ``manage.py serve`` runs beside the web server (embedded mode).
HUIZHEN_SERVE_DICOM = env_bool("HUIZHEN_SERVE_DICOM", True)
HUIZHEN_SERVE_MLLP = env_bool("HUIZHEN_SERVE_MLLP", True)
HUIZHEN_SHOW_DEMO_LOGINS = env_bool("HUIZHEN_SHOW_DEMO_LOGINS", True)
HUIZHEN_WS_ALLOWED_ORIGINS_CHECK = True

# --- Consults -------------------------------------------------------------------------------
# Centres (organisation external IDs) that take a consult no centre of the county offers.
HUIZHEN_CONSULT_FALLBACK_CENTRES = env_list("HUIZHEN_CONSULT_FALLBACK_CENTRES")
HUIZHEN_CONSULT_AUTO_ASSIGN = env_bool("HUIZHEN_CONSULT_AUTO_ASSIGN", True)
HUIZHEN_CONSULT_MAX_UPLOAD_BYTES = env_int("HUIZHEN_CONSULT_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
HUIZHEN_CONSULT_CRITICAL_ACK_MINUTES = env_int("HUIZHEN_CONSULT_CRITICAL_ACK_MINUTES", 10)
HUIZHEN_CONSULT_SLA_REROUTE_MINUTES = env_int("HUIZHEN_CONSULT_SLA_REROUTE_MINUTES", 10)

# Live consult sessions (WebRTC). STUN servers as JSON RTCIceServer dicts; TURN through
# coturn's shared-secret REST credentials (no TURN entry is handed out without a secret).
HUIZHEN_ICE_SERVERS = json.loads(env("HUIZHEN_ICE_SERVERS", "[]") or "[]")
HUIZHEN_TURN_URLS = env_list("HUIZHEN_TURN_URLS")
HUIZHEN_TURN_SECRET = env("HUIZHEN_TURN_SECRET", "") or ""
HUIZHEN_TURN_TTL_SECONDS = env_int("HUIZHEN_TURN_TTL_SECONDS", 3600)
# Signalling limits per connection: messages per second, burst, largest frame.
HUIZHEN_LIVE_RATE = float(env("HUIZHEN_LIVE_RATE", "30") or 30)
HUIZHEN_LIVE_BURST = env_int("HUIZHEN_LIVE_BURST", 90)
HUIZHEN_LIVE_MAX_FRAME_BYTES = env_int("HUIZHEN_LIVE_MAX_FRAME_BYTES", 64 * 1024)
HUIZHEN_LIVE_RECHECK_SECONDS = env_int("HUIZHEN_LIVE_RECHECK_SECONDS", 30)
# Guest links for the patient or a relative: how long a link, its SMS code and a joined
# session's token stay valid.
HUIZHEN_LIVE_LINK_TTL_SECONDS = env_int("HUIZHEN_LIVE_LINK_TTL_SECONDS", 24 * 3600)
HUIZHEN_LIVE_CODE_TTL_SECONDS = env_int("HUIZHEN_LIVE_CODE_TTL_SECONDS", 600)
HUIZHEN_LIVE_TOKEN_TTL_SECONDS = env_int("HUIZHEN_LIVE_TOKEN_TTL_SECONDS", 4 * 3600)
HUIZHEN_PRECALL_SECONDS = env_int("HUIZHEN_PRECALL_SECONDS", 60)
HUIZHEN_PRECALL_MAX_PEERS = env_int("HUIZHEN_PRECALL_MAX_PEERS", 8)
# Recording of live consults (with everyone's consent): how long files are kept (3 years),
# how often the recorder re-checks consent and stop requests, the longest recording.
HUIZHEN_RECORDING_RETENTION_DAYS = env_int("HUIZHEN_RECORDING_RETENTION_DAYS", 1095)
HUIZHEN_RECORDING_RECHECK_SECONDS = env_int("HUIZHEN_RECORDING_RECHECK_SECONDS", 2)
HUIZHEN_RECORDING_MAX_SECONDS = env_int("HUIZHEN_RECORDING_MAX_SECONDS", 4 * 3600)
# The address people reach Huizhen at, used in links sent by SMS.
HUIZHEN_PUBLIC_URL = env("HUIZHEN_PUBLIC_URL", "") or ""

# --- Appointments ---------------------------------------------------------------------------
HUIZHEN_SLOT_WEEKS_AHEAD = env_int("HUIZHEN_SLOT_WEEKS_AHEAD", 8)
HUIZHEN_BOOKING_CANCEL_HOURS = env_int("HUIZHEN_BOOKING_CANCEL_HOURS", 2)
HUIZHEN_BOOKING_RESCHEDULE_HOURS = env_int("HUIZHEN_BOOKING_RESCHEDULE_HOURS", 4)
HUIZHEN_WAITLIST_HOLD_MINUTES = env_int("HUIZHEN_WAITLIST_HOLD_MINUTES", 30)
HUIZHEN_REMINDER_OFFSETS_MINUTES = env("HUIZHEN_REMINDER_OFFSETS_MINUTES", "1440,120")
HUIZHEN_PORTAL_OTP_TTL_SECONDS = env_int("HUIZHEN_PORTAL_OTP_TTL_SECONDS", 300)
HUIZHEN_PORTAL_IDLE_SECONDS = env_int("HUIZHEN_PORTAL_IDLE_SECONDS", 900)
HUIZHEN_PORTAL_ABSOLUTE_SECONDS = env_int("HUIZHEN_PORTAL_ABSOLUTE_SECONDS", 14400)
# Family-doctor contracts: remind this many days before a contract ends; the share of
# contracted patients with a follow-up on time that a village doctor's team aims for.
HUIZHEN_CONTRACT_RENEWAL_DAYS = env_int("HUIZHEN_CONTRACT_RENEWAL_DAYS", 30)
HUIZHEN_CONTRACT_TARGET_PERCENT = env_int("HUIZHEN_CONTRACT_TARGET_PERCENT", 70)

# --- Logging: JSON lines with request IDs; no patient data in logs -------------------------------
LOG_LEVEL = env("HUIZHEN_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "registry.logging.RequestContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
    },
}

"""Django's machinery, built from what ``environment.py`` and ``serving.py`` read (it reads
nothing itself)."""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta

from kodify_site.databases import database_from_url, journal_database, sqlite_database
from kodify_site.settings.environment import (
    BASE_DIR,
    DB_URL,
    KODIFY_DATA_DIR,
    KODIFY_DB_POOL_SIZE,
    KODIFY_HSTS_PRELOAD,
    KODIFY_HSTS_SECONDS,
    KODIFY_HTTPS,
    KODIFY_LOGIN_COOLOFF_MINUTES,
    KODIFY_LOGIN_FAILURE_LIMIT,
    KODIFY_SESSION_HOURS,
    LOG_LEVEL,
    REDIS_PREFIX,
    REDIS_URL,
)
from kodify_site.settings.serving import (
    LOGS,
    LOGS_DB_HOST,
    LOGS_DB_NAME,
    LOGS_DB_PASSWORD,
    LOGS_DB_PORT,
    LOGS_DB_USERNAME,
)

# daphne's app only replaces runserver (`make dev`); importing it loads Twisted, about
# 40 MB that no production worker (uvicorn) needs.
RUNSERVER = sys.argv[1:2] == ["runserver"]
INSTALLED_APPS = [
    *(["daphne"] if RUNSERVER else []),
    # The console's theme (django-unfold), before the admin so that its templates win.
    # BasicAppConfig: the plain "unfold" would replace the admin site with its own.
    "unfold.apps.BasicAppConfig",
    "unfold.contrib.simple_history",  # its look for simple_history's pages
    "kodify_site.admin_site.KodifyAdminConfig",  # django.contrib.admin with Kodify's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here: /api/docs/ works offline
    "django_filters",
    "channels",
    "django_celery_beat",
    "axes",
    "simple_history",  # versions of the action templates (gateway.models)
    "kodify_site",
    "accounts",
    "gateway",
    "journal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

# Brute-force protection of the console login (django-axes, attempts kept in the database).
# The public API never goes through Django's authentication, so it is unaffected.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = KODIFY_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=KODIFY_LOGIN_COOLOFF_MINUTES)
# User name and address together: behind a proxy every browser shares one address, and
# locking a user name alone would let anyone lock the administrator out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "kodify_lockout.html"

ROOT_URLCONF = "kodify_site.urls"
ASGI_APPLICATION = "kodify_site.asgi.application"
WSGI_APPLICATION = "kodify_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kodify_site.context_processors.console",
            ],
        },
    },
]

if DB_URL:
    DATABASES = {"default": database_from_url(DB_URL, pool_size=KODIFY_DB_POOL_SIZE)}
else:
    DATABASES = {"default": sqlite_database(KODIFY_DATA_DIR / "kodify.sqlite3")}
if LOGS and LOGS_DB_HOST:
    DATABASES["journal"] = journal_database(
        host=LOGS_DB_HOST,
        port=LOGS_DB_PORT,
        name=LOGS_DB_NAME or "kodify_journal",
        user=LOGS_DB_USERNAME or "",
        password=LOGS_DB_PASSWORD or "",
    )
DATABASE_ROUTERS = ["journal.router.JournalRouter"]

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_PREFIX,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_PREFIX}:asgi"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_PREFIX}:"}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "journal-retention": {
        "task": "journal.purge_expired",
        "schedule": timedelta(hours=6),
    },
}
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps when nobody ran collectstatic (a laptop's `make run`).
WHITENOISE_USE_FINDERS = not STATIC_ROOT.exists()
warnings.filterwarnings("ignore", message="No directory at: ")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The management API (accounts/api.py); the public /v1 API does not use DRF.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": (
        "accounts.permissions.AdminApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ),
    "DEFAULT_PERMISSION_CLASSES": ("accounts.permissions.RolePermission",),
    "DEFAULT_RENDERER_CLASSES": ("rest_framework.renderers.JSONRenderer",),
    "DEFAULT_PARSER_CLASSES": ("rest_framework.parsers.JSONParser",),
    "EXCEPTION_HANDLER": "accounts.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kodify management API",
    "DESCRIPTION": "API users, their tokens and the audit trail. Log in to the console "
    "(/admin/) first, or send 'Authorization: Bearer <KODIFY_ADMIN_API_KEY>'.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would otherwise send the schema to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # The 400/401/403/404 every operation may answer.
        "accounts.api_schema.add_error_responses",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "kodify": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}

SILENCED_SYSTEM_CHECKS: list[str] = []

# The console's session: a working day, renewed by activity, not Django's two weeks.
SESSION_COOKIE_AGE = int(KODIFY_SESSION_HOURS * 3600)
SESSION_SAVE_EVERY_REQUEST = True
if KODIFY_HTTPS:
    SECURE_SSL_REDIRECT = True
    # Probes and scrapers call from inside the network over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health/?$", r"^metrics/?$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = KODIFY_HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = KODIFY_HSTS_PRELOAD
    if not KODIFY_HSTS_PRELOAD:
        # Preloading is the domain owner's decision (KODIFY_HSTS_PRELOAD), not advice.
        SILENCED_SYSTEM_CHECKS.append("security.W021")

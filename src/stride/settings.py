"""Django settings for Stride, read from the environment.

Every value has a safe default for the demo; production overrides them with
environment variables (documented in docs/configuration.md). A bad value stops
the process with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from stride.conf import (
    envbool,
    envchoice,
    envint,
    envlist,
    envpath,
    envsecret,
    envstr,
    envtimezone,
    persistent_secret,
)

PACKAGE_DIR = Path(__file__).resolve().parent
# In a source checkout (src layout) the data folder defaults to <checkout>/var,
# whatever the working directory; an installed package uses ./var.
_CHECKOUT = PACKAGE_DIR.parent.parent
_DEFAULT_HOME = _CHECKOUT / "var" if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd() / "var"

STRIDE_HOME = envpath("STRIDE_HOME", _DEFAULT_HOME)
LOG_DIR = STRIDE_HOME / "logs"
MEDIA_ROOT = STRIDE_HOME / "media"
STATIC_ROOT = STRIDE_HOME / "static"
for _folder in (STRIDE_HOME, LOG_DIR, MEDIA_ROOT, STATIC_ROOT):
    _folder.mkdir(parents=True, exist_ok=True)

DEBUG = envbool("STRIDE_DEBUG", False)
SECRET_KEY = envsecret("STRIDE_SECRET_KEY") or persistent_secret(STRIDE_HOME / "secret_key")
ALLOWED_HOSTS = envlist("STRIDE_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("STRIDE_CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = envstr("STRIDE_SITE_NAME", "Stride")
# The address patients reach Stride at: the links in invitations start with it.
STRIDE_BASE_URL = envstr("STRIDE_BASE_URL", "http://127.0.0.1:8000")

# Behind a reverse proxy, the client address comes from X-Forwarded-For.
# Only trust it when told to: otherwise any client could forge its address in the audit log.
STRIDE_TRUST_X_FORWARDED_FOR = envbool("STRIDE_TRUST_X_FORWARDED_FOR", False)
# Groups smaller than this are suppressed in every de-identified view and export.
STRIDE_MIN_CELL_SIZE = envint("STRIDE_MIN_CELL_SIZE", 5, minimum=1)

INSTALLED_APPS = [
    "stride.apps.StrideAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",  # its bundled Swagger UI files, served by WhiteNoise for /api/docs
    "stride",
    "stride.clinics",
    "stride.patients",
    "stride.care",
    "stride.outcomes",
    "stride.imaging",
    "stride.interop",
    "stride.api",
    "stride.analytics",
    "stride.audit",
    "stride.demo",
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
    "django_htmx.middleware.HtmxMiddleware",
    "stride.audit.middleware.AuditContextMiddleware",
]

ROOT_URLCONF = "stride.urls"
WSGI_APPLICATION = "stride.wsgi.application"
AUTH_USER_MODEL = "clinics.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "stride.clinics.context_processors.memberships",
            ],
        },
    },
]


def _database(url: str) -> dict[str, object]:
    try:
        config: dict[str, object] = dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL cannot be parsed: {exc}") from None
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["CONN_MAX_AGE"] = 0
        # WAL lets readers work while the worker writes; IMMEDIATE avoids
        # "database is locked" upgrades from read to write transactions.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            "transaction_mode": "IMMEDIATE",
        }
    elif engine != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_URL must point to SQLite or PostgreSQL, not {engine}.")
    return config


DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{STRIDE_HOME / 'stride.sqlite3'}")
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SESSION_COOKIE_AGE = envint("STRIDE_SESSION_SECONDS", 8 * 3600, minimum=300)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE = envbool("STRIDE_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = envtimezone("STRIDE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
MEDIA_URL = "/media/"

# Image files (originals untouched, and the renditions derived from them): on local disk under
# STRIDE_HOME/media/images, or in an S3-compatible bucket with STRIDE_IMAGE_STORAGE=s3. Either way
# they are only ever served through views that check who is asking: there is no public URL.
STRIDE_IMAGE_STORAGE = envchoice("STRIDE_IMAGE_STORAGE", "local", ("local", "s3"))
# The largest image file accepted, in megabytes (a long multi-frame ultrasound clip runs to ~100 MB).
STRIDE_IMAGE_MAX_MB = envint("STRIDE_IMAGE_MAX_MB", 200, minimum=1)
if STRIDE_IMAGE_STORAGE == "s3":
    _IMAGES: dict[str, object] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": envstr("STRIDE_S3_BUCKET", ""),
            "endpoint_url": envstr("STRIDE_S3_ENDPOINT_URL", "") or None,
            "region_name": envstr("STRIDE_S3_REGION", "") or None,
            "access_key": envstr("STRIDE_S3_ACCESS_KEY_ID", "") or None,
            "secret_key": envsecret("STRIDE_S3_SECRET_ACCESS_KEY"),
            "location": envstr("STRIDE_S3_PREFIX", "images"),
            "default_acl": None,  # the bucket's own (private) policy
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
    if not _IMAGES["OPTIONS"]["bucket_name"]:  # type: ignore[index]
        raise ImproperlyConfigured("STRIDE_IMAGE_STORAGE=s3 needs STRIDE_S3_BUCKET, the bucket's name.")
else:
    _IMAGES = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT / "images", "base_url": None},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "images": _IMAGES,
}
# Uploads larger than this go to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Static files are vendored in the package and served by WhiteNoise straight
# from the app folders: no collectstatic step before `stride serve`.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

EMAIL_BACKEND = envstr("STRIDE_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = STRIDE_HOME / "mail"
EMAIL_HOST = envstr("STRIDE_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("STRIDE_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = envstr("STRIDE_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = envsecret("STRIDE_EMAIL_PASSWORD") or ""
EMAIL_USE_TLS = envbool("STRIDE_EMAIL_TLS", False)
DEFAULT_FROM_EMAIL = envstr("STRIDE_FROM_EMAIL", "stride@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": LOG_DIR / "stride.log",
            "maxBytes": 10 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "delay": True,
        },
    },
    "root": {
        "handlers": ["console", "file"],
        "level": envchoice("STRIDE_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # PDF rendering: font subsetting logs a line per table at INFO.
        "fontTools": {"level": "WARNING"},
        "weasyprint": {"level": "WARNING"},
    },
}

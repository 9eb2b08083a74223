"""Settings, all from the environment (see docs/configuration.md), read through the
typed readers of `transformation_portal.env`, which also check what they read.

Importing this module only reads: the environment, the TLS pair when TLS_CERT_FILE and
TLS_KEY_FILE name one, and the development secret key file if it exists. The side effects
(data directory, generated secret key, starting the embedded PostgreSQL server and creating
its databases) are `bootstrap.bootstrap()`'s, which every entry point calls before Django
connects.

Development defaults need nothing set: DEBUG on, a SECRET_KEY generated once into
.data/, and an embedded PostgreSQL server under .data/postgres. PORTAL_ENV=production
turns the development conveniences off and requires the secrets to be given.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import make_conninfo

from transformation_portal import env
from transformation_portal.env import (
    env_artifact_storage,
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_tls_pair,
    env_worker_name,
    served_base_url,
)
from transformation_portal.logformat import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# Every variable these settings read (the readers fill it as they read): the portal's own, which
# no environment's password_env may name (runs/environments.py).
PORTAL_VARIABLES = env.PORTAL_VARIABLES

PORTAL_ENV = env_str("PORTAL_ENV", "development")
if PORTAL_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"PORTAL_ENV={PORTAL_ENV!r}: use development or production")
PRODUCTION = PORTAL_ENV == "production"

DATA_DIR = Path(env_str("PORTAL_DATA_DIR", str(BASE_DIR / ".data"))).resolve()
DBT_PROJECTS_DIR = Path(env_str("DBT_PROJECTS_DIR", str(BASE_DIR / "dbt_projects"))).resolve()
RUNS_DIR = Path(env_str("RUNS_DIR", str(DATA_DIR / "runs"))).resolve()
# This host's git cache: a mirror per repository and a checkout per commit (docs/projects.md).
GIT_CACHE_DIR = Path(env_str("GIT_CACHE_DIR", str(DATA_DIR / "git"))).resolve()

DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_POSTGRES = not DATABASE_URL
# Debug pages only on a development machine's embedded database: a deployment that sets
# DATABASE_URL but forgets PORTAL_ENV gets no debug pages (nor demo users, see runportal).
DEBUG = env_bool("DEBUG", not PRODUCTION and EMBEDDED_POSTGRES)

SECRET_KEY = env_str("SECRET_KEY")
# Development without SECRET_KEY: the key bootstrap() generates once into this file.
DEV_SECRET_KEY_FILE = None if SECRET_KEY else DATA_DIR / "secret_key"
if DEV_SECRET_KEY_FILE is not None:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required in production")
    if DEV_SECRET_KEY_FILE.exists():
        SECRET_KEY = DEV_SECRET_KEY_FILE.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- databases -------------------------------------------------------------------------
# Embedded (no DATABASE_URL): one pgserver instance holds the metadata DB `portal`
# (portal tables, audit, django-q2's queue) and the dbt warehouse DB `warehouse`.
EMBEDDED_PGDATA = DATA_DIR / "postgres"
if EMBEDDED_POSTGRES:
    from transformation_portal import embedded_postgres

    _socket = str(embedded_postgres.socket_dir(EMBEDDED_PGDATA))
    DATABASE_URL = f"postgres://{embedded_postgres.SUPERUSER}@{quote(_socket, safe='')}/portal"
    _warehouse_default = f"postgres://{embedded_postgres.SUPERUSER}@{quote(_socket, safe='')}/warehouse"
else:
    _warehouse_default = ""

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or None}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A dead or black-holed metadata database fails a connection within this many seconds (the
# readiness probe, a page) instead of the operating system's TCP timeout of minutes.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 10, minimum=1)

# The warehouse dbt writes to. WAREHOUSE_URL wins; else the DBT_* variables a dbt user
# would set at a shell; else (embedded) the `warehouse` database of the embedded server.
_warehouse_url = env_str("WAREHOUSE_URL", _warehouse_default)
if _warehouse_url:
    _wh = dj_database_url.parse(_warehouse_url)
    WAREHOUSE: dict[str, Any] = {
        "host": _wh["HOST"],
        "port": int(_wh["PORT"] or 5432),
        "user": _wh["USER"],
        "password": _wh["PASSWORD"] or "",
        "dbname": _wh["NAME"],
    }
elif env_str("DBT_HOST"):
    WAREHOUSE = {
        "host": env_str("DBT_HOST"),
        "port": env_int("DBT_PORT", 5432),
        "user": env_str("DBT_USER"),
        "password": env_str("DBT_PASSWORD"),
        "dbname": env_str("DBT_DBNAME"),
    }
else:
    raise ImproperlyConfigured(
        "DATABASE_URL is set, so the warehouse must be too: set WAREHOUSE_URL or DBT_HOST, "
        "DBT_PORT, DBT_USER, DBT_PASSWORD, DBT_DBNAME"
    )


# DATABASE_NAME / WAREHOUSE_DB_NAME override just the database names (tests and their
# worker processes use them to point at the test databases).
DATABASES["default"]["NAME"] = env_str("DATABASE_NAME") or DATABASES["default"]["NAME"]
WAREHOUSE["dbname"] = env_str("WAREHOUSE_DB_NAME") or WAREHOUSE["dbname"]

# Page-side warehouse queries (serving views on the entity pages, mode changes) give up
# quickly instead of hanging a request; view DDL and the rules engine's swap wait at most
# WAREHOUSE_LOCK_TIMEOUT_MS per attempt, so they never queue every reader behind them.
WAREHOUSE_CONNECT_TIMEOUT = env_int("WAREHOUSE_CONNECT_TIMEOUT", 3, minimum=1)
WAREHOUSE_STATEMENT_TIMEOUT_MS = env_int("WAREHOUSE_STATEMENT_TIMEOUT_MS", 5000, minimum=1)
WAREHOUSE_LOCK_TIMEOUT_MS = env_int("WAREHOUSE_LOCK_TIMEOUT_MS", 2000, minimum=1)
WAREHOUSE_CONNINFO = make_conninfo(**{key: str(value) for key, value in WAREHOUSE.items() if value not in ("", None)})
# What dbt_projects/profiles.yml reads; the portal sets these for every dbt process.
DBT_ENV = {
    "DBT_HOST": str(WAREHOUSE["host"]),
    "DBT_PORT": str(WAREHOUSE["port"]),
    "DBT_USER": str(WAREHOUSE["user"]),
    "DBT_PASSWORD": str(WAREHOUSE["password"]),
    "DBT_DBNAME": str(WAREHOUSE["dbname"]),
}
# The demo (embedded warehouse, not production): inventory_transforms' seeds are the raw
# data, so `dbt seed`/`build` load them into raw.*. Anywhere else they land in demo_seeds and
# never overwrite the raw tables a loader filled.
DEMO_SEEDS_INTO_RAW = env_bool(
    "DEMO_SEEDS_INTO_RAW", EMBEDDED_POSTGRES and not env_str("WAREHOUSE_URL") and not PRODUCTION
)
if DEMO_SEEDS_INTO_RAW:
    DBT_ENV["DBT_SEED_SCHEMA"] = "raw"
# dbt sees only an allowlist of the worker's environment (dbtlib/environment.py): any
# other variable a project's env_var() needs is named here and passed on as it is.
DBT_ENV_PASSTHROUGH = env_list("DBT_ENV_PASSTHROUGH")
DBT_ENV.update({name: os.environ[name] for name in DBT_ENV_PASSTHROUGH if name in os.environ})
# An environment's password_env names a DBT_ENV_SECRET_* variable, or one listed here (never
# one of the portal's own settings: runs/environments.py refuses those even when listed).
ENVIRONMENT_PASSWORD_VARIABLES = env_list("ENVIRONMENT_PASSWORD_VARIABLES")
# Warehouse schemas no run writes as its own schema (an environment's or a schema override):
# the loader's raw data, the rules engine's output and the serving views, changed only by the
# portal's audited, approved paths.
PROTECTED_SCHEMAS = [name.lower() for name in env_list("PROTECTED_SCHEMAS", "raw,rules_engine,serving")]

# --- applications ------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "transformation_portal",
    "audit",
    "accounts",
    "lineage",
    "runs",
    "entities",
    "dbt_cloud",
    "operations",
]

MIDDLEWARE = [
    "operations.request_metrics.RequestMetricsMiddleware",  # first: its latency covers the rest
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.RequestIdMiddleware",
    "kernel.security.SecurityHeadersMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "transformation_portal.urls"
WSGI_APPLICATION = "transformation_portal.wsgi.application"

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
                "accounts.context_processors.capabilities",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "accounts.authentication.RevokeTokensOnPasswordChange"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = not PRODUCTION
# Run artifacts (manifest, run results, catalog, sources, compiled SQL, dbt.log) go to
# storages["artifacts"] after each dbt invocation (runs/artifacts.py), so any web process
# serves them whichever host ran dbt.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": env_artifact_storage("ARTIFACT_STORAGE"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- security (PORTAL_ENV=production passes `manage.py check --deploy`) -----------------------
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", PRODUCTION)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Probes talk plain HTTP to the process itself (a container health check, a proxy's upstream
# check): the TLS redirect would answer them 301.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# The certificate and key `runportal` serves HTTPS with, or None (env.tls_pair).
TLS_PAIR = env_tls_pair("TLS_CERT_FILE", "TLS_KEY_FILE")
# Behind nginx by default in production; not when gunicorn serves HTTPS itself: clients reach
# it directly, and whatever X-Forwarded-* they send is their own.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", PRODUCTION and TLS_PAIR is None)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Debug pages and error mails hide connection strings and mask passwords in them.
DEFAULT_EXCEPTION_REPORTER_FILTER = "kernel.security.ConnectionStringReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "kernel.security.MaskingExceptionReporter"

# Login lockout (django-axes) on /login/ and /admin/login/: LOGIN_FAILURE_LIMIT failures of
# one username from one address lock that pair out for LOGIN_LOCKOUT_MINUTES (429). The
# same window bounds the failed-login audit rows: one per username and window.
AUTHENTICATION_BACKENDS = [
    "accounts.authentication.LoginLockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_CALLABLE = "accounts.lockout.locked_out"  # a portal page saying when to try again
# The client's address, for the login lockout and the bad-token throttle alike
# (accounts.authentication.client_address): the TCP peer, or behind TRUSTED_PROXY_COUNT proxies
# (one, nginx, when BEHIND_TLS_PROXY) the X-Forwarded-For entry the outermost proxy wrote
# (`check --deploy` warns when it is set while the portal serves TLS itself).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1 if BEHIND_TLS_PROXY else 0)
AXES_CLIENT_IP_CALLABLE = "accounts.authentication.client_address"

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "portal@localhost")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)  # seconds; a hung SMTP server fails the mail task

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every view must say what it needs; this default refuses anything that forgets.
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.DenyAll"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "transformation_portal.api_errors.exception_handler",
    # Bad bearer tokens per client address and minute before 429 (accounts.authentication).
    "DEFAULT_THROTTLE_RATES": {"bad_token": f"{env_int('API_BAD_TOKENS_PER_MINUTE', 20, minimum=1)}/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Transformation Portal API",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` with its own choices: each enum gets a name of its own.
    "ENUM_NAME_OVERRIDES": {
        "ModeRequestStatusEnum": "entities.models.RequestStatus",
        "FreshnessStatusEnum": "lineage.models.FreshnessStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "transformation_portal.api_errors.add_error_responses",
    ],
}
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1)

# --- queue (django-q2) -----------------------------------------------------------------
# A run's own timeout is enforced by the worker (SIGINT, then SIGKILL); django-q2's
# `timeout` is only the last resort above the largest allowed run timeout. The ORM broker
# redelivers a task after `retry` seconds even while it still runs, so retry is set above
# timeout, and max_attempts=1: a run is never started twice by the queue. The run's
# conditional claim and the reaper own correctness (docs/architecture.md).
RUN_DEFAULT_TIMEOUT = env_int("RUN_DEFAULT_TIMEOUT", 3600, minimum=1)
RUN_MAX_TIMEOUT = env_int("RUN_MAX_TIMEOUT", 6 * 3600, minimum=1)
LINEAGE_KEEP_SNAPSHOTS = env_int("LINEAGE_KEEP_SNAPSHOTS", 30, minimum=1)
RUN_CANCEL_GRACE_SECONDS = env_int("RUN_CANCEL_GRACE_SECONDS", 10, minimum=1)
RUN_HEARTBEAT_SECONDS = env_int("RUN_HEARTBEAT_SECONDS", 5, minimum=1)
RUN_STALE_AFTER_SECONDS = env_int("RUN_STALE_AFTER_SECONDS", 60, minimum=5)
RUN_REQUEUE_AFTER_SECONDS = env_int("RUN_REQUEUE_AFTER_SECONDS", 300, minimum=30)
RUN_REQUEUE_ATTEMPTS = env_int("RUN_REQUEUE_ATTEMPTS", 3, minimum=0)
# Retention (runs/retention.py, daily and `manage.py prune_runs`): a finished run's
# directory, log chunks, node results and notification deliveries go after this many days;
# the run row and the audit stay. Below RUNS_MIN_FREE_MB free on RUNS_DIR's filesystem,
# new runs are refused (507 disk_full).
RUN_RETENTION_DAYS = env_int("RUN_RETENTION_DAYS", 30, minimum=1)
RUNS_MIN_FREE_MB = env_int("RUNS_MIN_FREE_MB", 500)
# Upper bound of a manifest (or catalog) upload; larger ones get 413.
MANIFEST_UPLOAD_MAX_MB = env_int("MANIFEST_UPLOAD_MAX_MB", 200, minimum=1)
# statement_timeout of the heavy read queries any viewer can start (lineage search, audit list).
VIEWER_STATEMENT_TIMEOUT_MS = env_int("VIEWER_STATEMENT_TIMEOUT_MS", 10000, minimum=1)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# One wall-clock bound on a webhook delivery, its retries and their backoff included: a
# receiver that trickles bytes (each read within WEBHOOK_TIMEOUT_SECONDS) is cut off here.
WEBHOOK_DEADLINE_SECONDS = env_int("WEBHOOK_DEADLINE_SECONDS", 30, minimum=1)
# Webhook hosts exempt from the refusal of loopback, private and link-local addresses.
WEBHOOK_ALLOWED_HOSTS = [host.lower().strip("[]") for host in env_list("WEBHOOK_ALLOWED_HOSTS")]
# /readyz: the worker check (when present) fails when no worker has beaten for this long.
READY_WORKER_MAX_AGE = env_int("READY_WORKER_MAX_AGE", 60, minimum=1)


# --- metrics (GET /metrics, operations/metrics.py) ---------------------------------------
# Served to these client addresses (the TCP peer, never X-Forwarded-For), or to a request
# with `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ALLOWED_IPS = env_networks("METRICS_ALLOWED_IPS", "127.0.0.1,::1")
METRICS_TOKEN = env_str("METRICS_TOKEN").strip()
if METRICS_TOKEN and len(METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 16 characters")

# The dbt Cloud API (dbt_cloud/): the one account id it answers to, and its default page size.
PORTAL_ACCOUNT_ID = env_int("PORTAL_ACCOUNT_ID", 1, minimum=1)
PORTAL_API_PAGE_SIZE = env_int("PORTAL_API_PAGE_SIZE", 100, minimum=1)

# Where `runportal` serves (its --host and --port default to these; it hands what it was given
# to the processes it starts).
WEB_HOST = env_str("HOST", "127.0.0.1").strip()
WEB_PORT = env_int("PORT", 8000, minimum=1)


# The portal's address in links (notifications, webhooks, the dbt Cloud API's run `href`).
# Behind a proxy, set it to the public URL.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL").strip().rstrip("/") or served_base_url(
    WEB_HOST, WEB_PORT, TLS_PAIR is not None
)

# A queue cluster's name (runs/registry.py): every run records the name of the worker that
# claimed it; only a worker of that name ever signals the run's dbt (the reaper elsewhere
# just marks it lost), and a worker starting under it first stops what its reaped runs left.
# Unset: the host name plus the kernel's boot id (env.default_worker_name).
PORTAL_WORKER_NAME = env_worker_name("PORTAL_WORKER_NAME")
Q_CLUSTER = {
    "name": env_str("QUEUE_NAME", "portal"),  # the broker's queue key; clusters sharing it share work
    "workers": env_int("QUEUE_WORKERS", 2, minimum=1),
    "timeout": RUN_MAX_TIMEOUT + 300,
    "retry": RUN_MAX_TIMEOUT + 600,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,  # a schedule missed while the portal was down runs once, not per slot
    "poll": 0.1,
    "label": "Queue",
}
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# One cache every web process shares (the bad-token throttle counts there): Redis when
# configured, else a table of the metadata database (made by accounts' migrations).
CACHE_TABLE = "portal_cache"
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("QUEUE_NAME", "portal"),  # installations sharing a Redis stay apart
        }
        if REDIS_URL
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    )
}

# LOG_FORMAT=json: one JSON object per line (python-json-logger); a record logged while a run
# is triggered or executed carries its run_id, project, job and user (runs/logcontext.py).
LOG_FORMAT = env_str("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use text or json")
LOGGING = logging_config(LOG_FORMAT, env_str("LOG_LEVEL", "INFO"))

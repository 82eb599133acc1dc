"""Django settings. The environment is read here and only here, through the typed helpers in config.py."""

import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from . import embedded, local_secret
from .config import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_map,
    env_networks,
    env_rate,
    env_str,
    env_url,
)
from .machine import usable_cpu_count

BASE_DIR = Path(__file__).resolve().parent.parent
VERSION = "0.1.0"

# --- Service ---------------------------------------------------------------------------------------
# Loopback unless told otherwise: `make run` on a laptop must not be reachable from the network. The
# image, Compose and Kubernetes set 0.0.0.0 explicitly.
SERVICE_HOST = env_str("SERVICE_HOST", "127.0.0.1")
SERVICE_PORT = env_int("SERVICE_PORT", 8006, minimum=1, maximum=65535)
# Threads per web process serving sync API views (orchestrator_project/http_handler.py); each holds at
# most one database connection while it serves a request.
WEB_THREADS = env_int("WEB_THREADS", 4, minimum=1, maximum=64)
# Uvicorn worker processes (`--workers`): one event loop is one core, so by default one per usable core.
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", usable_cpu_count(), minimum=1)
# Seconds open requests get to finish after SIGTERM (Uvicorn's --timeout-graceful-shutdown).
WEB_SHUTDOWN_GRACE = env_int("WEB_SHUTDOWN_GRACE", 20, minimum=0)
# Threads of the Celery worker process: each runs one dispatch round or sweep at a time.
WORKER_CONCURRENCY = env_int("WORKER_CONCURRENCY", 8, minimum=1)

# --- Backing services: from the environment, or the embedded development servers -------------------
_DATABASE_URL = env_url(
    "DATABASE_URL",
    schemes=(
        "postgres",
        "postgresql",
        "pgsql",
        "postgresql+asyncpg",
        "postgresql+psycopg",
        "postgresql+psycopg2",
    ),
)
_REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
# No URL means one machine: the project brings its own servers (under var/) and serves loopback agents.
EMBEDDED_SERVICES = _DATABASE_URL is None
DATABASE_URL = _DATABASE_URL or embedded.ensure_postgres()
REDIS_URL = _REDIS_URL or embedded.ensure_redis()

# Under pytest: Redis traffic moves to its own database number (and Celery to its own queue), so a
# `make run` on the same servers never sees test messages, and parallel test runs can be told apart.
TESTING = env_bool("ORCHESTRATOR_TESTING", "pytest" in sys.modules)
if TESTING:
    REDIS_URL = urlunsplit(urlsplit(REDIS_URL)._replace(path=f"/{env_int('TEST_REDIS_DB', 9, minimum=0)}"))

# Off unless asked for (`make dev` asks): `make run` is the production configuration, embedded or not.
# Tests get the development defaults, wherever their servers are (`DATABASE_URL=... make test`).
DEBUG = env_bool("DEBUG", TESTING)

_DEV_SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if SECRET_KEY is None and EMBEDDED_SERVICES:
    # One machine, no key given: a random key made on the first start and kept beside the data it
    # signs for (sessions, webhook signatures), so a restart does not log everyone out.
    SECRET_KEY = local_secret.load_or_create(embedded.VAR_DIR / "secret_key")
elif SECRET_KEY is None and DEBUG:
    SECRET_KEY = _DEV_SECRET_KEY
if not DEBUG and SECRET_KEY in (None, _DEV_SECRET_KEY):
    raise ImproperlyConfigured("SECRET_KEY must be set to a secret value when DEBUG is off")
if not DEBUG and len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if DEBUG else ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Reverse proxies every request passes through. With one or more, the last proxy's X-Forwarded-For is
# the client address (throttles, /metrics access) and its X-Forwarded-Proto says whether the client
# used HTTPS; with none, both headers are the client's own word and are ignored.
NUM_PROXIES = env_int("NUM_PROXIES", 0, minimum=0)

# Public address of this service, given to agents as the base of their `callback_url`.
PUBLIC_BASE_URL = env_url(
    "PUBLIC_BASE_URL",
    f"http://{'127.0.0.1' if SERVICE_HOST in ('0.0.0.0', '::') else SERVICE_HOST}:{SERVICE_PORT}",
).rstrip("/")

# --- Services named by the seed ------------------------------------------------------------------
RAG_SERVICE_URL = env_url("RAG_SERVICE_URL")
RULEGEN_SERVICE_URL = env_url("RULEGEN_SERVICE_URL")
NOTIFIER_SERVICE_URL = env_url("NOTIFIER_SERVICE_URL")
RAG_SERVICE_CAPABILITIES = env_list("RAG_SERVICE_CAPABILITIES", [])
RULEGEN_SERVICE_CAPABILITIES = env_list("RULEGEN_SERVICE_CAPABILITIES", [])
NOTIFIER_SIGNING_SECRET = env_str("NOTIFIER_SIGNING_SECRET", SECRET_KEY)

# --- Agents --------------------------------------------------------------------------------------
AGENT_HEARTBEAT_TIMEOUT = env_int("AGENT_HEARTBEAT_TIMEOUT", 30, minimum=1)
AGENT_PROBE_INTERVAL = env_int("AGENT_PROBE_INTERVAL", 15, minimum=1)
AGENT_PROBE_FAILURE_THRESHOLD = env_int("AGENT_PROBE_FAILURE_THRESHOLD", 3, minimum=1)
AGENT_PROBE_TIMEOUT = env_float("AGENT_PROBE_TIMEOUT", 5.0, minimum=0.1)
AGENT_DEFAULT_MAX_CONCURRENCY = env_int("AGENT_DEFAULT_MAX_CONCURRENCY", 10, minimum=1)
_PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
_LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]
# Loopback agents (a model server on the same laptop, the tests' fake agents) only where everything runs
# on one machine; a deployment's agents live on its private networks.
AGENT_ALLOWED_NETWORKS = env_networks(
    "AGENT_ALLOWED_NETWORKS", _PRIVATE_NETWORKS + (_LOOPBACK_NETWORKS if EMBEDDED_SERVICES or TESTING else [])
)
AGENT_RESPONSE_MAX_BYTES = env_int("AGENT_RESPONSE_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
AGENT_CONNECT_TIMEOUT = env_float("AGENT_CONNECT_TIMEOUT", 5.0, minimum=0.1)
# Cancelling a task that an agent holds sends it `POST {endpoint}/cancel` (tasks/engine/cancel_notice.py).
AGENT_CANCEL_NOTICES = env_bool("AGENT_CANCEL_NOTICES", True)
# The largest request body the API reads: an agent's result report (a result of up to
# AGENT_RESPONSE_MAX_BYTES, as a synchronous answer may be) plus its envelope. Larger ones get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = AGENT_RESPONSE_MAX_BYTES + 1024 * 1024

# --- Tasks and dispatch -------------------------------------------------------------------------
TASK_MAX_INPUT_BYTES = env_int("TASK_MAX_INPUT_BYTES", 1024 * 1024, minimum=1)
TASK_MAX_RETRIES = env_int("TASK_MAX_RETRIES", 3, minimum=0)
TASK_DEFAULT_TIMEOUT = env_int("TASK_DEFAULT_TIMEOUT", 60, minimum=1)
TASK_RETRY_BACKOFF_BASE = env_float("TASK_RETRY_BACKOFF_BASE", 1.0, minimum=0)
TASK_RETRY_BACKOFF_MAX = env_float("TASK_RETRY_BACKOFF_MAX", 60.0, minimum=0)
# An agent that refuses a task (503, 429, connection refused) on one of the task's first N attempts
# sends it at once to an agent it has not tried; the refusing agent gets it back only after the backoff.
# 0: every retry waits its backoff.
TASK_FAILOVER_ATTEMPTS = env_int("TASK_FAILOVER_ATTEMPTS", 1, minimum=0)
TASK_BULK_MAX = env_int("TASK_BULK_MAX", 1000, minimum=1)
# Routing (docs/routing.md). Kept in step with tasks/engine/strategies.py (which cannot be imported
# before the apps are loaded; tests/test_settings.py holds the two equal).
_STRATEGIES = ("least_connections", "round_robin", "weighted_round_robin", "random", "fastest", "adaptive")
LOAD_BALANCING_STRATEGY = env_choice("LOAD_BALANCING_STRATEGY", "least_connections", _STRATEGIES)
# Per capability: `capability=strategy,...`; a task's own `strategy` field still wins.
ROUTING_STRATEGY_BY_CAPABILITY = env_map("ROUTING_STRATEGY_BY_CAPABILITY", values=_STRATEGIES)
# The adaptive model: how fast it forgets (seconds), how much each sample weighs at least, what a failure
# costs on top of its latency, and how new agents are explored.
ROUTING_DECAY_SECONDS = env_float("ROUTING_DECAY_SECONDS", 10.0, minimum=0.1)
ROUTING_LATENCY_ALPHA = env_float("ROUTING_LATENCY_ALPHA", 0.2, minimum=0.001)
ROUTING_SUCCESS_ALPHA = env_float("ROUTING_SUCCESS_ALPHA", 0.05, minimum=0.001)
ROUTING_FAILURE_PENALTY_MS = env_float("ROUTING_FAILURE_PENALTY_MS", 1000.0, minimum=0)
ROUTING_EXPLORE_SHARE = env_float("ROUTING_EXPLORE_SHARE", 0.05, minimum=0)
ROUTING_WARMUP_SAMPLES = env_int("ROUTING_WARMUP_SAMPLES", 10, minimum=0)
# The share of the free agents, the cheapest, that adaptive draws its two choices from (1: all of them).
ROUTING_PAIR_SHARE = env_float("ROUTING_PAIR_SHARE", 0.5, minimum=0.01)
_SHARES = ("ROUTING_LATENCY_ALPHA", "ROUTING_SUCCESS_ALPHA", "ROUTING_EXPLORE_SHARE", "ROUTING_PAIR_SHARE")
for _name in _SHARES:
    if globals()[_name] > 1:
        raise ImproperlyConfigured(f"{_name} must be <= 1, got {globals()[_name]}")
# A dispatch round reads every eligible agent for a capability set, or an unbiased random sample of this
# many when there are more (a 200-task round need not read 10,000 agents).
ROUTING_CANDIDATE_SAMPLE = env_int("ROUTING_CANDIDATE_SAMPLE", 1000, minimum=1)
CIRCUIT_BREAKER_FAILURE_THRESHOLD = env_int("CIRCUIT_BREAKER_FAILURE_THRESHOLD", 5, minimum=1)
CIRCUIT_BREAKER_RECOVERY_TIMEOUT = env_int("CIRCUIT_BREAKER_RECOVERY_TIMEOUT", 30, minimum=1)
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 2, minimum=1)
DISPATCH_BATCH_SIZE = env_int("DISPATCH_BATCH_SIZE", 200, minimum=1)
AGENT_CALL_CONCURRENCY = env_int("AGENT_CALL_CONCURRENCY", 1000, minimum=1)
LEASE_GRACE_SECONDS = env_int("LEASE_GRACE_SECONDS", 10, minimum=0)
# How long an operator's assignment of a task that is not auto-dispatched keeps the agent's slot waiting for
# /execute; then the task sweep hands it back (tasks/engine/sweeps.py).
TASK_ASSIGNMENT_HOLD_SECONDS = env_int("TASK_ASSIGNMENT_HOLD_SECONDS", 300, minimum=1)
EXECUTE_MAX_WAIT_SECONDS = env_int("EXECUTE_MAX_WAIT_SECONDS", 300, minimum=1)
# On SIGTERM a worker lets agent calls in flight finish for this long, then hands the rest back.
WORKER_SHUTDOWN_GRACE = env_float("WORKER_SHUTDOWN_GRACE", 30.0, minimum=0)

# --- Workflows (docs/workflows.md: limits) ---------------------------------------------------------
WORKFLOW_SPEC_MAX_BYTES = env_int("WORKFLOW_SPEC_MAX_BYTES", 256 * 1024, minimum=1024)
WORKFLOW_MAX_STEPS = env_int("WORKFLOW_MAX_STEPS", 500, minimum=1)
WORKFLOW_TEMPLATE_MAX_BYTES = env_int("WORKFLOW_TEMPLATE_MAX_BYTES", 8 * 1024, minimum=16)
# A step's output (its task's result) above this fails the step, as any other failure would.
WORKFLOW_OUTPUT_MAX_BYTES = env_int("WORKFLOW_OUTPUT_MAX_BYTES", 256 * 1024, minimum=1)
WORKFLOW_RUN_INPUT_MAX_BYTES = env_int("WORKFLOW_RUN_INPUT_MAX_BYTES", 1024 * 1024, minimum=1)
WORKFLOW_MAP_MAX_ITEMS = env_int("WORKFLOW_MAP_MAX_ITEMS", 10000, minimum=1)
WORKFLOW_MAX_NESTING = env_int("WORKFLOW_MAX_NESTING", 5, minimum=0)  # sub-workflows within sub-workflows
WORKFLOW_APPROVAL_SWEEP_SECONDS = env_int("WORKFLOW_APPROVAL_SWEEP_SECONDS", 5, minimum=1)

# --- Monitoring ------------------------------------------------------------------------------------
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_networks(
    "METRICS_ALLOWED_NETWORKS", _LOOPBACK_NETWORKS if DEBUG or EMBEDDED_SERVICES else []
)

# --- Event streaming (docs/events.md) ------------------------------------------------------------
# Where the relay publishes the outbox: a Redis Stream per entity type (works with no Kafka at all), Kafka,
# or nowhere (then no event is even written).
EVENT_SINK = env_choice("EVENT_SINK", "redis", ("redis", "kafka", "none"))
# Topic (Kafka) or stream key (Redis) per entity type; keys are the entity ids.
EVENT_TOPICS = {
    "task": env_str("EVENT_TOPIC_TASK", "orchestrator.task.events.v1"),
    "agent": env_str("EVENT_TOPIC_AGENT", "orchestrator.agent.events.v1"),
    "workflow_run": env_str("EVENT_TOPIC_WORKFLOW_RUN", "orchestrator.workflow_run.events.v1"),
}
# CloudEvents `source` of every event.
EVENT_SOURCE = env_str("EVENT_SOURCE", "/agent-orchestrator")
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 7, minimum=1)
EVENT_RELAY_BATCH = env_int("EVENT_RELAY_BATCH", 500, minimum=1, maximum=10000)
EVENT_RELAY_POLL_SECONDS = env_float("EVENT_RELAY_POLL_SECONDS", 0.05, minimum=0.001)
# The longest the relay waits between retries while the sink is down (it starts at a tenth of a second).
EVENT_RELAY_BACKOFF_MAX = env_float("EVENT_RELAY_BACKOFF_MAX", 10.0, minimum=0.1)
# A relay lag (age of the oldest unpublished event) above this makes /health/detailed degraded.
EVENT_RELAY_LAG_DEGRADED_SECONDS = env_float("EVENT_RELAY_LAG_DEGRADED_SECONDS", 60.0, minimum=1)
# Redis sink: its own server if set (else REDIS_URL), and the approximate cap of each stream's length.
EVENT_REDIS_URL = env_url("EVENT_REDIS_URL", schemes=("redis", "rediss"))
EVENT_STREAM_MAXLEN = env_int("EVENT_STREAM_MAXLEN", 1_000_000, minimum=1000)
# Kafka sink: librdkafka settings. The producer is always idempotent with acks=all (ordering per key
# survives retries); the security options are passed through as they are.
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS")
if EVENT_SINK == "kafka" and not KAFKA_BOOTSTRAP_SERVERS:
    raise ImproperlyConfigured("EVENT_SINK=kafka needs KAFKA_BOOTSTRAP_SERVERS (host:port,...)")
KAFKA_SECURITY_PROTOCOL = env_choice(
    "KAFKA_SECURITY_PROTOCOL", "plaintext", ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
)
KAFKA_SASL_MECHANISM = env_choice(
    "KAFKA_SASL_MECHANISM", "PLAIN", ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
)
KAFKA_SASL_USERNAME = env_str("KAFKA_SASL_USERNAME")
KAFKA_SASL_PASSWORD = env_str("KAFKA_SASL_PASSWORD")
KAFKA_SSL_CA_LOCATION = env_str("KAFKA_SSL_CA_LOCATION")
KAFKA_SSL_CERTIFICATE_LOCATION = env_str("KAFKA_SSL_CERTIFICATE_LOCATION")
KAFKA_SSL_KEY_LOCATION = env_str("KAFKA_SSL_KEY_LOCATION")
KAFKA_SSL_KEY_PASSWORD = env_str("KAFKA_SSL_KEY_PASSWORD")
if KAFKA_SECURITY_PROTOCOL.startswith("sasl") and KAFKA_SASL_MECHANISM != "OAUTHBEARER":
    if not (KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD):
        raise ImproperlyConfigured(
            f"KAFKA_SECURITY_PROTOCOL={KAFKA_SECURITY_PROTOCOL} needs KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD"
        )
# How long the producer keeps trying one message before the relay hears it failed and retries it.
KAFKA_DELIVERY_TIMEOUT_MS = env_int("KAFKA_DELIVERY_TIMEOUT_MS", 30000, minimum=1000)

# --- Django ----------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "orchestrator_project.apps.OrchestratorAdminConfig",  # django.contrib.admin, open to roles
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "django_prometheus",
    "orchestrator_project.accounts",
    "orchestrator_project.outbox",
    "agents",
    "tasks",
    "workflows",
    "monitoring",
]

MIDDLEWARE = [
    "orchestrator_project.logging.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "orchestrator_project.middleware.RejectNulInQueryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "orchestrator_project.urls"
ASGI_APPLICATION = "orchestrator_project.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]


def _database_config(url):
    import dj_database_url

    # The seed's example uses an SQLAlchemy-style scheme (postgresql+asyncpg://); the driver is ours.
    scheme, rest = url.split("://", 1)
    config = dj_database_url.parse(f"{scheme.split('+')[0]}://{rest}")
    # Django's psycopg backend as django-prometheus instruments it (django_db_* series), with a lighter
    # cursor counter (orchestrator_project/db_metrics.py); prepared.py counts its own cursors the same way.
    config["ENGINE"] = "orchestrator_project.database"
    config["CONN_MAX_AGE"] = 0
    # Lets several test runs share one server without dropping each other's test database.
    config["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME", f"test_{config['NAME']}")}
    config["OPTIONS"] = {
        # psycopg 3's pool: connections are reused across requests and threads without leaking.
        "pool": {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1, minimum=0),
            "max_size": env_int("DB_POOL_MAX_SIZE", 20, minimum=1),
            "timeout": env_float("DB_POOL_TIMEOUT", 10.0, minimum=0.1),
        },
    }
    if DB_IDLE_IN_TRANSACTION_TIMEOUT:
        # A process stopped in the middle of a transaction (SIGSTOP, a debugger, a frozen VM) would hold
        # its row locks for as long as it stays stopped, and every sweep and worker touching those rows
        # would wait for it (tests/chaos scenario 6). Postgres ends such a transaction after this long;
        # the stopped process finds its connection gone when it resumes and redoes its guarded writes.
        timeout_ms = int(DB_IDLE_IN_TRANSACTION_TIMEOUT * 1000)
        config["OPTIONS"]["options"] = f"-c idle_in_transaction_session_timeout={timeout_ms}"
    if DB_PREPARED_STATEMENTS:
        # psycopg prepares nothing while this is None (Django's default). The hot statements ask for it
        # explicitly (orchestrator_project/prepared.py); Django's own cursors bind on the client and
        # never prepare, whatever the threshold.
        config["OPTIONS"]["prepare_threshold"] = 2**31 - 1
    return config


# The hot statements (task INSERT, heartbeat, token lookups) are prepared once per connection
# (orchestrator_project/prepared.py); off for transaction-mode poolers that cannot keep them.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
# Seconds a transaction may sit idle (its process stopped) before Postgres ends it; 0 turns it off.
DB_IDLE_IN_TRANSACTION_TIMEOUT = env_float("DB_IDLE_IN_TRANSACTION_TIMEOUT", 10.0, minimum=0)
DATABASES = {"default": _database_config(DATABASE_URL)}
if TESTING:
    # The test process starts and drops threads by the hundred (in-process workers, concurrency tests);
    # a thread that ends without closing would keep its pool slot until the pool runs dry. Processes the
    # tests start (workers, web servers, the benchmark) run with the pool as in production.
    DATABASES["default"]["OPTIONS"].pop("pool")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "orchestrator",
    }
}

_REDIS_DB = urlsplit(REDIS_URL).path.strip("/") or "0"
CHANNEL_LAYERS = {
    "default": {
        # Redis pub/sub: a group send is one PUBLISH, and each web process delivers it to its own sockets.
        # The list-based layer would push one copy per connected client into Redis instead.
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # Pub/sub channels ignore Redis database numbers: naming the number keeps a test run, the
        # benchmark and `make run` sharing one Redis server out of each other's live streams.
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"orchestrator:asgi:{_REDIS_DB}"},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
FORMAT_MODULE_PATH = ["orchestrator_project.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

LOGIN_URL = "/admin/login/"

# --- Security (production defaults; `manage.py check --deploy` is clean behind an HTTPS proxy) -----
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the dashboard's JavaScript reads it to call the API
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent on HTTPS responses only (SecurityMiddleware checks request.is_secure()), so harmless on plain HTTP.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
# HTTPS is known to be on offer only through a trusted proxy (the service itself speaks plain HTTP).
# Behind one, plain requests are redirected and cookies are Secure; without one (`make run` on
# loopback) a redirect would point at a port that speaks no TLS and a Secure cookie would never come
# back. Trusting X-Forwarded-Proto with no proxy would let any client claim HTTPS.
_BEHIND_HTTPS_PROXY = NUM_PROXIES > 0
if NUM_PROXIES > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _BEHIND_HTTPS_PROXY)
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health", r"^metrics", r"^status"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _BEHIND_HTTPS_PROXY)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _BEHIND_HTTPS_PROXY)

# --- REST framework and OpenAPI ------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orchestrator_project.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["orchestrator_project.accounts.permissions.IsOperatorOrReadOnly"],
    # JSON only: the API takes no uploads, and a form body (which a malformed multipart payload turns into
    # an empty one) would be read as "no fields" instead of being refused with 415.
    "DEFAULT_PARSER_CLASSES": ["orchestrator_project.parsers.BoundedJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "orchestrator_project.filters.StrictFilterBackend",
        "orchestrator_project.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "orchestrator_project.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("AUTH_TOKEN_RATE", "10/min"),
        "heartbeat": env_rate("HEARTBEAT_RATE", "6000/min"),
    },
    "EXCEPTION_HANDLER": "orchestrator_project.exceptions.exception_handler",
    "NUM_PROXIES": NUM_PROXIES,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Orchestrator API",
    "DESCRIPTION": "Register AI agents, submit tasks, and follow them to completion.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestrator_project.openapi.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.models.TaskStatus",
        "AgentStatusEnum": "agents.models.AgentStatus",
        "CircuitStateEnum": "agents.models.CircuitState",
        "ReportedTaskStatusEnum": [("completed", "completed"), ("failed", "failed")],
        "WorkflowRunStatusEnum": "workflows.models.RunStatus",
        "WorkflowStepStatusEnum": "workflows.models.StepStatus",
        "WorkflowStepKindEnum": "workflows.models.StepKind",
    },
}

# --- Celery ----------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Messages only wake workers and every job is idempotent: a lost one costs latency, never a task (the
# sweep finds the work). Acking late would add Redis bookkeeping per message for nothing, and its
# restore-on-disconnect path is where kombu crashed the worker when Redis vanished (tests/chaos).
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "orchestrator-test" if TESTING else "orchestrator")

# --- Logging ---------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# Below DEBUG, Celery's lines per job are left out (see LOGGING's "loggers").
_QUIET_CELERY_JOBS = LOG_LEVEL.upper() != "DEBUG"
# `json`: one object per line with request_id / task_id, for log collectors. `plain`: for a terminal.
# Plain for a terminal (`make run`, `make dev`), JSON where a collector reads the logs.
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG or EMBEDDED_SERVICES else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "orchestrator_project.logging.ContextFilter"},
        "quiet_celery_jobs": {"()": "orchestrator_project.logging.QuietCeleryJobs"},
    },
    "formatters": {
        "plain": {"()": "orchestrator_project.logging.PlainFormatter"},
        "json": {"()": "orchestrator_project.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "httpx": {"level": "WARNING"},
        # Uvicorn's own lines (start, stop, errors) in our format; its access log is off (--no-access-log).
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Configuring "uvicorn" would otherwise re-attach its access logger, which --no-access-log
        # detached: uvicorn checks for handlers, and a second line per request cost the event loop.
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        # One line per request with its id, status and duration (RequestIdMiddleware).
        "orchestrator.access": {"level": "INFO"},
        # Celery's lines per job: beat's "Sending due task", the worker's "received" and "succeeded".
        # The housekeeping schedule alone (sweeps every SWEEP_INTERVAL_SECONDS) made about three a
        # second of them, burying what an operator reads; failures are ERROR and still show, and so do these
        # loggers' other lines. LOG_LEVEL=DEBUG brings them all back.
        **{
            name: {"filters": ["quiet_celery_jobs"]}
            for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
            if _QUIET_CELERY_JOBS
        },
    },
}

# The superuser `make run` makes (manage.py ensure_superuser): the password given, or on one machine a
# random one shown once; never a default one.
SUPERUSER_USERNAME = env_str("DJANGO_SUPERUSER_USERNAME", "admin")
SUPERUSER_PASSWORD = env_str("DJANGO_SUPERUSER_PASSWORD")

# --- `make run`'s supervisor (orchestrator_project/runstack.py) --------------------------------------
# A crashed web, worker or beat is restarted after RUNSTACK_BACKOFF_INITIAL seconds, doubling with each
# further crash of that process within RUNSTACK_CRASH_WINDOW seconds (at most RUNSTACK_BACKOFF_MAX);
# its RUNSTACK_CRASH_LIMIT-th crash within the window stops everything with a non-zero exit.
RUNSTACK_BACKOFF_INITIAL = env_float("RUNSTACK_BACKOFF_INITIAL", 1.0, minimum=0)
RUNSTACK_BACKOFF_MAX = env_float("RUNSTACK_BACKOFF_MAX", 30.0, minimum=0)
RUNSTACK_CRASH_LIMIT = env_int("RUNSTACK_CRASH_LIMIT", 5, minimum=1)
RUNSTACK_CRASH_WINDOW = env_float("RUNSTACK_CRASH_WINDOW", 120.0, minimum=1)

if TESTING:
    # Test users are created by the hundred; a deliberately slow hash would dominate the suite's time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

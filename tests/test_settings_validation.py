"""A bad configuration value stops start-up with a message naming the variable."""

import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestrator_project import config

BOOT = "import django; django.setup(); print('booted')"


def boot_with(*, unset=(), **env):
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    from django.conf import settings

    # Point at the test's own servers so no embedded server is started by the child.
    base.update(DATABASE_URL=settings.DATABASE_URL, REDIS_URL=settings.REDIS_URL, DEBUG="true")
    base.update(env)
    for name in unset:
        base.pop(name, None)
    return subprocess.run([sys.executable, "-c", BOOT], env=base, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SERVICE_PORT", "eighty", "SERVICE_PORT must be an integer"),
        ("SERVICE_PORT", "70000", "SERVICE_PORT must be <= 65535"),
        ("EMBEDDED_POSTGRES_PORT", "postgres", "EMBEDDED_POSTGRES_PORT must be an integer"),
        ("EMBEDDED_REDIS_PORT", "0", "EMBEDDED_REDIS_PORT must be >= 1"),
        ("DATABASE_URL", "sqlite:///db.sqlite3", "DATABASE_URL must be a URL with scheme"),
        ("DATABASE_URL", "postgres://db:notaport/x", "DATABASE_URL is not a valid URL"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must be a URL"),
        ("RAG_SERVICE_URL", "ftp://rag", "RAG_SERVICE_URL must be a URL"),
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("AGENT_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-net", "AGENT_ALLOWED_NETWORKS contains an invalid"),
        ("TASK_MAX_RETRIES", "-1", "TASK_MAX_RETRIES must be >= 0"),
        ("LOAD_BALANCING_STRATEGY", "telepathy", "LOAD_BALANCING_STRATEGY must be one of"),
        ("ROUTING_STRATEGY_BY_CAPABILITY", "translate", "must be key=value pairs"),
        ("ROUTING_STRATEGY_BY_CAPABILITY", "translate=telepathy", "translate must map to one of"),
        ("ROUTING_DECAY_SECONDS", "0", "ROUTING_DECAY_SECONDS must be >= 0.1"),
        ("ROUTING_LATENCY_ALPHA", "1.5", "ROUTING_LATENCY_ALPHA must be <= 1"),
        ("ROUTING_EXPLORE_SHARE", "often", "ROUTING_EXPLORE_SHARE must be a number"),
        ("ROUTING_PAIR_SHARE", "0", "ROUTING_PAIR_SHARE must be >= 0.01"),
        ("ROUTING_PAIR_SHARE", "2", "ROUTING_PAIR_SHARE must be <= 1"),
        ("ROUTING_CANDIDATE_SAMPLE", "0", "ROUTING_CANDIDATE_SAMPLE must be >= 1"),
        ("WORKER_SHUTDOWN_GRACE", "soon", "WORKER_SHUTDOWN_GRACE must be a number"),
        ("HEARTBEAT_RATE", "lots", "HEARTBEAT_RATE must be a rate like 6000/min"),
        ("HEARTBEAT_RATE", "0/min", "HEARTBEAT_RATE must be a rate like 6000/min"),
        ("AUTH_TOKEN_RATE", "10/fortnight", "AUTH_TOKEN_RATE must be a rate like 6000/min"),
        ("EVENT_SINK", "carrier-pigeon", "EVENT_SINK must be one of redis, kafka, none"),
        ("EVENT_SINK", "kafka", "EVENT_SINK=kafka needs KAFKA_BOOTSTRAP_SERVERS"),
        ("EVENT_RETENTION_DAYS", "0", "EVENT_RETENTION_DAYS must be >= 1"),
        ("EVENT_RELAY_BATCH", "many", "EVENT_RELAY_BATCH must be an integer"),
        ("EVENT_REDIS_URL", "localhost:6379", "EVENT_REDIS_URL must be a URL"),
        ("KAFKA_SECURITY_PROTOCOL", "tls", "KAFKA_SECURITY_PROTOCOL must be one of"),
        ("WEB_CONCURRENCY", "all", "WEB_CONCURRENCY must be an integer"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be >= 1"),
        ("WORKER_CONCURRENCY", "-4", "WORKER_CONCURRENCY must be >= 1"),
        ("NUM_PROXIES", "-1", "NUM_PROXIES must be >= 0"),
        ("RUNSTACK_CRASH_LIMIT", "0", "RUNSTACK_CRASH_LIMIT must be >= 1"),
        ("RUNSTACK_BACKOFF_INITIAL", "soon", "RUNSTACK_BACKOFF_INITIAL must be a number"),
    ],
)
def test_it_refuses_to_start_with_a_bad_value_naming_the_variable(variable, value, message):
    result = boot_with(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_boots_with_good_values():
    result = boot_with(SERVICE_PORT="9000", RAG_SERVICE_URL="http://rag:8000", HEARTBEAT_RATE="50/s")
    assert result.returncode == 0, result.stderr
    assert "booted" in result.stdout


def test_sasl_without_credentials_is_refused():
    result = boot_with(
        EVENT_SINK="kafka", KAFKA_BOOTSTRAP_SERVERS="kafka:9092", KAFKA_SECURITY_PROTOCOL="sasl_ssl"
    )
    assert result.returncode != 0
    assert "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in result.stderr


def test_production_refuses_the_default_secret_key():
    result = boot_with(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = boot_with(DEBUG="false", SECRET_KEY="too-short")
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 32 characters" in result.stderr


def test_explicit_service_urls_outside_tests_mean_production():
    # DEBUG unset: given URLs are a deployment, so the default secret key is refused.
    result = boot_with(unset=["DEBUG"], ORCHESTRATOR_TESTING="false")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_starts_with_a_real_secret_key():
    result = boot_with(DEBUG="false", SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr


def test_the_seed_database_url_spelling_is_accepted():
    from orchestrator_project.settings import _database_config

    db = _database_config("postgresql+asyncpg://user:pw@db.example:5433/surveillance")
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "orchestrator_project.database",  # Django's psycopg backend, counted for django-prometheus
        "db.example",
        5433,
        "surveillance",
        "user",
    )


def test_env_helpers_parse_and_reject(monkeypatch):
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_BOOL", "Yes")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert config.env_int("X_INT", 1) == 12
    assert config.env_bool("X_BOOL") is True
    assert config.env_list("X_LIST") == ["a", "b", "c"]
    assert config.env_int("X_MISSING", 7) == 7
    monkeypatch.setenv("X_FLOAT", "fast")
    with pytest.raises(ImproperlyConfigured, match="X_FLOAT must be a number"):
        config.env_float("X_FLOAT", 1.0)


def test_every_variable_read_by_the_settings_is_documented():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    read = set()
    for module in ("orchestrator_project/settings.py", "orchestrator_project/embedded.py"):
        source = (root / module).read_text()
        read |= set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))
        read |= set(re.findall(r'os\.environ\.get\(\s*"([A-Z][A-Z0-9_]+)"', source))
    # the patterns still match
    assert {"SERVICE_PORT", "DATABASE_URL", "EMBEDDED_POSTGRES_PORT", "ORCHESTRATOR_VAR_DIR"} <= read
    documented = set(
        re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", (root / "docs/configuration.md").read_text(), re.M)
    )
    assert sorted(read - documented) == []

"""The settings `make run` gets with no URLs (the embedded mode): production (DEBUG off) on loopback, a
secret key made once and kept in var/ with mode 0600, loopback agents allowed there and nowhere else by
default, plain HTTP, one web process per usable core.

Each case boots the settings in a fresh interpreter. The embedded servers' start-up is replaced by the
test servers' URLs (tests/test_embedded_services.py and tests/test_two_commands.py run the real ones):
what is under test here is what the settings make of the mode.
"""

import ipaddress
import json
import os
import stat
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orchestrator_project import local_secret
from orchestrator_project.machine import usable_cpu_count

PROBE = """
import json, os, sys
from orchestrator_project import embedded
embedded.ensure_postgres = lambda: os.environ["TEST_POSTGRES"]
embedded.ensure_redis = lambda: os.environ["TEST_REDIS"]
import django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "embedded": s.EMBEDDED_SERVICES, "debug": s.DEBUG, "secret_key": s.SECRET_KEY,
    "service_host": s.SERVICE_HOST, "web_concurrency": s.WEB_CONCURRENCY, "log_format": s.LOG_FORMAT,
    "agent_networks": [str(n) for n in s.AGENT_ALLOWED_NETWORKS],
    "ssl_redirect": s.SECURE_SSL_REDIRECT, "session_cookie_secure": s.SESSION_COOKIE_SECURE,
    "proxy_ssl_header": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
}))
"""
_INHERITED = ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "SERVICE_HOST", "WEB_CONCURRENCY",
              "AGENT_ALLOWED_NETWORKS", "LOG_FORMAT", "NUM_PROXIES", "ORCHESTRATOR_VAR_DIR")  # fmt: skip


def boot(var_dir, **env):
    """The settings of a process started as `make run` starts it, with var/ at `var_dir`."""
    base = {key: value for key, value in os.environ.items() if key not in _INHERITED}
    base.update(
        TEST_POSTGRES=settings.DATABASE_URL,
        TEST_REDIS=settings.REDIS_URL,
        ORCHESTRATOR_VAR_DIR=str(var_dir),
        ORCHESTRATOR_TESTING="false",
    )
    base.update(env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=base, capture_output=True, text=True, timeout=60
    )
    return result, (json.loads(result.stdout) if result.returncode == 0 else None)


def loopback_allowed(networks):
    return any(ipaddress.ip_address("127.0.0.1") in ipaddress.ip_network(n) for n in networks)


def test_make_run_with_no_urls_is_production_on_loopback(tmp_path):
    result, seen = boot(tmp_path)
    assert result.returncode == 0, result.stderr
    assert seen["embedded"] is True and seen["debug"] is False
    assert seen["service_host"] == "127.0.0.1"
    assert seen["web_concurrency"] == usable_cpu_count()
    # Plain HTTP: no proxy to trust, so no redirect, no Secure cookies, X-Forwarded-Proto ignored.
    assert (seen["ssl_redirect"], seen["session_cookie_secure"], seen["proxy_ssl_header"]) == (
        False,
        False,
        None,
    )
    assert loopback_allowed(seen["agent_networks"])
    assert seen["log_format"] == "plain"  # a terminal reads it


def test_the_secret_key_is_made_once_kept_private_and_reused(tmp_path):
    _, first = boot(tmp_path)
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first["secret_key"] == key_file.read_text().strip() and len(first["secret_key"]) >= 50
    _, second = boot(tmp_path)
    assert second["secret_key"] == first["secret_key"]


def test_a_secret_key_from_the_environment_wins_and_nothing_is_written(tmp_path):
    given = "k" * 50
    _, seen = boot(tmp_path, SECRET_KEY=given)
    assert seen["secret_key"] == given
    assert not (tmp_path / "secret_key").exists()


def test_a_key_file_others_can_read_stops_start_up_saying_what_to_do(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("x" * 60)
    key_file.chmod(0o644)
    result, _ = boot(tmp_path)
    assert result.returncode != 0
    assert f"is readable by others (mode 644): run `chmod 600 {key_file}`" in result.stderr


def test_a_deployment_allows_no_loopback_agents_unless_told(tmp_path):
    production = {
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": "k" * 50,
    }
    _, seen = boot(tmp_path, **production)
    assert seen["embedded"] is False and not loopback_allowed(seen["agent_networks"])
    assert seen["log_format"] == "json"
    _, told = boot(tmp_path, **production, AGENT_ALLOWED_NETWORKS="127.0.0.0/8")
    assert told["agent_networks"] == ["127.0.0.0/8"]


def test_dev_mode_is_debug_with_the_same_kept_key(tmp_path):
    _, run = boot(tmp_path)
    _, dev = boot(tmp_path, DEBUG="true")
    assert dev["debug"] is True and dev["secret_key"] == run["secret_key"]


# --- local_secret on its own -------------------------------------------------------------------------
def test_processes_racing_to_make_the_key_all_get_the_first_ones(tmp_path):
    path = tmp_path / "var" / "secret_key"
    first = local_secret.load_or_create(path)
    local_secret._create(path)  # a process that found no file a moment ago, and lost the race
    assert local_secret.load_or_create(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no draft left behind


def test_a_truncated_key_file_is_refused(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("short")
    path.chmod(0o600)
    with pytest.raises(ImproperlyConfigured, match="shorter than 50 characters: delete it to get a new one"):
        local_secret.load_or_create(path)

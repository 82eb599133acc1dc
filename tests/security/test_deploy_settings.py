"""Production settings: `manage.py check --deploy` is clean behind an HTTPS proxy, HTTPS redirects and
Secure cookies follow whether requests come through such a proxy (not DEBUG), and secrets come only from
the environment.

Each case is a fresh process with a production environment (DEBUG off, a long SECRET_KEY, the test
servers' DATABASE_URL and REDIS_URL, ALLOWED_HOSTS, one TLS-terminating proxy in front), as a container
would start it. They run at the same time: a Django start-up costs seconds on this machine.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = secrets.token_urlsafe(50)
METRICS_TOKEN = secrets.token_urlsafe(32)
NOTIFIER_SIGNING_SECRET = secrets.token_urlsafe(32)

# Run inside the production process: the deploy checks at warning level, then what the secrets are.
PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("check", deploy=True, fail_level="WARNING")
from django.conf import settings as s
print(json.dumps({"secrets": [s.SECRET_KEY, s.METRICS_TOKEN, s.NOTIFIER_SIGNING_SECRET], "debug": s.DEBUG}))
"""

# Requests through the whole middleware stack of a production process, over plain HTTP, with and without
# a proxy's word that the client used HTTPS.
REQUESTS = """
import json, django
django.setup()
from django.contrib.staticfiles import storage
from django.test import Client
# Static URLs without the manifest that `collectstatic` writes into a real deployment's image.
storage.staticfiles_storage._wrapped = storage.StaticFilesStorage()
def seen(response):
    cookie = response.cookies.get("csrftoken")
    return {
        "status": response.status_code,
        "location": response.headers.get("Location"),
        "hsts": response.headers.get("Strict-Transport-Security"),
        "secure_cookie": None if cookie is None else bool(cookie["secure"]),
        "headers": {name: response.headers.get(name) for name in (
            "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")},
    }
client = Client(HTTP_HOST="orchestrator.example.com")
print(json.dumps({
    "plain": seen(client.get("/admin/login/")),
    "says_https": seen(client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")),
    "health": seen(client.get("/health")),
}))
"""


def _database_url():
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def production_env(**overrides):
    # Nothing of the test process leaks in: not its DEBUG, not its "this is a test run" flag.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO", "ORCHESTRATOR"))}
    for name in ("DEBUG", "TEST_REDIS_DB", "CELERY_QUEUE", "DATABASE_TEST_NAME", "METRICS_TOKEN"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="orchestrator_project.settings",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL=_database_url(),
        REDIS_URL=settings.REDIS_URL,
        ALLOWED_HOSTS="orchestrator.example.com",
        # Behind one reverse proxy that terminates TLS: the production setup docs/deployment.md describes.
        NUM_PROXIES="1",
        METRICS_TOKEN=METRICS_TOKEN,
        NOTIFIER_SIGNING_SECRET=NOTIFIER_SIGNING_SECRET,
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def start(env, *args):
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def runs():
    """The three processes, started together and awaited once."""
    procs = {
        "production": start(production_env(), "-c", PROBE),
        # Control: a setting the deploy checks warn about, so a clean run above means something.
        "no_hsts": start(
            production_env(SECURE_HSTS_SECONDS="0"),
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ),
        # Served straight to clients over plain HTTP: HTTPS cannot be had, and the deploy check says so.
        "no_proxy": start(
            production_env(NUM_PROXIES="0"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
        ),
        "requests_through_proxy": start(production_env(), "-c", REQUESTS),
        "requests_direct": start(production_env(NUM_PROXIES="0"), "-c", REQUESTS),
        "no_secret_key": start(production_env(SECRET_KEY=None), "manage.py", "check"),
        "short_secret_key": start(production_env(SECRET_KEY="short-but-set"), "manage.py", "check"),
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err)
    return results


def test_check_deploy_is_clean_with_production_settings(runs):
    code, out, err = runs["production"]
    assert code == 0, err
    assert "System check identified no issues" in out + err
    assert json.loads(out.strip().splitlines()[-1])["debug"] is False


def test_the_deploy_check_does_warn_when_a_setting_is_unsafe(runs):
    code, out, err = runs["no_hsts"]
    assert code != 0
    assert "security.W004" in out + err


def test_the_deploy_check_says_when_nothing_offers_https(runs):
    code, out, err = runs["no_proxy"]
    assert code != 0
    for check in ("security.W008", "security.W012", "security.W016"):  # redirect, session and CSRF cookies
        assert check in out + err


def responses(runs, case):
    code, out, err = runs[case]
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def test_behind_a_proxy_plain_http_is_redirected_and_https_gets_secure_cookies_and_hsts(runs):
    seen = responses(runs, "requests_through_proxy")
    assert seen["plain"]["status"] == 301
    assert seen["plain"]["location"] == "https://orchestrator.example.com/admin/login/"
    https = seen["says_https"]
    assert https["status"] == 200 and https["secure_cookie"] is True
    assert https["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert https["headers"] == SECURITY_HEADERS
    assert seen["health"]["status"] == 200  # probes inside the cluster speak plain HTTP


def test_served_directly_plain_http_works_and_a_clients_claim_of_https_is_ignored(runs):
    # `make run` on loopback: DEBUG off, no proxy. A redirect would point at a port that speaks no TLS.
    seen = responses(runs, "requests_direct")
    for case in ("plain", "says_https"):
        assert seen[case]["status"] == 200
        assert seen[case]["secure_cookie"] is False
        assert seen[case]["hsts"] is None
        assert seen[case]["headers"] == SECURITY_HEADERS


def test_secrets_are_the_environments_own(runs):
    code, out, _ = runs["production"]
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1])["secrets"] == [
        SECRET_KEY,
        METRICS_TOKEN,
        NOTIFIER_SIGNING_SECRET,
    ]


@pytest.mark.parametrize(
    ("case", "message"), [("no_secret_key", "SECRET_KEY must be set"), ("short_secret_key", "at least 32")]
)
def test_production_refuses_to_start_without_a_real_secret_key(runs, case, message):
    code, out, err = runs[case]
    assert code != 0
    assert message in err

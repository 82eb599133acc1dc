"""Deleting tasks in the admin: a finished task may go; an unfinished one holds (or is about to hold) an
agent's slot that nothing would give back, so it must be cancelled first."""

import pytest
from django.contrib.admin.sites import site

from agents.models import Agent
from tasks.models import Task, TaskStatus
from tests.agents.conftest import make_agent

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/tasks/task/"


@pytest.fixture
def busy_agent():
    agent = make_agent("busy", capabilities=["ocr"])
    Agent.objects.filter(pk=agent.pk).update(current_load=1)
    return agent


@pytest.fixture
def running(busy_agent):
    return Task.objects.create(
        type="ocr", required_capabilities=["ocr"], status=TaskStatus.RUNNING, assigned_agent=busy_agent
    )


@pytest.fixture
def finished():
    return Task.objects.create(type="ocr", required_capabilities=["ocr"], status=TaskStatus.COMPLETED)


def load_of(agent):
    agent.refresh_from_db()
    return agent.current_load


def test_a_running_task_cannot_be_deleted(admin_client, running, busy_agent):
    assert admin_client.get(f"{CHANGELIST}{running.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{running.pk}/delete/", {"post": "yes"}).status_code == 403
    page = admin_client.get(f"{CHANGELIST}{running.pk}/change/").content.decode()
    assert f"{CHANGELIST}{running.pk}/delete/" not in page  # no Delete button either

    assert Task.objects.filter(pk=running.pk).exists()
    assert load_of(busy_agent) == 1


def test_a_finished_task_can_be_deleted(admin_client, finished):
    response = admin_client.post(f"{CHANGELIST}{finished.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Task.objects.filter(pk=finished.pk).exists()


def test_the_bulk_delete_refuses_a_selection_with_an_unfinished_task(admin_client, running, finished):
    selection = {"action": "delete_selected", "_selected_action": [running.pk, finished.pk]}

    confirmation = admin_client.post(CHANGELIST, selection).content.decode()
    assert "doesn’t have permission to delete" in confirmation or "permission to delete" in confirmation
    admin_client.post(CHANGELIST, {**selection, "post": "yes"})

    assert set(Task.objects.values_list("pk", flat=True)) == {running.pk, finished.pk}


def test_a_task_retried_while_the_delete_page_was_open_is_kept(rf, admin_user, finished):
    """The page showed it finished; by the time Delete is pressed an operator has retried it."""
    Task.objects.filter(pk=finished.pk).update(status=TaskStatus.PENDING)
    request = rf.post(f"{CHANGELIST}{finished.pk}/delete/")
    request.user = admin_user

    site.get_model_admin(Task).delete_model(request, finished)  # `finished` is the page's stale copy

    assert Task.objects.get(pk=finished.pk).status == TaskStatus.PENDING

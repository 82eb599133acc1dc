"""Roles in the admin and on the dashboard, per actor, through the real admin with Django's test client.

Operators view agents and tasks and act on them (actions on the changelist, buttons on the change page),
viewers only view, a staff user with no role sees nothing, superusers everything. A role alone opens the
admin (no staff flag needed). The API's own rules are in tests/test_access_rules.py and
tests/security/test_access_matrix.py.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management.sql import emit_post_migrate_signal
from django.test import Client

from agents.models import Agent, AgentStatus, AgentStatusChange, CircuitState
from orchestrator_project.accounts.roles import OPERATORS, VIEWERS
from tasks.models import Task, TaskEvent, TaskStatus
from tests.actors import PASSWORD, make_user
from tests.agents.conftest import make_agent
from tests.security.conftest import make_task

pytestmark = pytest.mark.django_db

AGENTS = "/admin/agents/agent/"
TASKS = "/admin/tasks/task/"


@pytest.fixture
def staff_without_role(db):
    user = make_user("stan-staff")
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def alice(db):
    return make_agent("alice", capabilities=["summarize"])


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def said(response):
    """The admin messages shown on the page a request ended on: [(level, text)]."""
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def act(client, changelist, action, *objects):
    return client.post(
        changelist, {"action": action, "_selected_action": [str(o.pk) for o in objects]}, follow=True
    )


def press(client, changelist, obj, verb):
    """The button on the object's change page."""
    return client.post(f"{changelist}{obj.pk}/verb/{verb}/", follow=True)


# --- The groups' permissions --------------------------------------------------------------------


# What viewers may see: every model of agents, tasks and workflows.
VIEWER_CODENAMES = {
    "view_agent",
    "view_agentroute",
    "view_agentstatuschange",
    "view_task",
    "view_taskevent",
    "view_workflowdefinition",
    "view_workflowrun",
    "view_steprun",
    "view_workflowevent",
}


def codenames(role):
    return set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))


def test_the_role_groups_carry_their_model_permissions():
    assert codenames(VIEWERS) == VIEWER_CODENAMES
    assert codenames(OPERATORS) == codenames(VIEWERS) | {
        "change_agent",
        "change_agentroute",
        "change_agentstatuschange",
        "delete_agent",
        "delete_agentroute",
        "delete_agentstatuschange",
        "change_task",
        "change_taskevent",
        "change_workflowdefinition",
        "change_workflowrun",
        "change_steprun",
        "change_workflowevent",
    }


def test_every_migrate_puts_the_groups_right_again():
    """What happens when a model is added to agents or tasks: its permissions appear after migrate, and
    the groups get them then. Grants made to the groups by hand go."""
    viewers = Group.objects.get(name=VIEWERS)
    viewers.permissions.remove(Permission.objects.get(codename="view_task"))
    viewers.permissions.add(Permission.objects.get(codename="delete_task"))

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert codenames(VIEWERS) == VIEWER_CODENAMES


# --- Logging in ---------------------------------------------------------------------------------


def log_in(username):
    client = Client()
    response = client.post(
        "/admin/login/", {"username": username, "password": PASSWORD, "next": "/admin/"}, follow=True
    )
    return client, response


def test_a_role_is_enough_to_log_into_the_admin(operator, viewer):
    for user in (operator, viewer):
        assert not user.is_staff
        _, response = log_in(user.username)
        assert response.redirect_chain == [("/admin/", 302)], user
        html = response.content.decode()
        assert 'href="/admin/agents/agent/"' in html and 'href="/admin/tasks/task/"' in html
        assert 'href="/admin/auth/user/"' not in html and 'href="/admin/django_celery_beat/' not in html
        assert 'id="dashboard-link"' in html


def test_a_user_with_no_role_and_no_staff_status_cannot_log_in(nobody):
    _, response = log_in(nobody.username)
    assert response.redirect_chain == []
    assert "Please enter the correct username and password for a staff account" in response.content.decode()


def test_a_staff_user_with_no_role_logs_in_to_see_nothing(staff_without_role, alice):
    client, response = log_in(staff_without_role.username)
    html = response.content.decode()
    assert response.redirect_chain == [("/admin/", 302)]
    assert "have permission to view or edit anything" in html
    assert 'id="dashboard-link"' not in html
    assert client.get(AGENTS).status_code == 403
    assert client.get(f"{AGENTS}{alice.pk}/change/").status_code == 403
    assert client.get(TASKS).status_code == 403


# --- Operators act on agents --------------------------------------------------------------------


def test_an_operator_drains_an_agent_with_the_changelist_action(operator, alice):
    response = act(logged_in(operator), AGENTS, "drain", alice)

    assert said(response) == [("success", "Drained 1 agent(s).")]
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.DRAINING
    change = AgentStatusChange.objects.filter(agent=alice).latest("created_at")
    assert (change.old_status, change.new_status, change.reason) == (
        "online",
        "draining",
        "drained by olivia-operator in the admin",
    )


def test_an_operator_resumes_marks_offline_and_resets_from_the_change_page(operator, alice):
    client = logged_in(operator)
    page = client.get(f"{AGENTS}{alice.pk}/change/").content.decode()
    assert f'action="{AGENTS}{alice.pk}/verb/drain/"' in page and "Mark offline" in page
    assert "/verb/resume/" not in page and "/verb/reset_circuit/" not in page  # not for an online agent

    press(client, AGENTS, alice, "drain")
    page = client.get(f"{AGENTS}{alice.pk}/change/").content.decode()
    assert "/verb/resume/" in page and "/verb/drain/" not in page
    assert said(press(client, AGENTS, alice, "resume")) == [("success", "Resumed 1 agent(s).")]
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE

    response = press(client, AGENTS, alice, "mark_offline")
    assert response.redirect_chain[-1] == (f"{AGENTS}{alice.pk}/change/", 302)
    assert said(response) == [("success", "Marked 1 agent(s) offline.")]
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.OFFLINE

    Agent.objects.filter(pk=alice.pk).update(circuit_state=CircuitState.OPEN, consecutive_failures=5)
    assert "/verb/reset_circuit/" in client.get(f"{AGENTS}{alice.pk}/change/").content.decode()
    assert said(press(client, AGENTS, alice, "reset_circuit")) == [
        ("success", "Reset the circuit of 1 agent(s).")
    ]
    alice.refresh_from_db()
    assert (alice.circuit_state, alice.consecutive_failures) == (CircuitState.CLOSED, 0)
    reasons = list(AgentStatusChange.objects.filter(agent=alice).values_list("reason", flat=True))
    assert {
        "resumed by olivia-operator in the admin",
        "marked offline by olivia-operator in the admin",
    } <= set(reasons)


def test_what_an_agents_state_does_not_allow_is_a_warning_naming_it(operator, alice):
    client = logged_in(operator)
    bob = make_agent("bob")
    act(client, AGENTS, "drain", bob)

    assert said(act(client, AGENTS, "drain", bob)) == [("warning", "Not changed: bob (already draining).")]
    assert said(act(client, AGENTS, "resume", alice, bob)) == [
        ("success", "Resumed 1 agent(s)."),
        ("warning", "Not changed: alice (not draining: online)."),
    ]
    assert said(press(client, AGENTS, alice, "reset_circuit")) == [
        ("warning", "Not changed: alice (circuit already closed).")
    ]
    act(client, AGENTS, "mark_offline", alice)
    assert said(act(client, AGENTS, "mark_offline", alice)) == [
        ("warning", "Not changed: alice (already offline).")
    ]
    # An offline agent may still be drained: it says what that means.
    assert said(press(client, AGENTS, alice, "drain")) == [
        ("success", "Drained 1 agent(s)."),
        ("info", "alice is offline: it comes back draining"),
    ]


def test_unregistering_an_agent_in_the_admin_hands_its_work_back(operator, alice):
    running = make_task("running", agent=alice)
    client = logged_in(operator)
    assert client.get(f"{AGENTS}{alice.pk}/delete/").status_code == 200

    response = client.post(f"{AGENTS}{alice.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert not Agent.objects.filter(pk=alice.pk).exists()
    running.refresh_from_db()
    assert (running.status, running.assigned_agent_id) == (TaskStatus.PENDING, None)


# --- Operators act on tasks ---------------------------------------------------------------------


def test_an_operator_cancels_a_task_from_its_page_and_retries_it_with_the_action(operator, alice):
    task = make_task("running", agent=alice)
    client = logged_in(operator)
    page = client.get(f"{TASKS}{task.pk}/change/").content.decode()
    assert "/verb/cancel_tasks/" in page and "/verb/retry_tasks/" not in page
    assert 'name="_save"' not in page  # a task changes through its verbs only

    assert said(press(client, TASKS, task, "cancel_tasks")) == [("success", "Cancelled 1 task(s).")]
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCELLED
    assert (
        TaskEvent.objects.get(task=task, kind="cancelled").reason
        == "cancelled by olivia-operator in the admin"
    )

    assert said(act(client, TASKS, "retry_tasks", task)) == [("success", "Retried 1 task(s).")]
    assert Task.objects.get(pk=task.pk).status == TaskStatus.PENDING


def test_a_verb_the_tasks_state_forbids_is_a_warning_not_an_error(operator):
    done = make_task("completed")
    client = logged_in(operator)

    response = press(client, TASKS, done, "cancel_tasks")

    assert response.status_code == 200
    assert said(response) == [
        (
            "warning",
            f"Not changed: {done.pk} (Task is already completed; only pending, assigned or running tasks "
            "can be cancelled.).",
        )
    ]
    [(level, text)] = said(press(client, TASKS, make_task("pending"), "retry_tasks"))
    assert level == "warning" and "only failed or cancelled tasks can be retried" in text
    assert Task.objects.get(pk=done.pk).status == TaskStatus.COMPLETED


def test_verbs_answer_bad_requests_clearly(operator, alice):
    client = logged_in(operator)
    assert client.get(f"{AGENTS}{alice.pk}/verb/drain/").status_code == 405  # never a GET
    assert client.post(f"{AGENTS}{alice.pk}/verb/explode/").status_code == 404
    gone = client.post(f"{TASKS}00000000-0000-0000-0000-000000000000/verb/cancel_tasks/", follow=True)
    assert gone.status_code == 200 and "doesn’t exist" in said(gone)[0][1]
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE


def test_verbs_need_the_csrf_token(operator, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(f"{AGENTS}{alice.pk}/verb/drain/").status_code == 403
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE


# --- Viewers look ---------------------------------------------------------------------------------


def test_a_viewer_sees_agents_and_tasks_without_actions_or_buttons(viewer, alice):
    task = make_task("running", agent=alice)
    client = logged_in(viewer)
    for url in (AGENTS, TASKS):
        page = client.get(url)
        assert page.status_code == 200
        assert 'name="action"' not in page.content.decode(), url
    for url in (f"{AGENTS}{alice.pk}/change/", f"{TASKS}{task.pk}/change/"):
        page = client.get(url).content.decode()
        assert "/verb/" not in page and 'name="_save"' not in page, url
    assert client.get(f"{AGENTS}{alice.pk}/delete/").status_code == 403


def test_a_viewers_posts_change_nothing(viewer, alice):
    task = make_task("running", agent=alice)
    client = logged_in(viewer)

    response = act(client, AGENTS, "drain", alice)  # a viewer's changelist has no actions to run
    assert response.status_code == 200 and said(response) == []
    assert client.post(f"{AGENTS}{alice.pk}/verb/drain/").status_code == 403
    assert client.post(f"{TASKS}{task.pk}/verb/cancel_tasks/").status_code == 403
    assert client.post(f"{AGENTS}{alice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"{AGENTS}{alice.pk}/change/", {"name": "renamed"}).status_code == 403

    assert Agent.objects.get(pk=alice.pk).name == "alice"
    assert Agent.objects.get(pk=alice.pk).status == AgentStatus.ONLINE
    assert Task.objects.get(pk=task.pk).status == TaskStatus.RUNNING
    assert not AgentStatusChange.objects.filter(reason__contains="in the admin").exists()


# --- Credentials never show -----------------------------------------------------------------------


def test_no_admin_page_of_any_role_shows_an_agents_credentials(operator, viewer, superuser, alice):
    make_task("running", agent=alice)
    stored = Agent.objects.get(pk=alice.pk)
    for user in (operator, viewer, superuser):
        client = logged_in(user)
        for url in (
            AGENTS,
            f"{AGENTS}{alice.pk}/change/",
            f"{AGENTS}{alice.pk}/history/",
            f"{AGENTS}{alice.pk}/delete/",
            TASKS,
            "/dashboard/api/summary",
        ):
            response = client.get(url)
            if response.status_code == 403:
                continue
            html = response.content.decode()
            for secret in (alice.token, stored.token_hash, stored.signing_secret):
                assert secret not in html, (user.username, url)


# --- The dashboard and its live streams, per role -------------------------------------------------


def test_operators_and_viewers_use_the_dashboard_and_only_operators_get_its_buttons(operator, viewer):
    for user, can_operate in ((operator, "true"), (viewer, "false")):
        client = logged_in(user)
        page = client.get("/dashboard/")
        assert page.status_code == 200
        assert f'data-can-operate="{can_operate}"' in page.content.decode()
        assert client.get("/dashboard/api/summary").status_code == 200


def test_a_staff_user_without_a_role_gets_no_dashboard(staff_without_role):
    client = logged_in(staff_without_role)
    assert client.get("/dashboard/").status_code == 403
    assert client.get("/dashboard/api/summary").status_code == 403


def test_a_superuser_does_everything(superuser, alice):
    client = logged_in(superuser)
    assert 'href="/admin/auth/user/"' in client.get("/admin/").content.decode()
    assert said(act(client, AGENTS, "drain", alice)) == [("success", "Drained 1 agent(s).")]
    assert 'data-can-operate="true"' in client.get("/dashboard/").content.decode()


def _session_cookies():
    from tests.monitoring.conftest import make_watcher, session_cookie

    return {
        "operator": session_cookie(make_watcher("olivia-operator", group=OPERATORS)),
        "viewer": session_cookie(make_watcher("victor-viewer", group=VIEWERS)),
        "staff without a role": session_cookie(make_watcher("stan-staff", staff=True)),
    }


async def _first_frame(path, cookie):
    from tests.monitoring.conftest import communicator

    comm = communicator(path, cookie=cookie)
    connected, _ = await comm.connect()
    assert connected
    output = await comm.receive_output(timeout=5)
    await comm.disconnect()
    if output["type"] == "websocket.close":
        return output.get("code")
    return "snapshot" if '"snapshot"' in output["text"] else output["text"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_live_streams_are_for_roles_not_for_staff_status():
    from asgiref.sync import sync_to_async

    cookies = await sync_to_async(_session_cookies)()
    seen = {
        (who, path): await _first_frame(path, cookie)
        for who, cookie in cookies.items()
        for path in ("/ws/tasks/", "/ws/agents/")
    }
    assert seen == {
        ("operator", "/ws/tasks/"): "snapshot",
        ("operator", "/ws/agents/"): "snapshot",
        ("viewer", "/ws/tasks/"): "snapshot",
        ("viewer", "/ws/agents/"): "snapshot",
        ("staff without a role", "/ws/tasks/"): 4403,
        ("staff without a role", "/ws/agents/"): 4403,
    }

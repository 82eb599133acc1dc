"""Workflows in the admin, per role, through the real admin with Django's test client: operators see
definitions, runs and their step graph and act (cancel, pause, resume, retry from a failed step,
approve or reject an approval step) through the same services as the API; viewers see the same pages
without the verbs and are refused if they POST one; a staff user in no group sees nothing.

Approval steps need no agent, so these runs stand still exactly where the test wants them."""

import re
from html import unescape

import pytest
from django.test import Client

from tests.actors import make_user
from workflows import runs
from workflows.models import StepRun, WorkflowEvent, WorkflowRun

from .helpers import run_settles, start, step_settles, steps

pytestmark = pytest.mark.django_db

RUNS = "/admin/workflows/workflowrun/"
STEPS = "/admin/workflows/steprun/"
DEFINITIONS = "/admin/workflows/workflowdefinition/"

TWO_GATES = [
    {"id": "gate", "type": "approval", "timeout_seconds": 600},
    {"id": "after", "type": "approval", "depends_on": ["gate"], "timeout_seconds": 600},
]


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def said(response):
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def press(client, changelist, pk, verb):
    return client.post(f"{changelist}{pk}/verb/{verb}/", follow=True)


def act(client, changelist, action, *pks):
    return client.post(
        changelist, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )


@pytest.fixture
def gated_run(operator_client, define):
    define("gated", TWO_GATES)
    run_id = start(operator_client, "gated", input={"who": "admin"})
    step_settles(run_id, "gate", "awaiting_approval")
    return run_id


def gate(run_id, step_id="gate"):
    return StepRun.objects.get(run_id=run_id, step_id=step_id, map_index=-1)


def test_an_operator_sees_the_run_with_its_step_graph_and_the_verbs_it_allows(operator, gated_run):
    client = logged_in(operator)
    html = client.get(f"{RUNS}{gated_run}/change/").content.decode()
    # The graph: one node per step, coloured by status, an edge per dependency, linked to each step.
    assert html.count('class="wf-step"') == 2
    assert 'data-step="gate" data-status="awaiting_approval"' in html
    assert 'data-step="after" data-status="waiting"' in html
    assert html.count("<line ") == 1
    assert f'href="{STEPS}{gate(gated_run).pk}/change/"' in html
    # The verbs a running run allows, and not the one it does not.
    assert "/verb/cancel_runs/" in html and "/verb/pause_runs/" in html
    assert "/verb/resume_runs/" not in html
    assert 'name="_save"' not in html
    step_html = client.get(f"{STEPS}{gate(gated_run).pk}/change/").content.decode()
    assert "/verb/approve_steps/" in step_html and "/verb/reject_steps/" in step_html
    assert "/verb/retry_from_steps/" not in step_html


def test_an_operator_pauses_resumes_and_approves_through_the_services(operator, gated_run):
    client = logged_in(operator)
    response = press(client, RUNS, gated_run, "pause_runs")
    assert ("success", "Paused 1 run(s).") in said(response)
    assert WorkflowRun.objects.get(run_id=gated_run).status == "paused"
    # The state forbids a second pause: a warning naming the run and why, nothing changed.
    response = press(client, RUNS, gated_run, "pause_runs")
    assert said(response) == [
        ("warning", f"Not changed: {gated_run} (The run is paused; only running runs can be paused.).")
    ]
    press(client, RUNS, gated_run, "resume_runs")
    assert WorkflowRun.objects.get(run_id=gated_run).status == "running"

    response = press(client, STEPS, gate(gated_run).pk, "approve_steps")
    assert ("success", "Approved 1 step(s).") in said(response)
    approved = gate(gated_run)
    assert approved.status == "completed" and approved.decided_by == operator.username
    step_settles(gated_run, "after", "awaiting_approval")
    # Every change left its event row, as through the API.
    reasons = list(
        WorkflowEvent.objects.filter(run_id=gated_run, step_id="").values_list("reason", flat=True)
    )
    assert "paused by an operator" in reasons and "resumed by an operator" in reasons


def test_an_operator_rejects_then_retries_from_the_failed_step(operator, gated_run):
    client = logged_in(operator)
    act(client, STEPS, "reject_steps", gate(gated_run).pk)
    run_settles(gated_run, "failed")
    assert steps(gated_run) == {"gate": "failed", "after": "upstream_failed"}
    html = client.get(f"{STEPS}{gate(gated_run).pk}/change/").content.decode()
    assert "/verb/retry_from_steps/" in html and "/verb/approve_steps/" not in html

    response = press(client, STEPS, gate(gated_run).pk, "retry_from_steps")
    assert ("success", "Retried from 1 step(s).") in said(response)
    run_settles(gated_run, "running")
    assert steps(gated_run) == {"gate": "awaiting_approval", "after": "waiting"}


def test_an_operator_cancels_runs_from_the_changelist(operator, gated_run, operator_client):
    other = start(operator_client, "gated")
    step_settles(other, "gate", "awaiting_approval")
    client = logged_in(operator)
    response = act(client, RUNS, "cancel_runs", gated_run, other)
    assert ("success", "Cancelled 2 run(s).") in said(response)
    for run_id in (gated_run, other):
        run_settles(run_id, "cancelled")
    response = act(client, RUNS, "cancel_runs", gated_run)
    assert said(response)[-1][0] == "warning"


def test_a_viewer_sees_the_pages_without_verbs_and_cannot_post_one(viewer, gated_run):
    client = logged_in(viewer)
    run_page = client.get(f"{RUNS}{gated_run}/change/")
    assert run_page.status_code == 200
    html = run_page.content.decode()
    assert 'data-step="gate" data-status="awaiting_approval"' in html
    assert "/verb/" not in html
    step_page = client.get(f"{STEPS}{gate(gated_run).pk}/change/").content.decode()
    assert "/verb/" not in step_page
    changelist = client.get(RUNS).content.decode()
    assert "cancel_runs" not in changelist
    definition = WorkflowRun.objects.get(run_id=gated_run).definition
    spec_page = client.get(f"{DEFINITIONS}{definition.pk}/change/").content.decode()
    assert "&quot;approval&quot;" in spec_page and ">v1</a>" in spec_page
    assert client.post(f"{RUNS}{gated_run}/verb/cancel_runs/").status_code == 403
    assert client.post(f"{STEPS}{gate(gated_run).pk}/verb/approve_steps/").status_code == 403
    act(client, RUNS, "cancel_runs", gated_run)
    assert WorkflowRun.objects.get(run_id=gated_run).status == "running"
    assert gate(gated_run).status == "awaiting_approval"


def test_a_staff_user_in_no_group_sees_no_workflows(gated_run):
    staff = make_user("stan-staff")
    staff.is_staff = True
    staff.save()
    client = logged_in(staff)
    for url in (RUNS, STEPS, DEFINITIONS, f"{RUNS}{gated_run}/change/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"{RUNS}{gated_run}/verb/cancel_runs/").status_code == 403
    assert WorkflowRun.objects.get(run_id=gated_run).status == "running"


def test_a_new_version_is_listed_beside_the_first(operator, operator_client, define):
    define("versioned", TWO_GATES)
    define("versioned", TWO_GATES[:1])
    client = logged_in(operator)
    first = WorkflowRun.definition.field.related_model.objects.get(name="versioned", version=1)
    html = client.get(f"{DEFINITIONS}{first.pk}/change/").content.decode()
    assert ">v1</a>" in html and ">v2</a>" in html
    assert html.count('class="wf-step"') == 2


def test_a_run_through_a_real_agent_shows_each_steps_agent_timing_and_output(
    worker, operator, operator_client, fake_agents, register, define
):
    def answer(call):
        if call.body["type"] == "fail":
            return 400, {"error": "cannot do that"}
        return 200, {"result": {"said": call.body["type"]}}

    fake = fake_agents(answer)
    agent = register(fake, capabilities=["speak", "fail"], name="Speaker")
    define(
        "spoken",
        [{"id": "speak", "task_type": "speak"}, {"id": "oops", "task_type": "fail", "max_retries": 0}],
    )
    run_id = start(operator_client, "spoken")
    run_settles(run_id, "failed")
    client = logged_in(operator)
    html = client.get(f"{RUNS}{run_id}/change/").content.decode()
    assert 'data-step="speak" data-status="completed"' in html
    assert 'data-step="oops" data-status="failed"' in html
    assert str(agent.agent_id) in html  # the step rows name the agent of each step's task
    assert "&quot;said&quot;: &quot;speak&quot;" in html  # the output, pretty-printed
    speak = gate(run_id, "speak")
    assert speak.started_at and speak.finished_at
    step_html = client.get(f"{STEPS}{speak.pk}/change/").content.decode()
    assert f'href="/admin/tasks/task/{speak.task_id}/change/"' in step_html
    # A failed step offers the retry from there; retrying it starts a new attempt through a real worker.
    oops = gate(run_id, "oops")
    assert "/verb/retry_from_steps/" in client.get(f"{STEPS}{oops.pk}/change/").content.decode()
    press(client, STEPS, oops.pk, "retry_from_steps")
    step_settles(run_id, "oops", "failed", "completed")
    assert gate(run_id, "oops").attempt == oops.attempt + 1


def test_a_map_steps_page_counts_its_items_by_status_and_links_to_them(operator, define):
    define(
        "fan",
        [
            {
                "id": "fan",
                "type": "map",
                "task_type": "t",
                "over": {"$path": "$.input.n"},
                "max_concurrency": 2,
            }
        ],
    )
    run, _ = runs.start_run(workflow="fan", input={"n": [1, 2, 3]})
    client = logged_in(operator)
    html = client.get(f"{STEPS}{gate(run.run_id, 'fan').pk}/change/").content.decode()
    links = {
        text: unescape(href)
        for href, text in re.findall(r'<a href="([^"]*steprun/\?[^"]+)">([^<]+)</a>', html)
    }
    assert sorted(links) == ["1 waiting", "2 running"]
    listed = client.get(links["1 waiting"])
    assert [str(step) for step in listed.context["cl"].result_list] == ["fan[2] (waiting)"]

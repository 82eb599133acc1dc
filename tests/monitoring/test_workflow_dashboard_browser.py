"""The dashboard's workflow runs in a real headless Chromium, against the live stack (web server,
Celery worker, loopback agent): a run started through the API appears with its step graph, and its
steps turn completed on the page as the agent answers, without a reload. Operators act on a run from
its card (approve, pause, resume, cancel, retry from a failed step) and the stream brings the new
state; viewers get no buttons."""

import pytest
from playwright.sync_api import expect

from tests.actors import PASSWORD

from .conftest import ARTIFACTS, make_watcher
from .test_dashboard_browser import actors, open_dashboard, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_draws_a_run_and_follows_its_steps_to_completion(live_stack, actors, page):  # noqa: F811
    capability, operator_token = actors
    open_dashboard(page, live_stack)
    expect(page.locator("#workflow-runs")).to_contain_text("No workflow run yet")

    steps = [
        {"id": "plan", "task_type": "plan", "required_capabilities": [capability]},
        {"id": "left", "task_type": "work", "required_capabilities": [capability], "depends_on": ["plan"]},
        {"id": "right", "task_type": "work", "required_capabilities": [capability], "depends_on": ["plan"]},
        {
            "id": "join",
            "task_type": "sum",
            "required_capabilities": [capability],
            "depends_on": ["left", "right"],
        },
    ]
    with live_stack.http(operator_token) as http:
        defined = http.post("/api/v1/workflows", json={"name": "browser-chain", "spec": {"steps": steps}})
        assert defined.status_code == 201, defined.text
        started = http.post("/api/v1/workflow-runs", json={"workflow": "browser-chain", "input": {}})
        assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]

    card = page.locator(f'.wf-run[data-run-id="{run_id}"]')
    expect(card).to_be_visible(timeout=15000)
    expect(card.locator(".wf-step")).to_have_count(4)
    expect(card.locator("line")).to_have_count(4)  # plan->left, plan->right, left->join, right->join
    for step_id in ("plan", "left", "right", "join"):
        expect(card.locator(f'.wf-step[data-step="{step_id}"]')).to_have_attribute(
            "data-status", "completed", timeout=30000
        )
    expect(card).to_have_attribute("data-status", "completed", timeout=10000)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-workflows.png"), full_page=True)


def gate_then_publish(live_stack, operator_token, capability, name):
    """A run waiting on its approval step (no agent needed), then a task step."""
    steps = [
        {"id": "review", "type": "approval", "timeout_seconds": 600},
        {
            "id": "publish",
            "task_type": "publish",
            "required_capabilities": [capability],
            "depends_on": ["review"],
        },
    ]
    with live_stack.http(operator_token) as http:
        assert (
            http.post("/api/v1/workflows", json={"name": name, "spec": {"steps": steps}}).status_code == 201
        )
        return http.post("/api/v1/workflow-runs", json={"workflow": name}).json()["run_id"]


def test_an_operator_approves_a_step_from_the_dashboard(live_stack, actors, page):  # noqa: F811
    capability, operator_token = actors
    run_id = gate_then_publish(live_stack, operator_token, capability, "browser-gate")
    open_dashboard(page, live_stack)
    card = page.locator(f'.wf-run[data-run-id="{run_id}"]')
    expect(card.locator('.wf-step[data-step="review"]')).to_have_attribute("data-status", "awaiting_approval")
    card.locator('.wf-decision[data-step="review"]').get_by_role("button", name="Approve").click()
    expect(card.locator('.wf-step[data-step="review"]')).to_have_attribute(
        "data-status", "completed", timeout=15000
    )
    expect(card.locator('.wf-step[data-step="publish"]')).to_have_attribute(
        "data-status", "completed", timeout=30000
    )
    expect(card.locator(".wf-decision")).to_have_count(0)


@pytest.fixture
def viewer_and_gate(live_stack, actors):  # noqa: F811
    """Made before the browser starts (the ORM may not run in Playwright's loop)."""
    make_watcher("victor-viewer", group="viewers")
    _, operator_token = actors
    with live_stack.http(operator_token) as http:
        spec = {"steps": [{"id": "review", "type": "approval", "timeout_seconds": 600}]}
        assert http.post("/api/v1/workflows", json={"name": "viewer-gate", "spec": spec}).status_code == 201
        return http.post("/api/v1/workflow-runs", json={"workflow": "viewer-gate"}).json()["run_id"]


def test_a_viewer_sees_the_graph_without_any_buttons(live_stack, viewer_and_gate, page):  # noqa: F811
    # An operator would see Pause, Cancel, Approve and Reject on this card.
    page.goto(f"{live_stack.base_url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "victor-viewer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/dashboard/")
    card = page.locator(f'.wf-run[data-run-id="{viewer_and_gate}"]')
    expect(card.locator('.wf-step[data-step="review"]')).to_have_attribute(
        "data-status", "awaiting_approval", timeout=15000
    )
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(card.locator("button")).to_have_count(0)


def test_an_operator_pauses_resumes_and_cancels_a_run_from_the_dashboard(live_stack, actors, page):  # noqa: F811
    capability, operator_token = actors
    run_id = gate_then_publish(live_stack, operator_token, capability, "browser-verbs")
    open_dashboard(page, live_stack)
    card = page.locator(f'.wf-run[data-run-id="{run_id}"]')
    actions = card.locator(".wf-actions")
    expect(card).to_have_attribute("data-status", "running", timeout=15000)
    expect(actions.get_by_role("button")).to_have_text(["Pause", "Cancel"])

    # The button is disabled while its request is in flight: looked at as the request goes out.
    pause = actions.get_by_role("button", name="Pause")
    disabled_in_flight = []

    def look_then_send(route):
        disabled_in_flight.append(pause.is_disabled())
        route.continue_()

    page.route(f"**/api/v1/workflow-runs/{run_id}/pause", look_then_send)
    pause.click()
    expect(card).to_have_attribute("data-status", "paused", timeout=15000)
    assert disabled_in_flight == [True]
    expect(page.locator("#dash-message")).to_have_text(f"Paused run {run_id[:8]}.")
    expect(actions.get_by_role("button")).to_have_text(["Resume", "Cancel"])

    actions.get_by_role("button", name="Resume").click()
    expect(card).to_have_attribute("data-status", "running", timeout=15000)
    expect(actions.get_by_role("button")).to_have_text(["Pause", "Cancel"])

    # A refusal is shown as the approvals' are, and the button is usable again.
    cancel_url = f"**/api/v1/workflow-runs/{run_id}/cancel"
    page.route(cancel_url, lambda route: route.fulfill(status=409, json={"detail": "Not now (test)."}))
    actions.get_by_role("button", name="Cancel").click()
    expect(page.locator("#dash-message.error")).to_have_text("Not now (test).")
    expect(actions.get_by_role("button", name="Cancel")).to_be_enabled()
    page.unroute(cancel_url)

    actions.get_by_role("button", name="Cancel").click()
    expect(card).to_have_attribute("data-status", "cancelled", timeout=15000)
    expect(card.locator('.wf-step[data-step="review"]')).to_have_attribute("data-status", "cancelled")
    expect(card.locator("button")).to_have_count(0)  # a cancelled run allows nothing
    with live_stack.http(operator_token) as http:
        assert http.get(f"/api/v1/workflow-runs/{run_id}").json()["status"] == "cancelled"


def test_an_operator_retries_a_failed_run_from_its_failed_step(live_stack, actors, page):  # noqa: F811
    capability, operator_token = actors
    run_id = gate_then_publish(live_stack, operator_token, capability, "browser-retry")
    with live_stack.http(operator_token) as http:
        assert http.post(f"/api/v1/workflow-runs/{run_id}/steps/review/reject", json={}).status_code == 200
    open_dashboard(page, live_stack)
    card = page.locator(f'.wf-run[data-run-id="{run_id}"]')
    expect(card).to_have_attribute("data-status", "failed", timeout=15000)
    # Only the failed step offers a retry (publish never ran: it is retried with the step above it).
    expect(card.locator("button")).to_have_count(1)
    card.locator('.wf-decision[data-step="review"]').get_by_role("button", name="Retry").click()
    expect(page.locator("#dash-message")).to_have_text("Retrying from review.")
    expect(card).to_have_attribute("data-status", "running", timeout=15000)
    expect(card.locator('.wf-step[data-step="review"]')).to_have_attribute("data-status", "awaiting_approval")
    expect(card.locator('.wf-decision[data-step="review"]').get_by_role("button")).to_have_text(
        ["Approve", "Reject"]
    )
    expect(card.locator(".wf-actions").get_by_role("button")).to_have_text(["Pause", "Cancel"])

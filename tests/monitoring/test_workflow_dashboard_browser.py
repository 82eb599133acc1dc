"""The dashboard's workflow runs in a real headless Chromium, against the live stack (web server,
Celery worker, loopback agent): a run started through the API appears with its step graph, and its
steps turn completed on the page as the agent answers, without a reload."""

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


def test_an_operator_approves_a_step_from_the_dashboard(live_stack, actors, page):  # noqa: F811
    capability, operator_token = actors
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
            http.post(
                "/api/v1/workflows", json={"name": "browser-gate", "spec": {"steps": steps}}
            ).status_code
            == 201
        )
        started = http.post("/api/v1/workflow-runs", json={"workflow": "browser-gate", "input": {}})
    run_id = started.json()["run_id"]
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


def test_a_viewer_sees_the_graph_without_decision_buttons(live_stack, viewer_and_gate, page):  # noqa: F811
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

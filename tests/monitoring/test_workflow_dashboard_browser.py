"""The dashboard's workflow runs in a real headless Chromium, against the live stack (web server,
Celery worker, loopback agent): a run started through the API appears with its step graph, and its
steps turn completed on the page as the agent answers, without a reload."""

import pytest
from playwright.sync_api import expect

from .conftest import ARTIFACTS
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

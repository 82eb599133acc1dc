"""The dashboard in a real headless Chromium, against the live stack: it follows tasks without a reload."""

import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from orchestrator_project.accounts.models import ApiToken
from tests.actors import PASSWORD

from .conftest import ARTIFACTS, make_agent, make_watcher

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def actors(live_stack):
    """Made before the browser starts: Playwright's sync API runs an event loop, where the ORM may not."""
    capability = f"browser-{uuid.uuid4().hex[:8]}"
    make_agent("Summarizer", capabilities=[capability], endpoint=live_stack.agent_url, max_concurrency=4)
    make_watcher("sam-superuser", superuser=True)
    operator_token = ApiToken.issue(user=make_watcher("olivia-operator", group="operators"))[1]
    return capability, operator_token


@pytest.fixture
def page(actors):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        browser.close()


def test_the_dashboard_follows_a_task_to_completion_and_cancels_another(live_stack, actors, page):
    capability, operator_token = actors

    page.goto(f"{live_stack.base_url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "sam-superuser")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/dashboard/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15000)
    expect(page.locator("#agents-table tr[data-status=online]")).to_contain_text("Summarizer")

    with live_stack.http(operator_token) as http:
        done = http.post(
            "/api/v1/tasks",
            json={"type": "summarize", "input_data": {"text": "hi"}, "required_capabilities": [capability]},
        )
        waiting = http.post(
            "/api/v1/tasks", json={"type": "translate", "required_capabilities": ["nobody-has-it"]}
        )
    assert done.status_code == waiting.status_code == 201
    done_row = page.locator(f'#tasks-table tr[data-task-id="{done.json()["task_id"]}"]')
    expect(done_row).to_have_attribute("data-status", "completed", timeout=30000)
    expect(page.locator(".task-completed .value")).to_have_text("1", timeout=10000)

    # The Cancel button calls the API with the session and the CSRF token; the socket brings the result.
    waiting_row = page.locator(f'#tasks-table tr[data-task-id="{waiting.json()["task_id"]}"]')
    expect(waiting_row).to_have_attribute("data-status", "pending", timeout=10000)
    waiting_row.get_by_role("button", name="Cancel").click()
    expect(waiting_row).to_have_attribute("data-status", "cancelled", timeout=15000)
    expect(page.locator("#queue-table")).to_contain_text("No task is waiting", timeout=10000)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000

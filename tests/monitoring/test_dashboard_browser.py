"""The dashboard in a real headless Chromium, against the live stack: it follows tasks without a reload,
and its count tiles agree with its rows at every moment."""

import json
import re
import threading
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from orchestrator_project.accounts.models import ApiToken
from tasks.models import Task
from tests.actors import PASSWORD
from tests.loopback_server import serve_in_background

from .conftest import ARTIFACTS, FakeAgent, make_agent, make_watcher

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


def open_dashboard(page, live_stack):
    page.goto(f"{live_stack.base_url}/admin/login/?next=/dashboard/")
    page.fill("#id_username", "sam-superuser")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/dashboard/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=15000)


def test_the_dashboard_follows_a_task_to_completion_and_cancels_another(live_stack, actors, page):
    capability, operator_token = actors

    open_dashboard(page, live_stack)
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
    # The completed call taught routing the agent's latency on that capability; the row shows it.
    learned = page.locator("#agents-table tr[data-status=online] td.learned")
    expect(learned).to_contain_text(f"{capability}: ", timeout=15000)
    expect(learned).to_contain_text("ms, 100%")

    # The Cancel button calls the API with the session and the CSRF token; the socket brings the result.
    waiting_row = page.locator(f'#tasks-table tr[data-task-id="{waiting.json()["task_id"]}"]')
    expect(waiting_row).to_have_attribute("data-status", "pending", timeout=10000)
    waiting_row.get_by_role("button", name="Cancel").click()
    expect(waiting_row).to_have_attribute("data-status", "cancelled", timeout=15000)
    expect(page.locator("#queue-table")).to_contain_text("No task is waiting", timeout=10000)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


# --- Tiles and rows agree ---------------------------------------------------------------------------

# Runs in the page: after every change of the dashboard's DOM, compare each tile with the rows of its
# status. A MutationObserver sees every state the page was ever in between two scripts, so a tile drawn
# in one step and its row in another (as when the tiles came from a separate request) is caught.
WATCH_TILES_AND_ROWS = """(mode) => {
  const read = (tiles, rows) => {
    const counted = {}, shown = {};
    document.querySelectorAll(tiles + " .counter").forEach((tile) => {
      counted[tile.dataset.status] = Number(tile.querySelector(".value").textContent);
    });
    document.querySelectorAll(rows + " tr[data-status]").forEach((row) => {
      shown[row.dataset.status] = (shown[row.dataset.status] || 0) + 1;
    });
    return { counted, shown };
  };
  const disagree = ({ counted, shown }) => Object.keys({ ...counted, ...shown }).some((status) => {
    const tile = counted[status] || 0, rows = shown[status] || 0;
    return mode === "equal" ? tile !== rows : tile < rows;
  });
  window.seen = [];
  window.mismatches = [];
  const check = () => {
    const state = {
      tasks: read("#task-counters", "#tasks-table"),
      agents: read("#agent-counters", "#agents-table"),
    };
    const text = JSON.stringify(state);
    if (window.seen[window.seen.length - 1] !== text) window.seen.push(text);
    if (disagree(state.tasks) || disagree(state.agents)) window.mismatches.push(text);
  };
  new MutationObserver(check).observe(document.getElementById("dashboard"),
                                      { subtree: true, childList: true, characterData: true });
  check();
}"""


@pytest.fixture
def gated_agent(live_stack):
    """An agent whose calls wait for `gate.set()`; (its capability, the gate)."""
    gate = threading.Event()
    # The fake agent, holding every call until the test opens the gate: the task stays running meanwhile.
    server = serve_in_background(type("GatedAgent", (FakeAgent,), {"gate": gate}))
    capability = f"gated-{uuid.uuid4().hex[:8]}"
    make_agent(
        "Gatekeeper", capabilities=[capability], endpoint=f"http://127.0.0.1:{server.server_address[1]}"
    )
    yield capability, gate
    gate.set()
    server.shutdown()


def tile(page, status):
    return page.locator(f"#task-counters .task-{status} .value")


def row(page, task_id):
    return page.locator(f'#tasks-table tr[data-task-id="{task_id}"]')


def moments(page):
    return [json.loads(text)["tasks"] for text in page.evaluate("window.seen")]


def test_tiles_and_rows_agree_at_every_moment_of_a_tasks_life(live_stack, actors, gated_agent, page):
    _, operator_token = actors
    capability, gate = gated_agent
    open_dashboard(page, live_stack)
    expect(page.locator("#agents-table tr[data-status=online]")).to_have_count(2)
    page.evaluate(WATCH_TILES_AND_ROWS, "equal")

    with live_stack.http(operator_token) as http:
        held = http.post("/api/v1/tasks", json={"type": "summarize", "required_capabilities": [capability]})
        stuck = http.post("/api/v1/tasks", json={"type": "translate", "required_capabilities": ["nobody"]})
        held_id, stuck_id = held.json()["task_id"], stuck.json()["task_id"]

        # The gated agent holds the first task: it stays running while we look.
        expect(row(page, held_id)).to_have_attribute("data-status", "running", timeout=30000)
        expect(tile(page, "running")).to_have_text("1")
        expect(row(page, stuck_id)).to_have_attribute("data-status", "pending")
        expect(tile(page, "pending")).to_have_text("1")

        gate.set()
        expect(row(page, held_id)).to_have_attribute("data-status", "completed", timeout=30000)
        expect(tile(page, "completed")).to_have_text("1")
        expect(tile(page, "running")).to_have_text("0")

        assert http.delete(f"/api/v1/tasks/{stuck_id}").status_code == 200
        expect(row(page, stuck_id)).to_have_attribute("data-status", "cancelled", timeout=15000)
        assert http.post(f"/api/v1/tasks/{stuck_id}/retry").status_code == 200
        expect(row(page, stuck_id)).to_have_attribute("data-status", "pending", timeout=15000)
        expect(tile(page, "cancelled")).to_have_text("0")

    assert page.evaluate("window.mismatches") == []
    # The watch saw the moments in between, not only the ends: each status the tasks went through.
    seen = moments(page)
    for status in ("pending", "running", "completed", "cancelled"):
        assert any(moment["shown"].get(status) == moment["counted"][status] == 1 for moment in seen), status


@pytest.fixture
def backlog(live_stack):
    """More waiting tasks than a snapshot holds (200 unfinished): the oldest is not on the page."""
    tasks = Task.objects.bulk_create(
        Task(type="translate", required_capabilities=["nobody"]) for _ in range(201)
    )
    return min(tasks, key=lambda task: task.created_at)


def test_a_task_the_page_does_not_hold_still_moves_the_tiles(live_stack, actors, backlog, page):
    """Its earlier status is unknown to the page, so it asks its socket for a fresh snapshot."""
    _, operator_token = actors
    open_dashboard(page, live_stack)
    expect(tile(page, "pending")).to_have_text("201")
    expect(row(page, str(backlog.task_id))).to_have_count(0)
    page.evaluate(WATCH_TILES_AND_ROWS, "at least")

    with live_stack.http(operator_token) as http:
        assert http.delete(f"/api/v1/tasks/{backlog.task_id}").status_code == 200

    expect(tile(page, "cancelled")).to_have_text("1", timeout=15000)
    expect(tile(page, "pending")).to_have_text("200")
    assert page.evaluate("window.mismatches") == []


# --- A task that waits for its next attempt says why -----------------------------------------------------


class RefusingAgent(FakeAgent):
    """Answers every call 503 with Retry-After: RETRY_AFTER s: a prompt failover on the first attempt
    (due at once for another agent; this one gets the task back after RETRY_AFTER s), then a backoff."""

    retry_after = 3

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(503)
        self.send_header("retry-after", str(self.retry_after))
        self.send_header("content-length", "0")
        self.end_headers()


@pytest.fixture
def refusing_agent(live_stack):
    server = serve_in_background(RefusingAgent)
    capability = f"refused-{uuid.uuid4().hex[:8]}"
    make_agent("Refuser", capabilities=[capability], endpoint=f"http://127.0.0.1:{server.server_address[1]}")
    yield capability
    server.shutdown()


def test_a_refused_task_says_it_fails_over_then_that_it_waits_its_backoff(
    live_stack, actors, refusing_agent, page
):
    _, operator_token = actors
    open_dashboard(page, live_stack)
    with live_stack.http(operator_token) as http:
        created = http.post("/api/v1/tasks", json={"type": "ocr", "required_capabilities": [refusing_agent]})
    assert created.status_code == 201
    task_row = row(page, created.json()["task_id"])
    # First attempt refused: due at once for any other agent (there is none), back to this one in 3 s.
    note = task_row.locator(".retry-note")
    expect(note).to_have_text("failing over", timeout=15000)
    expect(task_row).to_have_attribute("data-status", "pending")
    expect(note).to_have_attribute("title", re.compile(r"may have it back after 3\.0 s$"))
    # Its second attempt, on the same agent, is refused too: no failover now, a backoff of at least 3 s.
    expect(note).to_have_text(re.compile(r"^retry after \d+\.\d s$"), timeout=15000)
    expect(task_row).to_have_attribute("data-status", "pending")
    with live_stack.http(operator_token) as http:
        assert http.delete(f"/api/v1/tasks/{created.json()['task_id']}").status_code == 200
    expect(task_row).to_have_attribute("data-status", "cancelled", timeout=15000)
    expect(note).to_have_count(0)

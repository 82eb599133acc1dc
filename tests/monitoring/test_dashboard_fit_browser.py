"""The dashboard and the admin in a real headless Chromium, against the live stack: what an operator
sees is current and fits. "Last heartbeat" follows heartbeats (which are no events) within a summary; a
long workflow chain fits its card at 1400 px; the task page's events read to the millisecond without a
caption above each row; a workflow run's page shows its steps without captions, its step graph wrapped
within the page at 900 px and each step's label inside its box (the dashboard's too), its buttons clear of
its heading and its step rows within the page at 900 px and 1400 px; and every page names the site's
icon."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from agents.models import Agent
from tasks.models import Task, TaskEvent
from tests.actors import PASSWORD
from tests.workflows.helpers import step_settles

from .conftest import ARTIFACTS, make_agent
from .test_dashboard_browser import actors, open_dashboard, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --- Last heartbeat -----------------------------------------------------------------------------------


@pytest.fixture
def quiet_agent(live_stack):
    """An online agent whose last heartbeat was 90 s ago (its deadline is an hour away): (id, token)."""
    agent, token = make_agent("Pulse")
    Agent.objects.filter(pk=agent.pk).update(last_heartbeat=timezone.now() - timedelta(seconds=90))
    return str(agent.agent_id), token


def test_last_heartbeat_follows_the_agents_heartbeats_without_a_snapshot(
    live_stack,
    actors,  # noqa: F811
    quiet_agent,
    page,  # noqa: F811
):
    agent_id, token = quiet_agent
    open_dashboard(page, live_stack)
    cell = page.locator(f'#agents-table tr[data-agent-id="{agent_id}"] td.ago')
    expect(cell).to_have_text(re.compile(r"^(9\d|1\d\d) s ago$"))

    with live_stack.http(token) as http:
        assert http.post(f"/api/v1/agents/{agent_id}/heartbeat", json={}).status_code == 200
    # Heartbeats are not on the stream, and the page's fresh snapshot is 30 s away: the summary (every
    # 5 s) brings it.
    expect(cell).to_have_text(re.compile(r"^\d s ago$"), timeout=9000)
    expect(page.locator(f'#agents-table tr[data-agent-id="{agent_id}"]')).to_have_attribute(
        "data-status", "online"
    )


# --- A long chain fits its card -------------------------------------------------------------------------


def chain(length):
    """Approval steps one after the other: the run waits on the first, where the test wants it."""
    steps = [{"id": f"step-{n}", "type": "approval", "timeout_seconds": 600} for n in range(1, length + 1)]
    for step, before in zip(steps[1:], steps, strict=False):
        step["depends_on"] = [before["id"]]
    return steps


def start_chains(live_stack, operator_token, *lengths):
    """A run of a chain of each length, waiting on its first step: {length: run id}."""
    started = {}
    with live_stack.http(operator_token) as http:
        for length in lengths:
            name = f"chain-{length}"
            defined = http.post("/api/v1/workflows", json={"name": name, "spec": {"steps": chain(length)}})
            assert defined.status_code == 201, defined.text
            run = http.post("/api/v1/workflow-runs", json={"workflow": name})
            assert run.status_code == 201, run.text
            started[length] = run.json()["run_id"]
    return started


@pytest.fixture
def long_runs(live_stack, actors):  # noqa: F811
    """A 6-step and an 8-step chain, each with a run waiting on its first step: {length: run id}."""
    return start_chains(live_stack, actors[1], 6, 8)


def inside(inner, outer):
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def assert_fits(tab, long_runs):
    runs = tab.locator("#workflow-runs").bounding_box()
    for length, run_id in long_runs.items():
        card = tab.locator(f'.wf-run[data-run-id="{run_id}"]')
        box = card.bounding_box()
        assert inside(box, runs), (length, box, runs)
        # Every step is within the card, nothing is scrolled out of sight, and all is full size.
        for n in range(1, length + 1):
            step = card.locator(f'.wf-step[data-step="step-{n}"] rect').bounding_box()
            assert inside(step, box), (length, n, step, box)
            assert step["width"] >= 150, (length, n, step)  # the drawing's 150, not shrunk
        assert card.evaluate("(node) => node.scrollWidth <= node.clientWidth"), length
        # An edge per dependency, wrapped or not.
        expect(card.locator("line, polyline")).to_have_count(length - 1)


def test_a_six_and_an_eight_step_chain_fit_their_cards_at_1400_px_and_narrower(
    live_stack,
    long_runs,
    page,  # noqa: F811
):
    assert page.viewport_size["width"] == 1400
    open_dashboard(page, live_stack)
    for length, run_id in long_runs.items():
        last = page.locator(f'.wf-run[data-run-id="{run_id}"] .wf-step[data-step="step-{length}"]')
        expect(last).to_have_attribute("data-status", "waiting", timeout=15000)
    assert_fits(page, long_runs)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-long-chains.png"), full_page=True)

    # A narrower window: the graphs are drawn again for it.
    first = page.locator(f'.wf-run[data-run-id="{long_runs[8]}"] .wf-step[data-step="step-1"]')
    drawn = first.element_handle()
    page.set_viewport_size({"width": 900, "height": 1000})
    page.wait_for_function("(node) => !node.isConnected", arg=drawn)
    assert_fits(page, long_runs)


# --- The task page's events -----------------------------------------------------------------------------


@pytest.fixture
def task_with_events(live_stack):
    """A completed task whose events came 123 ms apart."""
    task = Task.objects.create(type="summarize", status="completed", attempts=1)
    at = timezone.now().replace(microsecond=456000)
    for offset, kind in enumerate(("assigned", "sent", "completed")):
        TaskEvent.objects.create(
            task=task,
            kind=kind,
            status="completed" if kind == "completed" else "assigned",
            attempt=1,
            created_at=at + timedelta(milliseconds=123 * offset),
        )
    return str(task.task_id), at


def log_in(tab, live_stack, then):
    tab.goto(f"{live_stack.base_url}/admin/login/?next={then}")
    tab.fill("#id_username", "sam-superuser")
    tab.fill("#id_password", PASSWORD)
    tab.click("input[type=submit]")
    tab.wait_for_url(f"**{then}")


def test_the_task_pages_events_read_to_the_millisecond_with_no_caption(
    live_stack,
    actors,  # noqa: F811
    task_with_events,
    page,  # noqa: F811
):
    task_id, at = task_with_events
    log_in(page, live_stack, f"/admin/tasks/task/{task_id}/change/")
    rows = page.locator("#events-group tbody tr.form-row")
    expect(rows).to_have_count(3)
    expect(rows.locator("td.field-at")).to_have_text(
        [f"{at:%Y-%m-%d %H:%M:%S}.{456 + 123 * n} UTC" for n in range(3)]
    )
    assert_uncaptioned(rows)


def assert_uncaptioned(rows):
    """No "<object>" caption above an inline's rows, and no room kept for one (Django's CSS pads such a
    row's top by 2em)."""
    for n in range(rows.count()):
        expect(rows.nth(n).locator("td.original p")).to_be_hidden()
    padding = rows.first.locator("td:not(.original)").first.evaluate(
        "(cell) => [getComputedStyle(cell).paddingTop, getComputedStyle(cell).paddingBottom]"
    )
    assert padding[0] == padding[1], padding


# --- A workflow run's page in the admin ------------------------------------------------------------------


@pytest.fixture
def long_run(live_stack, actors):  # noqa: F811
    """A 12-step chain of approvals, its run waiting on the first: the run's id."""
    run_id = start_chains(live_stack, actors[1], 12)[12]
    step_settles(run_id, "step-1", "awaiting_approval")
    return run_id


@pytest.fixture
def run_page(live_stack, long_run, page):  # noqa: F811
    """The long run's page in the admin, 900 px wide (the admin's side bar still shown: little room)."""
    page.set_viewport_size({"width": 900, "height": 1000})
    log_in(page, live_stack, f"/admin/workflows/workflowrun/{long_run}/change/")
    return page


def test_the_run_pages_steps_have_no_caption(run_page):
    rows = run_page.locator("#steps-group tbody tr.form-row")
    expect(rows).to_have_count(12)
    assert_uncaptioned(rows)


def test_a_twelve_step_chain_wraps_within_the_run_page_at_900_px(run_page):
    graph = run_page.locator(".form-row.field-graph")
    box = graph.bounding_box()
    # Every step is within the page's width, full size. (The admin's form row hides what overflows it: a
    # step out of its box would be out of sight, out of reach.)
    for n in range(1, 13):
        step = graph.locator(f'.wf-step[data-step="step-{n}"] rect').bounding_box()
        assert inside(step, box), (n, step, box)
        assert step["width"] >= 150, (n, step)
    assert graph.evaluate("(node) => node.scrollWidth <= node.clientWidth")
    expect(graph.locator("line")).to_have_count(11)  # an edge per dependency, wrapped or not
    ARTIFACTS.mkdir(exist_ok=True)
    run_page.screenshot(path=str(ARTIFACTS / "admin-long-chain.png"), full_page=True)


# Each line of text a step shows, SVG or HTML: its text, whether it lies within the step's box, and
# whether it is cut short, and if so with an ellipsis.
STEP_LINES = """(group) => {
  const box = group.querySelector("rect").getBoundingClientRect();
  return [...group.querySelectorAll("text, .wf-label > *")].map((line) => {
    const at = line.getBoundingClientRect();
    return {
      text: line.textContent,
      inside: at.left >= box.left - 0.5 && at.right <= box.right + 0.5
        && at.top >= box.top - 0.5 && at.bottom <= box.bottom + 0.5,
      cut: line.scrollWidth > line.clientWidth,
      ellipsis: getComputedStyle(line).textOverflow === "ellipsis",
    };
  });
}"""


def assert_label_fits(step):
    """The awaiting step's label: each line inside its box, cut with an ellipsis if at all, and the whole
    in its tooltip."""
    lines = step.evaluate(STEP_LINES)
    assert [line["text"] for line in lines] == ["step-1", "approval · awaiting_approval"], lines
    for line in lines:
        assert line["inside"] and (line["ellipsis"] or not line["cut"]), line
    expect(step.locator(".wf-label")).to_have_attribute("title", "step-1: approval · awaiting_approval")


def test_a_steps_label_stays_inside_its_box_and_says_the_rest_in_a_tooltip(run_page):
    step = run_page.locator('.field-graph .wf-step[data-step="step-1"]')
    assert_label_fits(step)
    # The label is still the step's link.
    step.locator(".wf-label").click()
    run_page.wait_for_url("**/admin/workflows/steprun/*/change/")


def test_a_steps_label_stays_inside_its_box_on_the_dashboard_too(
    live_stack,
    long_run,
    page,  # noqa: F811
):
    open_dashboard(page, live_stack)
    step = page.locator(f'.wf-run[data-run-id="{long_run}"] .wf-step[data-step="step-1"]')
    expect(step).to_have_attribute("data-status", "awaiting_approval", timeout=15000)
    assert_label_fits(step)


# Where a heading's text and the page's buttons are drawn: a line box per line of text, a box per button.
TITLE_AND_BUTTONS = """() => {
  const box = (rect) => ({ left: rect.left, right: rect.right, top: rect.top, bottom: rect.bottom });
  const lines = [...document.querySelectorAll("#content h1, #content h2")].flatMap((heading) => {
    const text = document.createRange();
    text.selectNodeContents(heading);
    return [...text.getClientRects()].map(box);
  });
  const buttons = [...document.querySelectorAll(".object-tools li")];
  return { lines, buttons: buttons.map((li) => box(li.getBoundingClientRect())) };
}"""


def overlap(a, b):
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


def assert_buttons_clear_of_the_heading(tab):
    drawn = tab.evaluate(TITLE_AND_BUTTONS)
    assert len(drawn["buttons"]) == 3, drawn  # Cancel, Pause, History
    for line in drawn["lines"]:
        for button in drawn["buttons"]:
            assert not overlap(line, button), (tab.viewport_size, line, button)


def assert_step_rows_fit(tab):
    """Every column of the step rows, head and cells, within the page's width: none cut off, nothing to
    scroll to."""
    group = tab.locator("#steps-group")
    box = group.bounding_box()
    for cell in (*group.locator("thead th").all(), *group.locator("tbody tr").first.locator("td").all()):
        at = cell.bounding_box()
        assert at["x"] + at["width"] <= box["x"] + box["width"] + 0.5, (tab.viewport_size, cell, at, box)
    assert group.evaluate("(node) => node.scrollWidth <= node.clientWidth"), tab.viewport_size


def test_the_run_pages_buttons_keep_clear_of_its_heading_at_900_and_1400_px(run_page):
    assert_buttons_clear_of_the_heading(run_page)
    run_page.set_viewport_size({"width": 1400, "height": 1000})
    assert_buttons_clear_of_the_heading(run_page)


def test_the_run_pages_step_rows_fit_at_900_and_1400_px(run_page):
    assert_step_rows_fit(run_page)
    # A status may break after an underscore to fit, and still reads whole.
    status = run_page.locator("#steps-group tbody tr").first.locator("td.field-coloured_status")
    expect(status).to_have_text("awaiting_approval")

    run_page.set_viewport_size({"width": 1400, "height": 1000})
    assert_step_rows_fit(run_page)
    # With room, the status is on one line.
    tops = "(cell) => new Set([...cell.querySelector('b').getClientRects()].map((line) => line.top)).size"
    assert status.evaluate(tops) == 1
    ARTIFACTS.mkdir(exist_ok=True)
    run_page.screenshot(path=str(ARTIFACTS / "admin-run-page-1400.png"), full_page=True)


# --- The site's icon ------------------------------------------------------------------------------------


def test_every_page_names_the_icon_and_favicon_ico_leads_to_it(
    live_stack,
    actors,  # noqa: F811
    task_with_events,
    page,  # noqa: F811
):
    # (Headless Chromium asks for no icon by itself, linked or not: what a page names is checked.)
    task_id, _ = task_with_events
    open_dashboard(page, live_stack)
    for then in ("/admin/", "/admin/tasks/task/", f"/admin/tasks/task/{task_id}/change/", "/dashboard/"):
        page.goto(f"{live_stack.base_url}{then}")
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_attribute("type", "image/svg+xml")
        answer = page.request.get(f"{live_stack.base_url}{icon.get_attribute('href')}")
        assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml"), then
    # A client that asks for /favicon.ico anyway (a page that names no icon: the API's) is sent to it.
    answer = page.request.get(f"{live_stack.base_url}/favicon.ico")
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml")

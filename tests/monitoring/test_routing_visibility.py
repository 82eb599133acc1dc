"""What routing learned and why it chose, where operators look: the admin's agent and task pages, the
dashboard's summary, and /metrics (whose series of a removed agent disappear with it)."""

import pytest
import time_machine
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from agents import services
from agents.models import AgentRoute
from tasks.admin import _why
from tasks.engine import claim
from tasks.models import Task, TaskEvent
from tests.routes import learned

from .conftest import make_agent, make_watcher

TOKEN = "metrics-token-for-tests-0123456789"
pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet():
    fast, _ = make_agent("fast-one", capabilities=["summarize"], max_concurrency=10)
    slow, _ = make_agent("slow-one", capabilities=["summarize"], max_concurrency=10)
    learned(fast, 52.4, 0.991)
    learned(slow, 410.0, 0.8)
    return fast, slow


def route_series(client, settings):
    settings.METRICS_TOKEN = TOKEN
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    found = {}
    for family in text_string_to_metric_families(body):
        if family.name.startswith("orchestrator_agent_learned"):
            for sample in family.samples:
                found[sample.name, sample.labels["agent"], sample.labels["capability"]] = sample.value
    return found


def test_metrics_show_learned_figures_per_agent_and_capability_and_drop_removed_agents(
    client, settings, fleet
):
    fast, slow = fleet
    series = route_series(client, settings)
    assert series == {
        ("orchestrator_agent_learned_latency_ms", "fast-one", "summarize"): 52.4,
        ("orchestrator_agent_learned_success_rate", "fast-one", "summarize"): 0.991,
        ("orchestrator_agent_learned_latency_ms", "slow-one", "summarize"): 410.0,
        ("orchestrator_agent_learned_success_rate", "slow-one", "summarize"): 0.8,
    }
    services.unregister_agent(agent_id=slow.pk)
    assert {agent for _, agent, _ in route_series(client, settings)} == {"fast-one"}


def test_the_admin_agent_page_shows_what_was_learned(client, fleet):
    fast, _ = fleet
    client.force_login(make_watcher("vera-viewer", group="viewers"))
    html = client.get(f"/admin/agents/agent/{fast.pk}/change/").content.decode()
    assert "learned routing (adaptive strategy)" in html.lower()
    assert "52.4" in html and "99.1%" in html


def test_the_admin_task_history_says_why_this_agent(client, fleet):
    fast, slow = fleet
    # At the instant the figures were learned: nothing has drifted yet.
    with time_machine.travel(AgentRoute.objects.get(agent=fast).updated_at, tick=False):
        task = Task.objects.create(
            type="t", required_capabilities=["summarize"], strategy="adaptive", next_attempt_at=timezone.now()
        )
        claim.claim()
    event = TaskEvent.objects.get(task=task, kind="assigned")
    assert event.agent_id == fast.agent_id  # two agents: the draw is always the pair
    client.force_login(make_watcher("vera-viewer", group="viewers"))
    html = client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
    assert "adaptive (power_of_two) among 2 agent(s)" in html
    # cost = latency / success rate x (1 + load / max): 52.4 / 0.991 and 410 / 0.8
    assert f"chose {str(fast.agent_id)[:8]}: cost 53 ms (52 ms, 99.1% ok, load 0/10)" in html
    assert f"over {str(slow.agent_id)[:8]}: cost 512 ms (410 ms, 80.0% ok, load 0/10)" in html


def test_the_why_line_names_the_pool_the_pair_was_drawn_from():
    score = {"agent_id": "1f0c" * 9, "cost_ms": 61.3, "latency_ms": 52.1, "success_rate": 0.99}
    details = {
        "strategy": "adaptive",
        "rule": "power_of_two",
        "candidates": 6,
        "pool": 3,
        "scores": [{**score, "load": 1, "max_concurrency": 8}, {**score, "load": 0, "max_concurrency": 8}],
    }
    assert _why(details).startswith(
        "adaptive (power_of_two) among 6 agent(s) (pair drawn from the 3 cheapest) chose 1f0c1f0c: cost 61 ms"
    )


def test_the_dashboard_summary_carries_the_learned_figures(client, fleet):
    client.force_login(make_watcher("vera-viewer", group="viewers"))
    routing = client.get("/dashboard/api/summary").json()["routing"]
    assert [(r["agent"], r["capability"], r["latency_ms"], r["success_rate"]) for r in routing] == [
        ("fast-one", "summarize", 52.4, 0.991),
        ("slow-one", "summarize", 410.0, 0.8),
    ]

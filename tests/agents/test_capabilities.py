from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent, AgentStatus
from tests.agents.conftest import make_agent


def test_every_capability_is_counted_with_its_online_agents(viewer_client, db):
    make_agent("ada", capabilities=["summarize", "translate"])
    make_agent("ben", capabilities=["summarize"])
    make_agent("cy", capabilities=["translate", "ocr"])
    Agent.objects.filter(name="cy").update(status=AgentStatus.OFFLINE)

    response = viewer_client.get("/api/v1/capabilities")

    assert response.status_code == 200
    assert response.json() == {
        "count": 3,
        "results": [
            {"capability": "ocr", "online_agents": 0, "total_agents": 1},
            {"capability": "summarize", "online_agents": 2, "total_agents": 2},
            {"capability": "translate", "online_agents": 1, "total_agents": 2},
        ],
    }


def test_the_capability_summary_is_one_query(viewer_client, db):
    make_agent("ada", capabilities=["summarize"])

    with CaptureQueriesContext(connection) as queries:
        viewer_client.get("/api/v1/capabilities")

    # Apart from authenticating the viewer, the agents table is read once.
    assert len([q for q in queries.captured_queries if "agents_agent" in q["sql"]]) == 1

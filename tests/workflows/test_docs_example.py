"""docs/workflows.md's worked example, run end to end: the doc's JSON blocks are the test's input and
its expected results, so the doc cannot drift from what the API does."""

import json
import re
from pathlib import Path

from workflows.models import StepRun, WorkflowEvent

from .helpers import RUNS, run_settles, step_settles

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
_BLOCK = re.compile(r"<!-- example:([a-z-]+) -->\s*```json\n(.*?)\n```", re.S)


def examples():
    """{name: parsed JSON} of every `<!-- example:name -->` block of the doc."""
    return {name: json.loads(text) for name, text in _BLOCK.findall(DOC.read_text())}


def research_agent(call):
    """The agents the doc describes."""
    data = call.body["input_data"]
    if call.body["type"] == "plan":
        topic = data["topic"]
        questions = [f"What is {topic}?", f"Who makes {topic}?", f"What do {topic} cost?"]
        return 200, {"result": {"questions": questions[: data["max_questions"]]}}
    if call.body["type"] == "research":
        answer = f"{data['number'] + 1}. notes on {data['question']}"
        return 200, {"result": {"question": data["question"], "answer": answer}}
    answers = " ".join(f["answer"] for f in data["findings"])
    return 200, {"result": {"text": f"{data['title']}, approved by {data['editor']}: {answers}"}}


def test_the_doc_has_every_block_of_the_example():
    assert set(examples()) == {"definition", "run", "approve", "write-input", "output"}


def test_the_worked_example_of_the_doc_runs_as_written(
    worker, operator_client, operator, fake_agents, register
):
    example = examples()
    fake = fake_agents(research_agent)
    register(fake, capabilities=["plan", "research", "write"])

    created = operator_client.post("/api/v1/workflows", example["definition"], format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["version"] == 1 and created.json()["warnings"] == []
    again = operator_client.post("/api/v1/workflows", example["definition"], format="json")
    assert again.status_code == 200 and again.json()["version"] == 1

    started = operator_client.post(
        RUNS, example["run"], format="json", HTTP_IDEMPOTENCY_KEY="report-2026-12-04"
    )
    assert started.status_code == 201, started.json()
    run_id = started.json()["run_id"]
    repeated = operator_client.post(
        RUNS, example["run"], format="json", HTTP_IDEMPOTENCY_KEY="report-2026-12-04"
    )
    assert repeated.status_code == 200 and repeated.json()["run_id"] == run_id

    review = step_settles(run_id, "review", "awaiting_approval")
    assert review.input == {"findings": example["write-input"]["findings"]}
    assert StepRun.objects.get(run_id=run_id, step_id="research", map_index=-1).items_total == 3
    assert not [c for c in fake.calls if c.body["type"] == "write"]
    # max_concurrency 2: the third item started only once one of the first two had ended.
    research = list(
        WorkflowEvent.objects.filter(run_id=run_id, step_id="research", map_index__gte=0)
        .order_by("id")
        .values_list("map_index", "status")
    )
    first_end = min(research.index((0, "completed")), research.index((1, "completed")))
    assert research.index((2, "running")) > first_end

    decided = operator_client.post(f"{RUNS}/{run_id}/steps/review/approve", example["approve"], format="json")
    assert decided.status_code == 200, decided.json()
    run = run_settles(run_id, "completed", "failed")
    assert run.status == "completed", list(StepRun.objects.filter(run_id=run_id).values("step_id", "error"))

    assert run.output == example["output"]
    (write_call,) = [c for c in fake.calls if c.body["type"] == "write"]
    assert write_call.body["input_data"] == example["write-input"]  # the doc's editor is `operator`
    assert StepRun.objects.get(run_id=run_id, step_id="review").output == {
        "approved": True,
        "by": operator.username,
        **example["approve"],
    }
    assert sorted(c.headers["idempotency-key"] for c in fake.calls) == sorted(
        f"{run_id}:{step}:{index}:1"
        for step, index in [("plan", 0), ("research", 0), ("research", 1), ("research", 2), ("write", 0)]
    )

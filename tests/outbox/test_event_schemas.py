"""Every event the service writes matches the JSON Schema docs/event-schemas.json gives for its type,
and every documented type is written by some change."""

import json
from pathlib import Path

import jsonschema

from orchestrator_project.outbox.models import OutboxEvent
from tasks import services as task_services
from tests.outbox.test_outbox_writes import (
    test_an_agent_publishes_its_registration_status_and_circuit_changes_and_its_end as agent_life,
)
from tests.outbox.test_outbox_writes import (
    test_every_move_writes_a_status_changed_event_numbered_after_the_last as task_life,
)
from workflows import definitions, runs
from workflows.models import StepRun

SCHEMAS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "event-schemas.json").read_text())
SCHEMAS.pop("$comment")


def test_every_event_matches_the_documented_schema_of_its_type(db, settings):
    task_life(db)
    agent_life(db, settings)
    workflow_life()
    written = set()
    for event in OutboxEvent.objects.all():
        jsonschema.validate(
            event.payload, SCHEMAS[event.type], format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        written.add(event.type)
    assert written == set(SCHEMAS)


def workflow_life():
    """A run started, its first step's task cancelled: the step and the run change status."""
    steps = [{"id": "a", "task_type": "t"}, {"id": "b", "task_type": "t", "depends_on": ["a"]}]
    definitions.create_definition(name="life", spec={"steps": steps})
    run, _ = runs.start_run(workflow="life")
    task_services.cancel_task(task_id=StepRun.objects.get(run=run, step_id="a").task_id)

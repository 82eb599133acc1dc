"""Workflow definitions: immutable versions, validation with field errors, hostile specs refused fast."""

import time

import pytest

CHAIN = [
    {"id": "plan", "task_type": "plan", "input": {"topic": {"$path": "$.input.topic"}}},
    {
        "id": "write",
        "depends_on": ["plan"],
        "task_type": "write",
        "input": {
            "outline": {"$path": "$.steps.plan.output.outline"},
            "title": {"$template": "On {{ $.input.topic }}"},
        },
    },
]


def _post(client, name, steps, **spec):
    return client.post("/api/v1/workflows", {"name": name, "spec": {"steps": steps, **spec}}, format="json")


def test_the_same_spec_with_another_description_keeps_its_version_and_says_so(operator_client):
    def post(description=None):
        body = {"name": "report", "spec": {"steps": CHAIN}}
        if description is not None:
            body["description"] = description
        return operator_client.post("/api/v1/workflows", body, format="json")

    def about_description(response):
        return [w for w in response.json()["warnings"] if w["field"] == "description"]

    first = post("Plan and write.")
    assert first.status_code == 201
    same = post("Plan and write.")
    assert same.status_code == 200 and not about_description(same)
    bare = post()  # re-applied without one (a deployment script, say): nothing to say about it
    assert bare.status_code == 200 and not about_description(bare)
    other = post("Plan, then write.")
    assert other.status_code == 200 and other.json()["version"] == 1
    assert other.json()["description"] == "Plan and write."
    [warning] = about_description(other)
    assert "version 1" in warning["message"] and "Change the spec" in warning["message"]


def test_a_definition_is_stored_as_version_1_with_defaults_filled_in_and_its_hash(operator_client, settings):
    response = _post(operator_client, "report", CHAIN)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "report" and body["version"] == 1 and len(body["spec_sha256"]) == 64
    plan = body["spec"]["steps"][0]
    assert plan["type"] == "task" and plan["trigger"] == "all_success"
    assert plan["required_capabilities"] == ["plan"]
    assert plan["timeout_seconds"] == settings.TASK_DEFAULT_TIMEOUT


def test_the_same_spec_returns_the_existing_version_and_a_different_one_makes_the_next(operator_client):
    first = _post(operator_client, "report", CHAIN).json()
    again = _post(operator_client, "report", CHAIN)
    assert again.status_code == 200 and again.json()["definition_id"] == first["definition_id"]
    changed = _post(operator_client, "report", CHAIN, defaults={"max_retries": 1})
    assert changed.status_code == 201 and changed.json()["version"] == 2
    versions = operator_client.get("/api/v1/workflows/report/versions").json()
    assert [v["version"] for v in versions] == [2, 1]
    assert operator_client.get("/api/v1/workflows/report").json()["version"] == 2
    assert (
        operator_client.get("/api/v1/workflows/report/versions/1").json()["spec_sha256"]
        == first["spec_sha256"]
    )
    listed = operator_client.get("/api/v1/workflows").json()
    assert [(w["name"], w["version"]) for w in listed] == [("report", 2)]
    assert operator_client.get("/api/v1/workflows", {"name": "epo"}).json() == listed
    assert operator_client.get("/api/v1/workflows", {"name": "nope"}).json() == []


def test_a_sub_workflow_without_a_version_is_pinned_to_the_latest_at_definition_time(operator_client):
    _post(operator_client, "child", CHAIN)
    _post(operator_client, "child", CHAIN, defaults={"max_retries": 1})  # version 2
    sub = [{"id": "sub", "type": "workflow", "workflow": "child"}]
    checked = operator_client.post("/api/v1/workflows/validate", {"spec": {"steps": sub}}, format="json")
    assert checked.json()["spec"]["steps"][0]["version"] == 2  # what would be stored
    parent = _post(operator_client, "parent", sub).json()
    assert parent["spec"]["steps"][0]["version"] == 2

    _post(operator_client, "child", CHAIN, defaults={"max_retries": 0})  # version 3, after the parent
    stored = operator_client.get("/api/v1/workflows/parent/versions/1").json()
    assert stored["spec"]["steps"][0]["version"] == 2 and stored["spec_sha256"] == parent["spec_sha256"]
    # The same spec posted now pins version 3: a different spec, so the parent's next version.
    again = _post(operator_client, "parent", sub)
    assert again.status_code == 201 and again.json()["version"] == 2
    assert again.json()["spec"]["steps"][0]["version"] == 3
    # A version named explicitly is kept as it is.
    explicit = _post(operator_client, "parent", [{**sub[0], "version": 1}]).json()
    assert explicit["spec"]["steps"][0]["version"] == 1


def test_unknown_workflows_and_versions_are_404(operator_client, viewer_client):
    assert operator_client.get("/api/v1/workflows/nope").status_code == 404
    _post(operator_client, "report", CHAIN)
    assert viewer_client.get("/api/v1/workflows/report/versions/9").status_code == 404
    assert viewer_client.get("/api/v1/workflows/nope/versions").status_code == 404


def test_viewers_read_definitions_but_cannot_create_them(viewer_client, operator_client):
    _post(operator_client, "report", CHAIN)
    assert viewer_client.get("/api/v1/workflows/report").status_code == 200
    assert _post(viewer_client, "other", CHAIN).status_code == 403


def test_unknown_capabilities_are_warnings_not_errors(operator_client):
    response = operator_client.post("/api/v1/workflows/validate", {"spec": {"steps": CHAIN}}, format="json")
    assert response.status_code == 200
    assert response.json()["valid"] is True
    warnings = response.json()["warnings"]
    assert {w["field"] for w in warnings} == {
        "spec.steps[0].required_capabilities",
        "spec.steps[1].required_capabilities",
    }


def test_a_step_whose_capabilities_no_single_agent_offers_is_a_warning(operator_client):
    from tests.tasks.conftest import make_agent

    make_agent("reader", capabilities=("plan",))
    make_agent("writer", capabilities=("write",))
    steps = [{"id": "both", "task_type": "t", "required_capabilities": ["plan", "write"]}]
    response = operator_client.post("/api/v1/workflows/validate", {"spec": {"steps": steps}}, format="json")
    assert response.json()["warnings"] == [
        {
            "field": "spec.steps[0].required_capabilities",
            "message": "No registered agent offers all of 'plan', 'write': the task waits until one does.",
        }
    ]


def _errors(client, steps, **spec):
    response = client.post("/api/v1/workflows/validate", {"spec": {"steps": steps, **spec}}, format="json")
    assert response.status_code == 400, response.json()
    return response.json()


def test_a_cycle_is_named(operator_client):
    steps = [
        {"id": "a", "task_type": "t", "depends_on": ["c"]},
        {"id": "b", "task_type": "t", "depends_on": ["a"]},
        {"id": "c", "task_type": "t", "depends_on": ["b"]},
    ]
    message = _errors(operator_client, steps)["spec.steps"][0]
    assert "cycle" in message and "a -> b -> c -> a" in message


@pytest.mark.parametrize(
    ("steps", "field", "words"),
    [
        (
            [{"id": "a", "task_type": "t", "depends_on": ["ghost"]}],
            "spec.steps[0].depends_on",
            "Unknown step 'ghost'",
        ),
        ([{"id": "a", "task_type": "t"}, {"id": "a", "task_type": "t"}], "spec.steps[1].id", "Duplicate"),
        (
            [{"id": "a", "task_type": "t", "input": {"x": {"$path": "input.x"}}}],
            "spec.steps[0].input",
            "must start with '$'",
        ),
        (
            [{"id": "a", "task_type": "t", "input": {"x": {"$path": "$.input[*]"}}}],
            "spec.steps[0].input",
            "not a supported path",
        ),
        (
            [
                {"id": "a", "task_type": "t"},
                {"id": "b", "task_type": "t", "input": {"x": {"$path": "$.steps.a.output"}}},
            ],
            "spec.steps[1].input",
            "not upstream",
        ),
        (
            [{"id": "a", "task_type": "t", "input": {"x": {"$path": "$.item"}}}],
            "spec.steps[0].input",
            "only for a map",
        ),
        (
            [{"id": "a", "task_type": "t", "input": {"x": {"$template": "{{ nope }}"}}}],
            "spec.steps[0].input",
            "must start with '$'",
        ),
        (
            [{"id": "a", "task_type": "t", "input": {"x": {"$path": "$.input", "y": 1}}}],
            "spec.steps[0].input",
            "no other keys",
        ),
        ([{"id": "a", "type": "dance"}], "spec.steps[0].type", "Must be one of"),
        ([{"id": "a", "task_type": "t", "trigger": "sometimes"}], "spec.steps[0].trigger", "Must be one of"),
        ([{"id": "a", "type": "map", "task_type": "t"}], "spec.steps[0].over", "Required"),
        (
            [{"id": "a", "type": "condition", "when": {"path": "$.input.x", "op": "like"}}],
            "spec.steps[0].when",
            "'op' must be",
        ),
        (
            [{"id": "a", "type": "workflow", "workflow": "ghost", "version": 1}],
            "spec.steps[0].workflow",
            "No workflow 'ghost'",
        ),
        (
            [{"id": "a", "type": "workflow", "workflow": "ghost"}],
            "spec.steps[0].workflow",
            "No workflow 'ghost'.",
        ),
        (
            [{"id": "a", "type": "workflow", "workflow": "ghost", "version": "1"}],
            "spec.steps[0].version",
            "Must be an integer",
        ),
        ([{"id": "a", "task_type": "t", "status": "completed"}], "spec.steps[0].status", "Unknown field"),
        ([{"id": "1bad", "task_type": "t"}], "spec.steps[0].id", "Required"),
    ],
)
def test_bad_definitions_get_field_errors(operator_client, steps, field, words):
    errors = _errors(operator_client, steps)
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors


def _refused_quickly(client, body):
    started = time.monotonic()
    response = client.post("/api/v1/workflows", body, format="json")
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.content[:500]
    return response.json(), elapsed


def test_ten_thousand_steps_are_refused(operator_client, settings):
    settings.WORKFLOW_SPEC_MAX_BYTES = 10 * 1024 * 1024  # past the byte cap: the step count says no
    steps = [{"id": f"s{i}", "task_type": "t"} for i in range(10_000)]
    errors, _ = _refused_quickly(operator_client, {"name": "huge", "spec": {"steps": steps}})
    assert "10000 steps; the limit is 500" in errors["spec.steps"][0]


def test_an_oversized_spec_is_refused_by_its_byte_size(operator_client):
    steps = [{"id": f"s{i}", "task_type": "t", "description": "x" * 1500} for i in range(400)]
    errors, _ = _refused_quickly(operator_client, {"name": "big", "spec": {"steps": steps}})
    assert "bytes; the limit is" in errors["spec"][0]


def test_deep_nesting_is_refused(operator_client):
    value = {}
    for _ in range(200):
        value = {"x": value}
    errors, _ = _refused_quickly(
        operator_client, {"name": "deep", "spec": {"steps": [{"id": "a", "task_type": "t", "input": value}]}}
    )
    assert "nested deeper" in errors["spec"][0]


def test_a_huge_template_is_refused(operator_client):
    template = "{{ $.input.x }}" * 2000
    errors, _ = _refused_quickly(
        operator_client,
        {
            "name": "tpl",
            "spec": {"steps": [{"id": "a", "task_type": "t", "input": {"t": {"$template": template}}}]},
        },
    )
    assert "longer than" in errors["spec.steps[0].input"][0]


def test_a_long_chain_of_500_steps_is_accepted(operator_client):
    steps = [{"id": "s0", "task_type": "t"}] + [
        {
            "id": f"s{i}",
            "task_type": "t",
            "depends_on": [f"s{i - 1}"],
            "input": {"p": {"$path": "$.steps.s0.output"}},
        }
        for i in range(1, 500)
    ]
    response = _post(operator_client, "long", steps)
    assert response.status_code == 201, response.json()

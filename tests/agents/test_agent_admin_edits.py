"""An operator edits an agent's settings in the admin: held to registration's rules, writing only what was
edited, and waking dispatch when the agent may now take more work."""

import re

import pytest
from django.test import Client

from agents import admin as agent_admin
from agents.models import Agent
from orchestrator_project.outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def olivia(operator):
    client = Client()
    client.force_login(operator)
    return client


def form(agent, **changes):
    """The change form as the page posts it, with `changes` typed in. Fields whose model default is
    callable carry their initial value in a hidden input, which is how Django tells what was edited."""
    data = {
        # the page's two inlines, left as they are
        "routes-TOTAL_FORMS": 0,
        "routes-INITIAL_FORMS": 0,
        "status_changes-TOTAL_FORMS": 0,
        "status_changes-INITIAL_FORMS": 0,
    }
    for field in agent_admin.AgentForm(instance=agent):
        value = field.field.prepare_value(field.value())
        if field.field.show_hidden_initial:
            data[field.html_initial_name] = value
        if value is not False:  # an unticked checkbox is not posted
            data[field.html_name] = "on" if value is True else value
    data.update(changes)
    return data


def save(client, agent, **changes):
    return client.post(f"/admin/agents/agent/{agent.pk}/change/", form(agent, **changes))


def settings_of(agent):
    agent.refresh_from_db()
    return (
        agent.name,
        agent.capabilities,
        agent.metadata,
        agent.max_concurrency,
        agent.weight,
        agent.heartbeat_timeout,
    )


def test_an_operator_changes_an_agents_settings(olivia, alice):
    response = save(
        olivia,
        alice,
        name="alice the second",
        capabilities="summarize,ocr,ocr",
        metadata='{"region": "eu"}',
        max_concurrency=25,
        weight=3,
        heartbeat_timeout=60,
    )

    assert response.status_code == 302, response.content.decode()
    assert settings_of(alice) == ("alice the second", ["summarize", "ocr"], {"region": "eu"}, 25, 3, 60)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("capabilities", "echo,bad cap", "Capabilities start with a letter or digit"),
        ("max_concurrency", 0, "Ensure this value is greater than or equal to 1."),
        ("heartbeat_timeout", 999999, "Ensure this value is less than or equal to 3600."),
        ("weight", 100000, "Ensure this value is less than or equal to 1000."),
        ("metadata", "[1, 2]", "metadata must be a JSON object."),
        ("type", "no spaces please", "A type starts with a letter or digit"),
        ("name", "tab\there", "A name must not contain control characters."),
    ],
)
def test_what_registration_refuses_the_admin_refuses(olivia, alice, field, value, message):
    before = settings_of(alice)

    response = save(olivia, alice, **{field: value})

    assert response.status_code == 200  # the form again, with the error beside the field
    assert message in response.content.decode()
    assert settings_of(alice) == before


def test_an_edit_writes_only_the_edited_columns(olivia, alice, monkeypatch):
    """Dispatch takes a slot and a heartbeat lands while the form is being saved: both stay."""
    original = agent_admin.AgentForm.save

    def save_while_the_agent_works(form, commit=True):
        Agent.objects.filter(pk=alice.pk).update(current_load=4, reported_load=9)
        return original(form, commit)

    monkeypatch.setattr(agent_admin.AgentForm, "save", save_while_the_agent_works)

    assert save(olivia, alice, weight=7).status_code == 302

    alice.refresh_from_db()
    assert (alice.weight, alice.current_load, alice.reported_load) == (7, 4, 9)


@pytest.mark.django_db(transaction=True)
def test_more_room_or_a_new_capability_wakes_dispatch_and_a_rename_does_not(olivia, alice, dispatch_rings):
    assert save(olivia, alice, name="renamed").status_code == 302
    assert dispatch_rings.heard() == []

    assert save(olivia, alice, max_concurrency=alice.max_concurrency + 5).status_code == 302
    assert dispatch_rings.heard() == [""]

    assert save(olivia, alice, capabilities="summarize,translate,ocr").status_code == 302
    assert dispatch_rings.heard() == [""]


def test_an_edit_of_what_agent_registered_carries_publishes_it_again(olivia, alice):
    def published():
        return list(
            OutboxEvent.objects.filter(aggregateid=alice.agent_id, type="io.orchestrator.agent.registered.v1")
            .order_by("sequence")
            .values_list("payload", flat=True)
        )

    before = len(published())
    assert save(olivia, alice, weight=3).status_code == 302
    assert len(published()) == before  # the weight is not in the event

    assert save(olivia, alice, name="alice the second", max_concurrency=12).status_code == 302
    latest = published()[-1]
    assert len(published()) == before + 1
    assert (latest["name"], latest["max_concurrency"], latest["capabilities"]) == (
        "alice the second",
        12,
        alice.capabilities,
    )


def test_the_forms_number_inputs_offer_registrations_bounds(olivia, alice):
    from agents.serializers import MAX_CONCURRENCY

    page = olivia.get(f"/admin/agents/agent/{alice.pk}/change/").content.decode()
    [field] = re.findall(r'<input[^>]*name="max_concurrency"[^>]*>', page)
    assert ' min="1"' in field and f' max="{MAX_CONCURRENCY}"' in field

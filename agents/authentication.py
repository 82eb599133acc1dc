"""Agent tokens (`aoa_…`): an agent's requests authenticate as an AgentPrincipal, never as a user.

Registered with the accounts app's Bearer authentication when this app is ready (apps.py), so accounts
needs to know nothing about agents.
"""

from functools import cache

from django.db import connection

from orchestrator_project.accounts.authentication import fetch_row
from orchestrator_project.accounts.models import hash_token
from orchestrator_project.accounts.roles import AgentPrincipal

from .models import Agent

# What an agent's request needs of its agent: who it is. The rest (metrics and metadata documents, a
# dozen timestamps) stays deferred; the heartbeat, an agent's busiest request, never reads it.
_AGENT_IDENTITY = ("agent_id", "name", "type", "status")


@cache
def _agent_lookup():
    columns = ", ".join(f'a."{Agent._meta.get_field(name).column}"' for name in _AGENT_IDENTITY)
    sql = f'SELECT {columns} FROM "{Agent._meta.db_table}" a WHERE a."token_hash" = %s'
    return list(_AGENT_IDENTITY), sql


def resolve_agent_token(raw):
    """(AgentPrincipal, agent) for a raw agent token, or None."""
    fields, sql = _agent_lookup()
    row = fetch_row(sql, [hash_token(raw)])
    if row is None:
        return None
    agent = Agent.from_db(connection.alias, fields, row)
    return AgentPrincipal(agent), agent

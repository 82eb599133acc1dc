from orchestrator_project.accounts.permissions import IsOperatorOrReadOnly
from orchestrator_project.accounts.roles import is_agent


class AgentRegistryAccess(IsOperatorOrReadOnly):
    """Operators do everything, viewers read, an agent's own token may only read itself and heartbeat.

    An agent asking about another agent gets 404 from the view (its queryset holds only itself), so a
    token cannot even learn which agent ids exist; verbs an agent may never use are a plain 403.
    """

    AGENT_ACTIONS = {"retrieve", "heartbeat"}

    def has_permission(self, request, view):
        if is_agent(request.user):
            return view.action in self.AGENT_ACTIONS
        return super().has_permission(request, view)

"""Who may do what. Roles are Django groups; superusers can do everything.

Agents authenticate with their own token and appear as an `AgentPrincipal`, never as a user.
"""

OPERATORS = "operators"
VIEWERS = "viewers"


class AgentPrincipal:
    """The identity of a request made with an agent's token."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    is_agent = True

    def __init__(self, agent):
        self.agent = agent
        self.pk = None
        self.username = f"agent:{agent.pk}"

    def __str__(self):
        return self.username


def is_agent(user):
    return getattr(user, "is_agent", False)


def _group_names(user):
    # Cached on the user object: a request asks several times, the database once.
    names = getattr(user, "_orchestrator_groups", None)
    if names is None:
        names = set(user.groups.values_list("name", flat=True))
        user._orchestrator_groups = names
    return names


def is_operator(user):
    if not user or not user.is_authenticated or is_agent(user) or not user.is_active:
        return False
    return user.is_superuser or OPERATORS in _group_names(user)


def is_viewer(user):
    """Read access: viewers and everyone who may also write."""
    if is_operator(user):
        return True
    if not user or not user.is_authenticated or is_agent(user) or not user.is_active:
        return False
    return VIEWERS in _group_names(user)

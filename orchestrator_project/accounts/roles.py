"""Who may do what. Roles are Django groups; superusers can do everything.

Agents authenticate with their own token and appear as an `AgentPrincipal`, never as a user.
"""

OPERATORS = "operators"
VIEWERS = "viewers"

# The roles' model permissions, which the admin checks: for every model of each app, these actions.
# The groups are given exactly these by a migration and again after every `migrate` (permissions.py
# in this package), so a model added to one of these apps later is covered as soon as it is migrated.
ROLE_PERMISSIONS = {
    # change: edit an agent's settings, and the admin's verbs (drain, resume, mark offline, reset a
    # circuit; retry, cancel). delete: unregister an agent (its work is handed back first).
    OPERATORS: {
        "agents": ("view", "change", "delete"),
        "tasks": ("view", "change"),
        "workflows": ("view", "change"),
    },
    VIEWERS: {"agents": ("view",), "tasks": ("view",), "workflows": ("view",)},
}


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


def can_use_admin(user):
    """Django's staff, or anyone with a role: being given a role is all it takes to log into the admin.

    What a user then sees there is up to their model permissions: a staff user with no role sees nothing.
    """
    if not user or not user.is_authenticated or is_agent(user) or not user.is_active:
        return False
    return user.is_staff or is_viewer(user)

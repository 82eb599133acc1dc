from rest_framework import permissions

from .roles import is_agent, is_operator, is_viewer


class IsOperatorOrReadOnly(permissions.BasePermission):
    """The default: viewers read, operators and superusers write, agents get nothing unless a view allows."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view):
        user = request.user
        if not user or not user.is_authenticated:
            return False
        if is_agent(user):
            return False
        if request.method in permissions.SAFE_METHODS:
            return is_viewer(user)
        return is_operator(user)


class IsOperator(permissions.BasePermission):
    message = "Only operators may do this."

    def has_permission(self, request, view):
        return is_operator(request.user)


class IsViewer(permissions.BasePermission):
    message = "Your role does not allow reading this."

    def has_permission(self, request, view):
        return is_viewer(request.user)

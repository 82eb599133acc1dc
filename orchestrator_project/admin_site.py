"""The admin site: Django's, except that a role (operators, viewers) opens it as staff status does.

Django's admin lets in only `is_staff` users, which left the role groups out: an operator had to be made
staff as well, by hand. Here a role is the one switch; what a member then sees and may do is decided by
the role's model permissions (accounts/roles.py ROLE_PERMISSIONS). Installed by orchestrator_project/apps.py.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from orchestrator_project.accounts.roles import can_use_admin, is_viewer


class RoleAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user):
        AuthenticationForm.confirm_login_allowed(self, user)  # inactive users are refused there
        if not can_use_admin(user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class OrchestratorAdminSite(admin.AdminSite):
    site_header = "Agent Orchestrator"
    site_title = "Agent Orchestrator"
    index_title = "Operations"
    login_form = RoleAuthenticationForm

    def has_permission(self, request):
        return can_use_admin(request.user)

    def each_context(self, request):
        context = super().each_context(request)
        context["dashboard_allowed"] = is_viewer(request.user)  # the link in the user tools
        return context

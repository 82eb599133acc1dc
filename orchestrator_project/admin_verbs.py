"""Operator verbs in the admin: each one is a changelist action and a button on the change page.

A verb calls a service (never the ORM behind its back) and reports, per object, what it changed and
what it could not, as admin messages: a request the object's state does not allow (cancel a finished
task, resume an agent that is not draining) is a warning naming the object and the reason, never a 500.
Verbs need a model permission (`change` by default), which the roles' groups carry
(accounts/roles.py ROLE_PERMISSIONS): read-only users get neither the actions nor the buttons, and a
POST of theirs is refused with 403.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

# More names than this in one message are summed up: a changelist action may cover hundreds of rows.
MAX_NAMED = 10


@dataclass
class Report:
    done: int = 0
    notes: list = field(default_factory=list)  # said about objects that were changed
    refused: list = field(default_factory=list)  # "<object> (<why not>)"


@dataclass(frozen=True)
class Verb:
    name: str  # the action's name and the button's URL
    label: str  # the button
    description: str  # the action in the changelist's menu
    done: str  # the success message, with {n}
    run: Callable  # (request, primary keys) -> Report
    offered: Callable = lambda obj: True  # whether the change page shows the button for this object
    permission: str = "change"


def _listed(items):
    extra = len(items) - MAX_NAMED
    return "; ".join(items[:MAX_NAMED]) + (f"; and {extra} more" if extra > 0 else "")


class VerbsMixin:
    """For a ModelAdmin: set `verbs`; the actions, the buttons and their URL follow."""

    verbs = ()
    change_form_template = "admin/verbs_change_form.html"

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self.actions = [*(self.actions or ()), *(self._action(verb) for verb in self.verbs)]

    def _action(self, verb):
        def action(modeladmin, request, queryset):
            modeladmin.report(request, verb, verb.run(request, list(queryset.values_list("pk", flat=True))))

        action.__name__ = verb.name
        action.short_description = verb.description
        action.allowed_permissions = (verb.permission,)
        return action

    def report(self, request, verb, report):
        if report.done or not report.refused:
            self.message_user(request, verb.done.format(n=report.done), messages.SUCCESS)
        if report.notes:
            self.message_user(request, _listed(report.notes), messages.INFO)
        if report.refused:
            self.message_user(request, f"Not changed: {_listed(report.refused)}.", messages.WARNING)

    def _allowed(self, request, verb):
        return getattr(self, f"has_{verb.permission}_permission")(request)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_verb"
        view = self.admin_site.admin_view(self.verb_view)  # login, site permission, CSRF
        return [path("<path:object_id>/verb/<str:verb>/", view, name=name), *super().get_urls()]

    def verb_view(self, request, object_id, verb):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        chosen = next((candidate for candidate in self.verbs if candidate.name == verb), None)
        if chosen is None:
            raise Http404(f"No verb {verb!r} here.")
        if not self._allowed(request, chosen):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        self.report(request, chosen, chosen.run(request, [obj.pk]))
        return HttpResponseRedirect(self._change_url(obj))

    def _change_url(self, obj):
        opts = self.opts
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[quote(obj.pk)],
            current_app=self.admin_site.name,
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            name = f"admin:{self.opts.app_label}_{self.opts.model_name}_verb"
            context["verb_buttons"] = [
                {"label": verb.label, "url": reverse(name, args=[quote(obj.pk), verb.name])}
                for verb in self.verbs
                if self._allowed(request, verb) and verb.offered(obj)
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

"""Give the role groups exactly the model permissions roles.ROLE_PERMISSIONS names.

Run by the accounts migration that introduced them (with the migration's historical models) and after
every `migrate` (post_migrate, see apps.py), which is when permissions of newly added models appear.
Permissions given to the role groups by hand are taken away again: put such grants in a group of
their own.
"""

from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q

from .roles import ROLE_PERMISSIONS

ROLE_APPS = {app for grants in ROLE_PERMISSIONS.values() for app in grants}


def _wanted(app_label, actions, apps):
    """Django's default permissions (`<action>_<model>`) of every model of the app."""
    query = Q(pk__in=[])
    try:
        models = apps.get_app_config(app_label).get_models()
    except LookupError:
        # An app whose tables come later than the migration granting (its state has no such app yet):
        # the grant after `migrate` covers it.
        return query
    for model in models:
        name = model._meta.model_name
        query |= Q(
            content_type__app_label=app_label,
            content_type__model=name,
            codename__in=[f"{action}_{name}" for action in actions],
        )
    return query


def grant_role_permissions(*, apps=global_apps, using=DEFAULT_DB_ALIAS):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, grants in ROLE_PERMISSIONS.items():
        query = Q(pk__in=[])
        for app_label, actions in grants.items():
            query |= _wanted(app_label, actions, apps)
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.set(Permission.objects.using(using).filter(query))


def after_migrate(sender, *, using=DEFAULT_DB_ALIAS, apps=global_apps, **_):
    # Sent once per app, after that app's permissions were created: the role apps' turn is the one
    # that can bring new permissions.
    if sender.label in ROLE_APPS:
        grant_role_permissions(apps=apps, using=using)

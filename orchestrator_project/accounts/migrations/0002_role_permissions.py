"""The role groups get their model permissions (roles.ROLE_PERMISSIONS), so operators and viewers can use
the admin. Later changes reach the groups after every `migrate` (grants.after_migrate)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from orchestrator_project.accounts.grants import grant_role_permissions


def grant(apps, schema_editor):
    # Permissions are created after the last migration (post_migrate); this one needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    grant_role_permissions(apps=apps, using=schema_editor.connection.alias)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.using(schema_editor.connection.alias).filter(name__in=["operators", "viewers"]):
        group.permissions.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("agents", "0005_heartbeats_are_hot_updates"),
        ("tasks", "0003_list_indexes"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

from django.contrib.admin.apps import AdminConfig


class OrchestratorAdminConfig(AdminConfig):
    """django.contrib.admin with our site (admin_site.py); a module of its own, free of models, because
    app configs are imported before any model may be."""

    default_site = "orchestrator_project.admin_site.OrchestratorAdminSite"

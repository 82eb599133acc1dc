"""Read-only admin pages for workflows (the step graph and the verbs come with the live pages)."""

from django.contrib import admin

from .models import StepRun, WorkflowDefinition, WorkflowEvent, WorkflowRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(ReadOnlyAdmin):
    list_display = ["name", "version", "spec_sha256", "created_by", "created_at"]
    list_filter = ["name"]
    search_fields = ["name"]


class StepRunInline(admin.TabularInline):
    model = StepRun
    fields = ["step_id", "map_index", "kind", "status", "attempt", "task", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(map_index=-1)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    list_display = ["run_id", "definition", "status", "priority", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["run_id", "definition__name"]
    inlines = [StepRunInline]


@admin.register(WorkflowEvent)
class WorkflowEventAdmin(ReadOnlyAdmin):
    list_display = ["run", "step_id", "map_index", "status", "attempt", "reason", "created_at"]

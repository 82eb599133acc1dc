"""The outbox in the admin: read-only events with the relay's lag above the list, and replays."""

from django.contrib import admin

from .lag import relay_lag
from .models import OutboxEvent, Replay


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request, model_admin):
        return [("no", "Waiting for the relay"), ("yes", "Published")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(published_at__isnull=self.value() == "no")
        return queryset


class ReadOnly(admin.ModelAdmin):
    """Events are written by the changes themselves and replays by the API: nothing to edit here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnly):
    list_display = ["position", "type", "aggregateid", "sequence", "created_at", "published_at"]
    list_filter = [PublishedFilter, "aggregatetype", "type"]
    search_fields = ["=aggregateid", "=event_id"]
    ordering = ["-position"]
    # Counting a large outbox for the paginator would cost more than the page itself.
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "relay": relay_lag()})


@admin.register(Replay)
class ReplayAdmin(ReadOnly):
    list_display = ["id", "created_at", "requested_by", "since", "until", "aggregateid", "published", "total"]
    list_display += ["finished_at"]

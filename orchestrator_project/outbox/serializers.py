from rest_framework import serializers

from orchestrator_project.validation import StrictFieldsMixin


class ReplaySerializer(StrictFieldsMixin, serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Events created at or after this time.")
    until = serializers.DateTimeField(required=False, help_text="Events created before this time.")
    aggregate_id = serializers.UUIDField(required=False, help_text="Only this task's or agent's events.")

    def validate(self, data):
        if "since" not in data and "aggregate_id" not in data:
            raise serializers.ValidationError(
                {"since": ["Give a window (since, and optionally until) or an aggregate_id."]}
            )
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return data


class ReplayAcceptedSerializer(serializers.Serializer):
    replay_id = serializers.IntegerField()
    events = serializers.IntegerField(help_text="How many published events the replay will send again.")
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    aggregate_id = serializers.UUIDField(allow_null=True)

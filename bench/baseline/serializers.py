from rest_framework import serializers

from .models import Job, Row


class RowSerializer(serializers.ModelSerializer):
    class Meta:
        model = Row
        fields = ["id", "type", "input_data", "created_at"]


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "type", "input_data", "created_at"]

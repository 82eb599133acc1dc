from django.urls import path

from .views import CreateJob, CreateRow, CreateRowRelaxed

urlpatterns = [
    path("baseline/rows", CreateRow.as_view()),
    path("baseline/rows-relaxed", CreateRowRelaxed.as_view()),
    path("baseline/jobs", CreateJob.as_view()),
]

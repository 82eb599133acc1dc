"""The database engine: django-prometheus' PostgreSQL backend (Django's psycopg backend, connections
counted), with its statements counted by db_metrics.counted instead of django-prometheus' heavier
cursor wrapper. The django_db_* series are the same."""

from django.db.backends.postgresql import base as postgresql
from django_prometheus.db.backends.postgresql import base as prometheus

from orchestrator_project.db_metrics import counted


class DatabaseWrapper(prometheus.DatabaseWrapper):
    def get_connection_params(self):
        params = postgresql.DatabaseWrapper.get_connection_params(self)  # without django-prometheus' wrapper
        params["cursor_factory"] = counted(params["cursor_factory"], self.alias, self.vendor)
        return params

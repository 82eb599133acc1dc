"""Counting database cursors in django-prometheus' django_db_* series, cheaply.

django-prometheus' own cursor wrapper costs 12-15 us of CPU per statement (two label lookups, a timer
object and a copied dict on every execute), half as much again as psycopg's own work for a prepared
statement (measured: 22 us bare), on paths that run several statements per request. This one looks its
series up once per cursor class and costs 3-5 us. Same series, same labels; used by the database engine
(orchestrator_project/database) and by the prepared hot statements (prepared.py).
"""

import time
from functools import cache

from django_prometheus.db import errors_total, execute_many_total, execute_total, query_duration_seconds


@cache
def counted(cursor_class, alias, vendor):
    """A subclass of `cursor_class` whose statements are counted and timed."""
    executions = execute_total.labels(alias, vendor)
    batched = execute_many_total.labels(alias, vendor)
    durations = query_duration_seconds.labels(alias, vendor)

    def error(exc):
        errors_total.labels(alias, vendor, type(exc).__name__).inc()

    class Counted(cursor_class):
        def execute(self, *args, **kwargs):
            executions.inc()
            started = time.perf_counter()
            try:
                return super().execute(*args, **kwargs)
            except Exception as exc:
                error(exc)
                raise
            finally:
                durations.observe(time.perf_counter() - started)

        def executemany(self, query, params_seq, *args, **kwargs):
            params_seq = params_seq if hasattr(params_seq, "__len__") else list(params_seq)
            executions.inc(len(params_seq))
            batched.inc(len(params_seq))
            started = time.perf_counter()
            try:
                return super().executemany(query, params_seq, *args, **kwargs)
            except Exception as exc:
                error(exc)
                raise
            finally:
                durations.observe(time.perf_counter() - started)

    Counted.__name__ = Counted.__qualname__ = f"Counted{cursor_class.__name__}"
    return Counted

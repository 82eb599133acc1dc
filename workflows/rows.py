"""The engine's rows without the ORM's per-query cost: reading (RowLoader) and writing back
(update_statement).

Django's bulk_update builds a CASE WHEN per field and row, which costs far more Python than the
database's work (a fifth of a busy worker's time in the chain benchmark). Here each field's new values
travel as one array parameter, whatever the number of rows. Reading is the same story on a smaller
scale: compiling a queryset cost more than running it.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import JSONField

from orchestrator_project.pg_arrays import array_literal


def execute_statement(statement):
    """Run a statement of update_statement's (None: nothing to write)."""
    if statement is not None:
        with connection.cursor() as cursor:
            cursor.execute(*statement)


def update_statement(model, objects, fields, *, changed=None, name="u"):
    """The UPDATE that writes `fields` (names or attnames) of `objects`, already saved rows of `model`,
    in one statement: (sql, named parameters), or None without objects. Run it with execute_statement,
    or as part of another statement (events.flush_journals' `along`): the parameters are named
    `name`0, `name`1, ..., so statements of different names can be written as one.

    `changed`, when given, is each object's own set of the `fields` it changed: a row keeps its value of
    the others, which are not read from the object (they may be deferred, and reading one would cost a
    query). So rows that changed different fields still take one statement."""
    if not objects:
        return None
    meta = model._meta
    columns, arrays, types, values = [], [[obj.pk for obj in objects]], [_array_type(meta.pk)], []
    # (a foreign key's db_type is its target's: a task id travels as uuid[])
    for field_name in fields:
        field = meta.get_field(field_name)
        written = [changed is None or field_name in changed[i] for i in range(len(objects))]
        raw = [getattr(obj, field.attname) if written[i] else None for i, obj in enumerate(objects)]
        if isinstance(field, JSONField):
            arrays.append([None if v is None else json.dumps(v, cls=DjangoJSONEncoder) for v in raw])
            types.append("text[]")
            value = f"v.{field.column}::jsonb"
        else:
            arrays.append([field.get_db_prep_save(v, connection) for v in raw])
            types.append(_array_type(field))
            value = f"v.{field.column}"
        columns.append(field.column)
        if not all(written):
            arrays.append(written)
            types.append("boolean[]")
            columns.append(f"set_{field.column}")
            value = f"CASE WHEN v.set_{field.column} THEN {value} ELSE t.{field.column} END"
        values.append((field.column, value))
    table = meta.db_table
    unnest = ", ".join(f"%({name}{i})s::{t}" for i, t in enumerate(types))
    names = ", ".join(["pk_", *columns])
    assignments = ", ".join(f"{column} = {value}" for column, value in values)
    sql = (
        f"UPDATE {table} AS t SET {assignments} FROM unnest({unnest}) AS v({names})"
        f" WHERE t.{meta.pk.column} = v.pk_"
    )
    return sql, {f"{name}{i}": array_literal(values) for i, values in enumerate(arrays)}


def _array_type(field):
    return f"{field.db_type(connection)}[]"


class RowLoader:
    """Model instances from a raw SELECT of a model's columns but `deferred`, as the ORM makes them
    (the deferred fields are read on first access, converters such as JSON decoding applied), for a
    statement written once instead of a queryset compiled at every call: locking a batch's runs and
    reading their steps cost 2.5 ms of Python per batch that way, most of it compiling."""

    def __init__(self, model, *, deferred=()):
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if f.name not in deferred]
        self.columns = ", ".join(f.column for f in self.fields)  # in this order, in the SELECT
        self._attnames = [f.attname for f in self.fields]
        self._converters = None

    def instances(self, rows):
        if self._converters is None:  # the ORM's: the backend's, then the field's own
            self._converters = [
                (i, field.cached_col, convert)
                for i, field in enumerate(self.fields)
                for convert in (
                    *connection.ops.get_db_converters(field.cached_col),
                    *field.cached_col.get_db_converters(connection),
                )
            ]
        made = []
        for row in rows:
            values = list(row)
            for i, expression, convert in self._converters:
                values[i] = convert(values[i], expression, connection)
            made.append(self.model.from_db(connection.alias, self._attnames, values))
        return made

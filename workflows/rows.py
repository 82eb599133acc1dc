"""Writing changed rows back: one UPDATE ... FROM unnest(...) per set of changed fields.

Django's bulk_update builds a CASE WHEN per field and row, which costs far more Python than the
database's work (a fifth of a busy worker's time in the chain benchmark). Here each field's new values
travel as one array parameter, whatever the number of rows.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import JSONField


def update_rows(model, objects, fields):
    """Write `fields` (names or attnames) of `objects`, already saved rows of `model`, in one statement."""
    if not objects:
        return
    meta = model._meta
    columns, arrays, types, values = [], [[obj.pk for obj in objects]], [_array_type(meta.pk)], []
    # (a foreign key's db_type is its target's: a task id travels as uuid[])
    for name in fields:
        field = meta.get_field(name)
        raw = [getattr(obj, field.attname) for obj in objects]
        if isinstance(field, JSONField):
            arrays.append([None if v is None else json.dumps(v, cls=DjangoJSONEncoder) for v in raw])
            types.append("text[]")
            values.append(f"v.{field.column}::jsonb")
        else:
            arrays.append([field.get_db_prep_save(v, connection) for v in raw])
            types.append(_array_type(field))
            values.append(f"v.{field.column}")
        columns.append(field.column)
    table = meta.db_table
    unnest = ", ".join(f"%s::{t}" for t in types)
    names = ", ".join(["pk_", *columns])
    assignments = ", ".join(f"{column} = {value}" for column, value in zip(columns, values, strict=True))
    sql = (
        f"UPDATE {table} AS t SET {assignments} FROM unnest({unnest}) AS v({names})"
        f" WHERE t.{meta.pk.column} = v.pk_"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)


def _array_type(field):
    return f"{field.db_type(connection)}[]"

"""Workflow definitions: validate, and store immutable versions.

`validate_definition` and `create_definition` are what the API (and the admin) call. A definition is
never edited: posting a different spec under the same name makes the next version, posting the same
spec again returns the version that has it.
"""

from django.db import connection, transaction
from rest_framework import serializers

from agents import offered
from orchestrator_project.errors import InvalidInput, NotFound
from orchestrator_project.prepared import prepared_cursor
from orchestrator_project.validation import check_json

from . import spec as specs
from .models import StepKind, WorkflowDefinition


def _unknown_capability_warnings(steps):
    """Steps whose tasks no registered agent can serve yet: a warning (the agent may register later)."""
    return offered.warnings(
        [
            (f"spec.steps[{index}].required_capabilities", step["required_capabilities"])
            for index, step in enumerate(steps)
            if step["type"] in (StepKind.TASK, StepKind.MAP)
        ]
    )


def _pin_sub_workflows(steps):
    """Check that each sub-workflow step's workflow exists, and pin a step that names no version to
    the latest version there is now: the version is then part of the stored spec (and its hash), so
    the definition stays immutable and its runs never pick up a later version of the child. Returns
    the field errors."""
    errors = {}
    for where, step in steps:
        name, version = step["workflow"], step["version"]
        found = WorkflowDefinition.objects.filter(name=name)
        found = found.filter(version=version) if version is not None else found.order_by("-version")
        version_found = found.values_list("version", flat=True).first()
        if version_found is None:
            missing = f"No workflow {name!r}" + (f" version {version}." if version is not None else ".")
            errors[f"spec.{where}.workflow"] = [missing]
        step["version"] = version_found
    return errors


def validate_definition(*, spec):
    """Check a spec. Returns (normalized spec, warnings); raises InvalidInput with field errors
    (keys like `spec.steps[2].depends_on`). Warnings are dicts of field and message."""
    checked = specs.check(spec)
    errors = {
        f"spec.{where}" if where != "spec" else where: messages for where, messages in checked.errors.items()
    }
    if not errors:
        try:
            check_json(checked.spec)  # text Postgres could not store (NUL characters)
        except serializers.ValidationError as exc:
            errors["spec"] = [str(m) for m in exc.detail]
    if not errors:
        errors.update(_pin_sub_workflows(checked.workflows))
    if errors:
        raise InvalidInput(errors)
    return checked.spec, _unknown_capability_warnings(checked.spec["steps"])


def create_definition(*, name, spec, description=None, user=None):
    """Store a spec as the next version of `name`. Returns (definition, created, warnings); the same
    spec posted again returns its existing version with created False (and a warning if it came with
    another description: None is none given)."""
    normalized, warnings = validate_definition(spec=spec)
    sha = specs.canonical_sha256(normalized)
    existing = WorkflowDefinition.objects.filter(name=name, spec_sha256=sha).first()
    if existing is not None:
        return existing, False, warnings + _kept_description(existing, description)
    with transaction.atomic():
        # Versions of one name are numbered one at a time (the lock lasts until the commit); other
        # names are not held up.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('workflow:' || %s))", [name])
        existing = WorkflowDefinition.objects.filter(name=name, spec_sha256=sha).first()
        if existing is not None:
            return existing, False, warnings + _kept_description(existing, description)
        latest = WorkflowDefinition.objects.latest(name)
        definition = WorkflowDefinition.objects.create(
            name=name,
            version=(latest.version + 1) if latest else 1,
            description=description or "",
            spec=normalized,
            spec_sha256=sha,
            created_by=user if user is not None and user.pk else None,
        )
    return definition, True, warnings


def _kept_description(existing, description):
    """A spec posted again with another description returns its version unchanged (versions never
    change): say so, rather than answer as if the new description had been stored."""
    if description is None or description == existing.description:
        return []
    return [
        {
            "field": "description",
            "message": f"Not changed: this spec is version {existing.version}, stored with its own "
            "description (a version never changes). Change the spec to publish a new version.",
        }
    ]


# Definitions never change, so each process reads one once (bounded: cleared when full).
_CACHE = {}
_CACHE_KEPT = 1000
_TABLE = WorkflowDefinition._meta.db_table
_LATEST_SQL = f"SELECT definition_id FROM {_TABLE} WHERE name = %s ORDER BY version DESC LIMIT 1"
_VERSION_SQL = f"SELECT definition_id FROM {_TABLE} WHERE name = %s AND version = %s"


def cached_definitions(ids):
    """The definitions of these ids, from the process's cache, reading the missing ones in one query.
    Shared between callers: read them, never change them."""
    missing = [pk for pk in ids if pk not in _CACHE]
    if missing:
        if len(_CACHE) >= _CACHE_KEPT:
            _CACHE.clear()
        _CACHE.update((d.pk, d) for d in WorkflowDefinition.objects.filter(pk__in=missing))
    return {pk: _CACHE[pk] for pk in ids}


def get_definition(*, name, version=None):
    """The given version of `name`, or its latest. NotFound if there is none.

    Only the id is read (one indexed, prepared statement); the definition comes from the process's
    cache: a run's start read and decoded the whole spec every time, a sixth of its CPU."""
    with prepared_cursor() as cursor:
        if version is None:
            cursor.execute(_LATEST_SQL, [name])
        else:
            cursor.execute(_VERSION_SQL, [name, version])
        row = cursor.fetchone()
    if row is None:
        raise NotFound(f"No workflow {name!r}" + (f" version {version}." if version is not None else "."))
    return cached_definitions([row[0]])[row[0]]

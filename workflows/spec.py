"""A workflow spec's validation: shape, references, cycles, data paths and limits, with field errors.

`check(spec)` returns the spec with every default filled in (what is stored, hashed and run) and the
errors keyed by where they are (`steps[2].depends_on`). It is pure and linear in the spec's size, and
checks the byte size and the step count before anything else, so a hostile spec (10,000 steps, deep
nesting, huge templates) is refused quickly. What needs the database (capabilities that no agent
offers, sub-workflows that do not exist, the version a sub-workflow step without one is pinned to) is
definitions.py's.

A spec:

    {"defaults": {"timeout_seconds": 60, "max_retries": 3},
     "steps": [{"id": "plan", "task_type": "plan", "input": {"topic": {"$path": "$.input.topic"}}},
               {"id": "research", "type": "map", "depends_on": ["plan"], "task_type": "research",
                "over": {"$path": "$.steps.plan.output.items"}, "input": {"q": {"$path": "$.item"}}}],
     "output": {"report": {"$path": "$.steps.research.output"}}}
"""

import hashlib
import json
import re
from dataclasses import dataclass, field

from django.conf import settings

from orchestrator_project.validation import MAX_JSON_DEPTH, unstorable_text

from . import conditions, paths
from .models import StepKind

STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,99}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}")
TRIGGERS = ("all_success", "all_done", "none_failed")
ON_TIMEOUT = ("approve", "reject")
_TASK_FIELDS = {"task_type", "required_capabilities", "priority", "timeout_seconds", "max_retries", "input"}
_COMMON = {"id", "type", "depends_on", "trigger", "description"}
ALLOWED = {
    StepKind.TASK: _COMMON | _TASK_FIELDS,
    StepKind.MAP: _COMMON | _TASK_FIELDS | {"over", "max_concurrency", "min_success_ratio"},
    StepKind.CONDITION: _COMMON | {"when"},
    StepKind.APPROVAL: _COMMON | {"timeout_seconds", "on_timeout", "input"},
    StepKind.WORKFLOW: _COMMON | {"workflow", "version", "input"},
}
DEFAULT_KEYS = {"timeout_seconds", "max_retries", "priority"}
APPROVAL_DEFAULT_TIMEOUT = 24 * 3600


@dataclass
class Checked:
    spec: dict
    errors: dict = field(default_factory=dict)
    # (where, normalized step) of every sub-workflow step: the caller looks its workflow up in the
    # database, and pins the step's version to the latest when the spec names none.
    workflows: list = field(default_factory=list)

    def error(self, where, message):
        self.errors.setdefault(where, []).append(message)


def canonical_sha256(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _depth(value):
    """Nesting depth, iteratively (a deep document must not cost a deep Python stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _int(checked, where, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        checked.error(where, f"Must be an integer from {low} to {high}.")
        return False
    return True


def check(spec):
    """Validate a spec; returns Checked (the normalized spec, and errors: empty when valid)."""
    checked = Checked(spec={})
    if not isinstance(spec, dict):
        checked.error("spec", "Must be an object with 'steps'.")
        return checked
    try:
        size = len(json.dumps(spec, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError):
        checked.error("spec", "Must be plain JSON.")
        return checked
    if size > settings.WORKFLOW_SPEC_MAX_BYTES:
        checked.error("spec", f"Is {size} bytes; the limit is {settings.WORKFLOW_SPEC_MAX_BYTES} bytes.")
        return checked
    if _depth(spec) > MAX_JSON_DEPTH:
        checked.error("spec", f"Is nested deeper than {MAX_JSON_DEPTH} levels.")
        return checked
    unknown = set(spec) - {"steps", "defaults", "output"}
    for key in sorted(unknown):
        checked.error(key, "Unknown field; a spec has steps, defaults and output.")
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        checked.error("steps", "Must be a non-empty list of steps.")
        return checked
    if len(steps) > settings.WORKFLOW_MAX_STEPS:
        checked.error("steps", f"Has {len(steps)} steps; the limit is {settings.WORKFLOW_MAX_STEPS}.")
        return checked
    defaults = _defaults(checked, spec.get("defaults", {}))
    normalized = [_step(checked, f"steps[{i}]", raw, defaults) for i, raw in enumerate(steps)]
    if checked.errors:
        return checked
    ids = {}
    for index, step in enumerate(normalized):
        if step["id"] in ids:
            checked.error(
                f"steps[{index}].id", f"Duplicate step id {step['id']!r} (also steps[{ids[step['id']]}])."
            )
        ids.setdefault(step["id"], index)
    for index, step in enumerate(normalized):
        for parent in step["depends_on"]:
            if parent not in ids:
                checked.error(f"steps[{index}].depends_on", f"Unknown step {parent!r}.")
            elif parent == step["id"]:
                checked.error(f"steps[{index}].depends_on", "A step cannot depend on itself.")
    if checked.errors:
        return checked
    cycle = _find_cycle(normalized)
    if cycle:
        checked.error("steps", "The steps form a cycle: " + " -> ".join(cycle) + ".")
        return checked
    ancestors = _ancestors(normalized)
    for index, step in enumerate(normalized):
        _check_data(checked, f"steps[{index}]", step, ancestors[step["id"]])
    output = spec.get("output")
    if output is not None:
        _check_refs(checked, "output", output, set(ids), in_map=False)
    checked.spec = {"defaults": defaults, "steps": normalized}
    if output is not None:
        checked.spec["output"] = output
    return checked


def _defaults(checked, raw):
    defaults = {"timeout_seconds": settings.TASK_DEFAULT_TIMEOUT, "max_retries": settings.TASK_MAX_RETRIES}
    if not isinstance(raw, dict):
        checked.error("defaults", "Must be an object.")
        return defaults
    for key in sorted(set(raw) - DEFAULT_KEYS):
        checked.error(
            f"defaults.{key}", "Unknown field; defaults are timeout_seconds, max_retries, priority."
        )
    limits = {"timeout_seconds": (1, 86400), "max_retries": (0, 100), "priority": (1, 10)}
    for key, (low, high) in limits.items():
        if key in raw and _int(checked, f"defaults.{key}", raw[key], low, high):
            defaults[key] = raw[key]
    return defaults


def _step(checked, where, raw, defaults):
    if not isinstance(raw, dict):
        checked.error(where, "Must be an object.")
        return None
    kind = raw.get("type", StepKind.TASK)
    if kind not in StepKind.values:
        checked.error(f"{where}.type", f"Must be one of: {', '.join(StepKind.values)}.")
        return None
    for key in sorted(set(raw) - ALLOWED[kind]):
        checked.error(f"{where}.{key}", f"Unknown field for a {kind} step.")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id):
        checked.error(
            f"{where}.id", "Required: letters, digits, _ and -, starting with a letter or _, at most 100."
        )
    depends_on = raw.get("depends_on", [])
    if not isinstance(depends_on, list) or not all(isinstance(p, str) for p in depends_on):
        checked.error(f"{where}.depends_on", "Must be a list of step ids.")
        depends_on = []
    elif len(set(depends_on)) != len(depends_on):
        checked.error(f"{where}.depends_on", "Lists a step twice.")
    trigger = raw.get("trigger", "all_success")
    if trigger not in TRIGGERS:
        checked.error(f"{where}.trigger", f"Must be one of: {', '.join(TRIGGERS)}.")
    step = {"id": step_id, "type": kind, "depends_on": depends_on, "trigger": trigger}
    if "description" in raw:
        if not isinstance(raw["description"], str) or len(raw["description"]) > 2000:
            checked.error(f"{where}.description", "Must be text of at most 2000 characters.")
        step["description"] = raw["description"]
    if kind in (StepKind.TASK, StepKind.MAP):
        _task_fields(checked, where, raw, step, defaults)
    if kind == StepKind.MAP:
        over = raw.get("over")
        if not (isinstance(over, dict) and set(over) == {paths.PATH}):
            checked.error(f"{where}.over", 'Required: {"$path": "..."} naming the list to map over.')
        step["over"] = over
        step["max_concurrency"] = raw.get("max_concurrency", 10)
        _int(checked, f"{where}.max_concurrency", step["max_concurrency"], 1, 1000)
        ratio = raw.get("min_success_ratio", 1.0)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            checked.error(f"{where}.min_success_ratio", "Must be a number from 0 to 1.")
        step["min_success_ratio"] = ratio
    elif kind == StepKind.CONDITION:
        if "when" not in raw:
            checked.error(f"{where}.when", "Required: the condition to evaluate.")
        step["when"] = raw.get("when")
    elif kind == StepKind.APPROVAL:
        step["timeout_seconds"] = raw.get("timeout_seconds", APPROVAL_DEFAULT_TIMEOUT)
        _int(checked, f"{where}.timeout_seconds", step["timeout_seconds"], 1, 30 * 86400)
        step["on_timeout"] = raw.get("on_timeout", "reject")
        if step["on_timeout"] not in ON_TIMEOUT:
            checked.error(f"{where}.on_timeout", "Must be 'approve' or 'reject'.")
        step["input"] = raw.get("input", {})
    elif kind == StepKind.WORKFLOW:
        name, version = raw.get("workflow"), raw.get("version")
        step.update(workflow=name, version=version, input=raw.get("input", {}))
        named = isinstance(name, str) and NAME.fullmatch(name) is not None
        if not named:
            checked.error(f"{where}.workflow", "Required: the name of the workflow to run.")
        # No version: the latest, pinned when the definition is created (definitions.py).
        version_ok = version is None or _int(checked, f"{where}.version", version, 1, 2**31 - 1)
        if named and version_ok:
            checked.workflows.append((where, step))
    return step


def _task_fields(checked, where, raw, step, defaults):
    task_type = raw.get("task_type")
    if not isinstance(task_type, str) or not NAME.fullmatch(task_type):
        checked.error(f"{where}.task_type", "Required: the task type (letters, digits and _ . : / -).")
    capabilities = raw.get("required_capabilities", [task_type])
    if (
        not isinstance(capabilities, list)
        or not 1 <= len(capabilities) <= 50
        or not all(isinstance(c, str) and NAME.fullmatch(c) for c in capabilities)
    ):
        checked.error(f"{where}.required_capabilities", "Must be 1 to 50 capability names.")
    step["task_type"] = task_type
    step["required_capabilities"] = capabilities
    for key, (low, high) in {
        "timeout_seconds": (1, 86400),
        "max_retries": (0, 100),
        "priority": (1, 10),
    }.items():
        if key in raw:
            _int(checked, f"{where}.{key}", raw[key], low, high)
            step[key] = raw[key]
        elif key in defaults:
            step[key] = defaults[key]
    step["input"] = raw.get("input", {})


def _find_cycle(steps):
    """One cycle as a list of ids (first repeated at the end), or None. Iterative DFS."""
    children = {step["id"]: [] for step in steps}
    for step in steps:
        for parent in step["depends_on"]:
            children[parent].append(step["id"])
    state = dict.fromkeys(children, 0)  # 0 unseen, 1 on the current path, 2 done
    for start in children:
        if state[start]:
            continue
        path, stack = [], [(start, iter(children[start]))]
        state[start] = 1
        path.append(start)
        while stack:
            node, remaining = stack[-1]
            child = next(remaining, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state[child] == 1:
                return [*path[path.index(child) :], child]
            elif state[child] == 0:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(children[child])))
    return None


def topological_order(steps):
    """Step ids, parents before children (the spec is acyclic)."""
    remaining = {step["id"]: len(step["depends_on"]) for step in steps}
    children = {step["id"]: [] for step in steps}
    for step in steps:
        for parent in step["depends_on"]:
            children[parent].append(step["id"])
    ready = [step_id for step_id, count in remaining.items() if count == 0]
    order = []
    while ready:
        step_id = ready.pop()
        order.append(step_id)
        for child in children[step_id]:
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    return order


def _ancestors(steps):
    by_id = {step["id"]: step for step in steps}
    ancestors = {}
    for step_id in topological_order(steps):
        found = set()
        for parent in by_id[step_id]["depends_on"]:
            found |= ancestors[parent] | {parent}
        ancestors[step_id] = found
    return ancestors


def _check_data(checked, where, step, upstream):
    in_map = step["type"] == StepKind.MAP
    if "input" in step:
        _check_refs(checked, f"{where}.input", step["input"], upstream, in_map=in_map)
    if in_map and isinstance(step.get("over"), dict):
        _check_refs(checked, f"{where}.over", step["over"], upstream, in_map=False)
    if step["type"] == StepKind.CONDITION and "when" in step:
        errors, read = conditions.check(step["when"])
        for message in errors:
            checked.error(f"{where}.when", f"The condition {message}.")
        for path in read:
            _check_path(checked, f"{where}.when", path, upstream, in_map=False)


def _check_refs(checked, where, value, upstream, *, in_map):
    for marker, holder in paths.references(value):
        if set(holder) != {marker}:
            checked.error(where, f"An object with {marker!r} must have no other keys.")
            continue
        text = holder[marker]
        if marker == paths.TEMPLATE:
            if not isinstance(text, str):
                checked.error(where, "A $template must be a string.")
                continue
            if len(text.encode()) > settings.WORKFLOW_TEMPLATE_MAX_BYTES:
                checked.error(
                    where, f"A $template is longer than {settings.WORKFLOW_TEMPLATE_MAX_BYTES} bytes."
                )
                continue
            if problem := unstorable_text(text):
                checked.error(where, f"A $template {problem}.")
                continue
            try:
                found = paths.template_paths(text)
            except paths.PathError as exc:
                checked.error(where, f"Template placeholder {exc}.")
                continue
        else:
            try:
                found = [paths.parse(text)]
            except paths.PathError as exc:
                checked.error(where, f"Path {exc}.")
                continue
        for path in found:
            _check_path(checked, where, path, upstream, in_map=in_map)


def _check_path(checked, where, path, upstream, *, in_map):
    if path.root in ("item", "index") and not in_map:
        checked.error(where, f"{path.text}: $.item and $.index are only for a map step's input.")
    if path.step is not None and path.step not in upstream:
        checked.error(
            where,
            f"{path.text} reads step {path.step!r}, which is not upstream of this step (see depends_on).",
        )

"""Data passing: `{"$path": "$.steps.plan.output.items"}` (a typed value) and
`{"$template": "Summarise {{ $.input.topic }}"}` (a string), resolved when a step becomes ready.

Paths are a deliberately small, documented subset of JSONPath: `$` followed by `.name`, `[n]` (an
index into a list; negative counts from the end) or `["any key"]`, nothing else (no wildcards,
filters, slices or recursive descent). Every path therefore names at most one value, can be parsed and
checked when a definition is created (which step it reads, whether that step is upstream), and costs
a few dictionary look-ups to resolve. The roots are `$.input` (the run's input), `$.steps.<id>.output`
(or `.status`, `.error`) of an upstream step, and in a map step's input `$.item` and `$.index`.

A path that does not resolve at run time (a missing key, an index out of range) fails the step with
a message naming the path and where it stopped.
"""

import json
import re
from dataclasses import dataclass

PATH = "$path"
TEMPLATE = "$template"
ROOTS = ("input", "steps", "item", "index")
STEP_FIELDS = ("output", "status", "error")
MAX_PATH_LENGTH = 500
MAX_SEGMENTS = 32
_TOKEN = re.compile(r'\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d{1,9})\]|\["((?:[^"\\]|\\.)*)"\]')
_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")


class PathError(ValueError):
    """A path that is malformed, or that did not resolve against the data."""


@dataclass(frozen=True)
class Path:
    text: str
    segments: tuple  # str keys and int indices, after the `$`

    @property
    def root(self):
        return self.segments[0]

    @property
    def step(self):
        """The step id a `$.steps.<id>...` path reads, else None."""
        return self.segments[1] if self.root == "steps" else None


def parse(text):
    """Parse a path; raises PathError saying what is wrong."""
    if not isinstance(text, str):
        raise PathError("must be a string")
    if len(text) > MAX_PATH_LENGTH:
        raise PathError(f"is longer than {MAX_PATH_LENGTH} characters")
    if not text.startswith("$"):
        raise PathError(f"{text!r} must start with '$'")
    segments, position = [], 1
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PathError(
                f'{text!r} is not a supported path at character {position + 1}: use .name, [n] or ["key"]'
            )
        name, index, quoted = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append(int(index))
        else:
            segments.append(json.loads(f'"{quoted}"'))
        position = match.end()
        if len(segments) > MAX_SEGMENTS:
            raise PathError(f"{text!r} has more than {MAX_SEGMENTS} parts")
    if not segments or segments[0] not in ROOTS:
        raise PathError(f"{text!r} must start with one of: " + ", ".join(f"$.{root}" for root in ROOTS))
    if segments[0] == "steps":
        if len(segments) < 3 or not isinstance(segments[1], str) or segments[2] not in STEP_FIELDS:
            raise PathError(f"{text!r} must read $.steps.<step id>.output (or .status, .error)")
    if segments[0] == "index" and len(segments) > 1:
        raise PathError(f"{text!r}: $.index is a number and has no parts")
    return Path(text, tuple(segments))


def resolve(path, context):
    """The value `path` names in `context` ({"input": ..., "steps": {id: {...}}, "item": ..., ...})."""
    value = context
    walked = "$"
    for segment in path.segments:
        if isinstance(segment, int):
            if not isinstance(value, list) or not -len(value) <= segment < len(value):
                size = f"a list of {len(value)}" if isinstance(value, list) else _kind(value)
                raise PathError(f"{path.text}: {walked} is {size}, which has no index {segment}")
            value = value[segment]
            walked += f"[{segment}]"
        else:
            if not isinstance(value, dict) or segment not in value:
                what = "has no key" if isinstance(value, dict) else f"is {_kind(value)}, not an object with"
                raise PathError(f"{path.text}: {walked} {what} {segment!r}")
            value = value[segment]
            walked += f".{segment}"
    return value


def _kind(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def template_paths(text):
    """The paths of a template's `{{ ... }}` placeholders (PathError for a malformed one)."""
    return [parse(expression) for expression in _PLACEHOLDER.findall(text)]


def render(text, context):
    """A template with each placeholder replaced: strings as they are, anything else as JSON."""

    def value(match):
        resolved = resolve(parse(match.group(1)), context)
        return resolved if isinstance(resolved, str) else json.dumps(resolved, separators=(",", ":"))

    return _PLACEHOLDER.sub(value, text)


def references(value):
    """Every (kind, path text, Path or PathError) in a step input: kind is "$path" or "$template"."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if PATH in item or TEMPLATE in item:
                marker = PATH if PATH in item else TEMPLATE
                yield marker, item
                continue
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def resolve_value(value, context):
    """A step input with every $path and $template replaced by its value (PathError if one fails)."""
    if isinstance(value, dict):
        if PATH in value:
            return resolve(parse(value[PATH]), context)
        if TEMPLATE in value:
            return render(value[TEMPLATE], context)
        return {key: resolve_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_value(item, context) for item in value]
    return value

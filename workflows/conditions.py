"""A condition step's `when`: a small JSON expression over the run's input and earlier outputs.

    {"path": "$.steps.review.output.score", "op": "gte", "value": 0.8}
    {"all": [expr, ...]}   {"any": [expr, ...]}   {"not": expr}

ops: eq, ne, gt, gte, lt, lte, in, not_in, contains, exists, truthy, falsy. `exists` is true when the
path resolves; every other comparison on a path that does not resolve fails the step, saying so.
No string expressions to parse or evaluate: nothing to inject.
"""

import operator

from . import paths

MAX_DEPTH = 8
MAX_TERMS = 100
_COMPARE = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda left, right: left in right,
    "not_in": lambda left, right: left not in right,
    "contains": lambda left, right: right in left,
}
_UNARY = ("exists", "truthy", "falsy")
OPS = (*_COMPARE, *_UNARY)


def check(expression, depth=0, terms=None):
    """Errors of a `when` expression (strings), and the Paths it reads: (errors, paths)."""
    terms = terms if terms is not None else [0]
    terms[0] += 1
    if terms[0] > MAX_TERMS:
        return [f"has more than {MAX_TERMS} terms"], []
    if depth > MAX_DEPTH:
        return [f"is nested deeper than {MAX_DEPTH} levels"], []
    if not isinstance(expression, dict):
        return ["must be an object: {path, op, value}, {all: [...]}, {any: [...]} or {not: ...}"], []
    for combinator in ("all", "any"):
        if combinator in expression:
            parts = expression[combinator]
            if set(expression) != {combinator} or not isinstance(parts, list) or not parts:
                return [f"'{combinator}' takes a non-empty list of expressions and nothing else"], []
            errors, read = [], []
            for part in parts:
                more_errors, more_paths = check(part, depth + 1, terms)
                errors += more_errors
                read += more_paths
            return errors, read
    if "not" in expression:
        if set(expression) != {"not"}:
            return ["'not' takes one expression and nothing else"], []
        return check(expression["not"], depth + 1, terms)
    unknown = set(expression) - {"path", "op", "value"}
    if unknown:
        return [f"unknown keys: {', '.join(sorted(unknown))}"], []
    op = expression.get("op")
    if op not in OPS:
        return [f"'op' must be one of: {', '.join(OPS)}"], []
    if op in _COMPARE and "value" not in expression:
        return [f"'{op}' needs a 'value'"], []
    try:
        path = paths.parse(expression.get("path"))
    except paths.PathError as exc:
        return [f"path {exc}"], []
    return [], [path]


def evaluate(expression, context):
    """True or False; raises paths.PathError when a compared path does not resolve, TypeError when the
    values cannot be compared (a number against a string, say)."""
    if "all" in expression:
        return all(evaluate(part, context) for part in expression["all"])
    if "any" in expression:
        return any(evaluate(part, context) for part in expression["any"])
    if "not" in expression:
        return not evaluate(expression["not"], context)
    path = paths.parse(expression["path"])
    op = expression["op"]
    if op == "exists":
        try:
            paths.resolve(path, context)
        except paths.PathError:
            return False
        return True
    value = paths.resolve(path, context)
    if op == "truthy":
        return bool(value)
    if op == "falsy":
        return not value
    return bool(_COMPARE[op](value, expression["value"]))

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


def same(left, right):
    """JSON's equality: `true` is not `1` and `false` is not `0`, though Python's bool is an int."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(value, right[key]) for key, value in left.items())
    return left == right


def _ordered(compare):
    """gt, gte, lt, lte: numbers with numbers, strings with strings. Anything else (a boolean, a number
    against a string) raises TypeError, which fails the step."""

    def ordered(left, right):
        if isinstance(left, bool) or isinstance(right, bool):
            raise TypeError(f"a boolean has no order ({left!r} and {right!r})")
        return compare(left, right)

    return ordered


def member(item, collection):
    """`in`: an element of a list (by `same`), a key of an object, or a substring of a string."""
    if isinstance(collection, list):
        return any(same(item, element) for element in collection)
    if isinstance(collection, dict):
        return isinstance(item, str) and item in collection
    if isinstance(collection, str):
        if not isinstance(item, str):
            raise TypeError(f"only a string can be in a string, not {item!r}")
        return item in collection
    raise TypeError(f"nothing can be in {collection!r}: it is not a list, an object or a string")


_COMPARE = {
    "eq": same,
    "ne": lambda left, right: not same(left, right),
    "gt": _ordered(operator.gt),
    "gte": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "lte": _ordered(operator.le),
    "in": member,
    "not_in": lambda left, right: not member(left, right),
    "contains": lambda left, right: member(right, left),
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

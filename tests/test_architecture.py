"""The app boundaries of docs/development.md ("Architecture"), checked on the source itself.

Layers, bottom to top: the core (orchestrator_project, but for the modules that wire the project
together), agents, tasks, workflows, monitoring, and the project's wiring. A module imports only from its own
layer and those below it; the layers below learn about the ones above through signals and hooks that
the upper ones connect in AppConfig.ready().
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The project's wiring: it names every app (URLs, ASGI routing, settings, the Celery app, make run).
WIRING = {
    "orchestrator_project",  # loads the Celery app, as Celery's Django set-up does
    "orchestrator_project.urls",
    "orchestrator_project.asgi",
    "orchestrator_project.settings",
    "orchestrator_project.celery",
    "orchestrator_project.runstack",
}
LAYERS = ["core", "agents", "tasks", "workflows", "monitoring", "wiring"]
# Imports inside a function body are for Django's app registry (AppConfig.ready) and for code that runs
# before Django is set up (make run's launcher, the embedded servers, the settings themselves).
LATE_IMPORTS_ALLOWED_IN = {
    "orchestrator_project.runstack",
    "orchestrator_project.embedded",
    "orchestrator_project.settings",
}


LAYERS_OF = {"agents", "tasks", "workflows", "monitoring", "orchestrator_project"}


def _modules():
    for path in sorted(ROOT.glob("**/*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] not in ("agents", "tasks", "workflows", "monitoring", "orchestrator_project"):
            continue
        if "migrations" in relative.parts:
            continue
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        yield name, path


def _layer(module):
    if module in WIRING:
        return "wiring"
    top = module.split(".")[0]
    return "core" if top == "orchestrator_project" else top


def _imports(name, path):
    """(imported module, line, enclosing function or None) for every import of the project's apps."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(filter(None, [*base, child.module or ""]))
                else:
                    target = child.module
                # `from package import module` imports the module, not the package's __init__.
                for alias in child.names:
                    submodule = f"{target}.{alias.name}"
                    found.append((submodule if submodule in MODULES else target, child.lineno, function))
            visit(child, function)

    visit(tree, None)
    return [(target, line, function) for target, line, function in found if target.split(".")[0] in LAYERS_OF]


MODULES = dict(_modules())


def test_the_checked_tree_is_the_real_one():
    assert {
        "agents.capacity",
        "tasks.engine.claim",
        "monitoring.apps",
        "workflows.engine",
        "orchestrator_project.live",
        "orchestrator_project.outbox.writer",
    } <= set(MODULES)


def test_the_outbox_is_in_the_core_so_agents_and_tasks_write_events_without_looking_up():
    # agents and tasks add the outbox INSERT to their own statements: the writer must sit below them.
    assert _layer("orchestrator_project.outbox.writer") == "core"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_own_layer_and_below(module):
    own = LAYERS.index(_layer(module))
    upward = [
        f"{module}:{line} imports {target}"
        for target, line, _ in _imports(module, MODULES[module])
        if LAYERS.index(_layer(target)) > own
    ]
    assert upward == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_inside_functions_are_only_for_the_app_registry(module):
    if module in LATE_IMPORTS_ALLOWED_IN:
        return
    late = [
        f"{module}:{line} imports {target} inside {function}()"
        for target, line, function in _imports(module, MODULES[module])
        if function is not None and not (module.endswith(".apps") and function == "ready")
    ]
    assert late == []


def test_agents_never_import_tasks():
    offenders = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        if module.startswith("agents")
        for target, line, _ in _imports(module, path)
        if target.startswith(("tasks", "monitoring"))
    ]
    assert offenders == []


def test_tasks_never_import_workflows():
    offenders = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        if module.startswith(("tasks", "agents"))
        for target, line, _ in _imports(module, path)
        if target.startswith("workflows")
    ]
    assert offenders == []

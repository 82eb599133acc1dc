"""The workflow engine: which step becomes ready when, decided under a row lock on its run.

Everything that changes a run goes through an `Advance`: it locks the run's row (locks are per run,
never global), loads the run's steps, applies what happened (a step's task ended, an approval was
decided, a run started, was resumed or retried) and commits it all in the caller's transaction:

- the join counters: when a step ends, its children's `remaining_parents` (and a map's
  `remaining_items` when one of its items ends) are decremented by a guarded UPDATE ... RETURNING;
  the step whose counter reaches 0 is decided then, never by polling;
- a decided step runs (its input resolved now: paths.py), is skipped or fails upstream by its trigger;
- new tasks for the steps that start, in one COPY (tasks.services.create_tasks_bulk), each with the
  stable idempotency key run:step:index:attempt and Task.workflow_step_id pointing back at the step;
- the step rows written back, and every status change journaled (events.py) in one statement;
- the run finished when no step is left unfinished.

A step's task ending reaches `advancing.on_step_tasks_ended` (connected in WorkflowsConfig.ready()) in the
transaction of the task's move, so the run advances in the same commit as the task. A task that is not
the step's current one (a superseded attempt, a duplicate result) changes nothing: the step's UPDATE
is fenced by its status and its task id.

Work that must not run under the run's lock (cancelling tasks, which locks their rows and their
agents) is handed to `after_commit` and done in transactions of its own: the engine only ever takes a
task's lock before a run's (the task's move, then the hook), never the other way round.
"""

import json
import logging
from collections import Counter, defaultdict, deque
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orchestrator_project.errors import NotFound
from orchestrator_project.pg_arrays import array_literal
from orchestrator_project.prepared import insert_value_reader, prepared_cursor
from tasks import services as task_services
from tasks.models import TaskStatus

from . import conditions, paths
from .definitions import cached_definitions, get_definition
from .events import Journal, flush_journals
from .maps import MapSteps, error_doc, json_size
from .models import (
    STEP_FAILED,
    STEP_UNFINISHED,
    WHOLE_STEP,
    RunStatus,
    StepKind,
    StepRun,
    StepStatus,
    WorkflowRun,
)
from .rows import RowLoader, execute_statement, update_statement

logger = logging.getLogger(__name__)
_STEP_TABLE = StepRun._meta.db_table


_GRAPHS = {}
_GRAPHS_KEPT = 1000


def _graph(definition):
    """Each step's spec by id, and the children of each step id, of a definition. Definitions never
    change, so this is worked out once per process and definition."""
    found = _GRAPHS.get(definition.pk)
    if found is None:
        if len(_GRAPHS) >= _GRAPHS_KEPT:
            _GRAPHS.clear()
        children = defaultdict(list)
        for step in definition.spec["steps"]:
            for parent in step["depends_on"]:
                children[parent].append(step["id"])
        found = _GRAPHS[definition.pk] = ({s["id"]: s for s in definition.spec["steps"]}, dict(children))
    return found


# Locking runs and loading their whole steps (Advance._lock): written once, not compiled per batch.
# What an advance rarely reads is deferred (see lock_many).
_RUNS = RowLoader(WorkflowRun, deferred=("input", "output", "error", "created_at"))
_STEPS = RowLoader(StepRun, deferred=("input", "output", "created_at"))
_RUN_TABLE = WorkflowRun._meta.db_table
# In run id order, as every batch locks: two batches never deadlock.
_LOCK_RUNS_SQL = (
    f"SELECT {_RUNS.columns} FROM {_RUN_TABLE} WHERE run_id = ANY(%s::uuid[]) ORDER BY run_id FOR UPDATE"
)
_LOCK_RUNS_OF_STEPS_SQL = f"""SELECT {_RUNS.columns} FROM {_RUN_TABLE}
    WHERE run_id IN (SELECT run_id FROM {_STEP_TABLE} WHERE id = ANY(%s::bigint[]))
    ORDER BY run_id FOR UPDATE"""
_WHOLE_STEPS_SQL = (
    f"SELECT {_STEPS.columns} FROM {_STEP_TABLE} WHERE run_id = ANY(%s::uuid[]) AND map_index = {WHOLE_STEP}"
)


class Advance(MapSteps):
    """One run, locked, and the changes made to it; `commit()` writes them."""

    def __init__(self, run, *, now=None):
        self.run = run
        self.now = now or timezone.now()
        definition = run.definition
        self.specs, self.children = _graph(definition)
        self.journal = Journal(run.run_id, definition.name, definition.version, self.now)
        self._steps = None
        self._dirty = {}  # StepRun id -> (StepRun, set of changed fields)
        # (StepRun or None for the run, status, reason) in the order they happened, journaled at commit
        # (when the steps' task ids are known)
        self._changes = []
        # (StepRun, its step's spec, task id or None): tasks to create at commit. A task id given is the
        # one the step row was written with already; else the new task's id is written to the step.
        self._new_tasks = []
        self._run_fields = set()
        self._ended = deque()  # steps that ended and are yet to be counted in their joins
        self.after_commit = []  # callables, run once the transaction committed
        self.tell_parent = True  # a sub-workflow's run tells its parent's step when it ends

    # --- loading -------------------------------------------------------------------------------

    @classmethod
    def lock(cls, run_id, *, now=None):
        """Lock the run's row (SELECT ... FOR UPDATE) and start an Advance on it; NotFound if unknown."""
        found = cls.lock_many([run_id], now=now)
        if not found:
            raise NotFound("No workflow run with this id.")
        return found[0]

    @classmethod
    def lock_many(cls, run_ids, *, now=None):
        """Lock several runs (in run id order, as every batch does: two batches never deadlock) and
        load their whole steps, in two queries; returns their Advances in that order.

        What an advance rarely reads is left to be read when it does (Django's deferred fields): a run's
        input (only a step that reads $.input, and the roots that read it started with the run), its
        output and error, the steps' inputs and outputs (a step ended in this advance has its output)."""
        return cls._lock(_LOCK_RUNS_SQL, [array_literal(run_ids)], now=now)

    @classmethod
    def lock_many_of_steps(cls, step_run_ids, *, now=None):
        """`lock_many` for the runs of these step rows (whole steps or map items), found by the locking
        query itself: no round trip to look them up first."""
        return cls._lock(_LOCK_RUNS_OF_STEPS_SQL, [array_literal(step_run_ids)], now=now)

    @classmethod
    def _lock(cls, sql, params, *, now):
        # Not prepared: a generic plan is made once per connection, maybe while the tables are nearly
        # empty (a new install, the benchmark's fresh database). One for a query of this shape (step
        # rows by a subquery on step rows) was seen scanning the step rows once per step row, for 20 s.
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            runs = _RUNS.instances(cursor.fetchall())
            steps = defaultdict(dict)
            if runs:
                cursor.execute(_WHOLE_STEPS_SQL, [array_literal([run.run_id for run in runs])])
                for step in _STEPS.instances(cursor.fetchall()):
                    steps[step.run_id][step.step_id] = step
        definitions = cached_definitions({run.definition_id for run in runs})
        advances = []
        for run in runs:
            run.definition = definitions[run.definition_id]
            advance = cls(run, now=now)
            advance._steps = steps[run.run_id]
            advances.append(advance)
        return advances

    @property
    def steps(self):
        """The run's whole steps (not map items) by step id; inputs and outputs are read when needed."""
        if self._steps is None:
            rows = StepRun.objects.filter(run_id=self.run.run_id, map_index=WHOLE_STEP).defer(
                "input", "output"
            )
            self._steps = {step.step_id: step for step in rows}
        return self._steps

    def touch(self, step, reason=None, **fields):
        """Change fields of a step (written at commit); a change of status is journaled with `reason`."""
        for name, value in fields.items():
            setattr(step, name, value)
        _, changed = self._dirty.setdefault(step.pk, (step, set()))
        changed.update(fields)
        if "status" in fields:
            self._changes.append((step, fields["status"], reason or ""))

    def set_run(self, reason="", **fields):
        for name, value in fields.items():
            setattr(self.run, name, value)
        self._run_fields.update(fields)
        if "status" in fields:
            self._changes.append((None, fields["status"], reason))

    def _context(self, step_spec, read=None):
        """What paths resolve against: the run's input and the outputs of the steps `step_spec` reads.

        Statuses and errors are the steps' own (current under the lock); an output set in this advance
        is in memory, and only the others are read (the chain's usual case reads nothing). The run's
        input is there only if a path reads it (it is read from the database when one does)."""
        needs_input = False
        if read is None:
            found = [p for _, holder in paths.references(step_spec) for p in _holder_paths(holder)]
            if step_spec.get("type") == StepKind.CONDITION:
                found += conditions.check(step_spec["when"])[1]
            read = {p.step for p in found} - {None}
            needs_input = any(p.root == "input" for p in found)
        steps = [self.steps[step_id] for step_id in read if step_id in self.steps]
        unread = [s.pk for s in steps if "output" in s.get_deferred_fields()]
        outputs = {}
        if unread:
            outputs = dict(StepRun.objects.filter(pk__in=unread).values_list("pk", "output"))
        return {
            **({"input": self.run.input} if needs_input else {}),
            "steps": {
                s.step_id: {
                    "output": outputs[s.pk] if s.pk in outputs else s.output,
                    "status": s.status,
                    "error": s.error,
                }
                for s in steps
            },
        }

    # --- deciding and starting steps ----------------------------------------------------------------

    def start_roots(self):
        for step_id, spec in self.specs.items():
            if not spec["depends_on"]:
                self.decide(self.steps[step_id])

    def decide(self, step):
        """A waiting step whose parents have all ended: run it, skip it or fail it, by its trigger."""
        if self.run.status == RunStatus.CANCELLING:
            self.touch(step, "the run is being cancelled", status=StepStatus.CANCELLED, finished_at=self.now)
            self.step_ended(step)
            return
        if self.run.status == RunStatus.PAUSED:
            return  # stays waiting with remaining_parents 0: resume decides it
        spec = self.specs[step.step_id]
        parents = [self.steps[p].status for p in spec["depends_on"]]
        failed = any(s in STEP_FAILED for s in parents)
        skipped = any(s == StepStatus.SKIPPED for s in parents)
        trigger = spec["trigger"]
        if failed and trigger != "all_done":
            self.touch(
                step, "a step it depends on failed", status=StepStatus.UPSTREAM_FAILED, finished_at=self.now
            )
            self.step_ended(step)
        elif skipped and trigger == "all_success":
            self.touch(
                step, "a step it depends on was skipped", status=StepStatus.SKIPPED, finished_at=self.now
            )
            self.step_ended(step)
        else:
            self.start(step)

    def start(self, step):
        spec = self.specs[step.step_id]
        kind = spec["type"]
        attempt = step.attempt + 1
        try:
            if kind == StepKind.CONDITION:
                context = self._context(spec)
                try:
                    result = conditions.evaluate(spec["when"], context)
                except TypeError as exc:
                    self.fail(step, f"the condition cannot compare these values: {exc}", attempt=attempt)
                    return
                if result:
                    self.touch(
                        step,
                        "condition is true",
                        status=StepStatus.COMPLETED,
                        attempt=attempt,
                        output={"result": True},
                        started_at=self.now,
                        finished_at=self.now,
                    )
                else:
                    self.touch(
                        step,
                        "condition is false",
                        status=StepStatus.SKIPPED,
                        attempt=attempt,
                        output={"result": False},
                        started_at=self.now,
                        finished_at=self.now,
                    )
                self.step_ended(step)
                return
            context = self._context(spec)
            if kind == StepKind.MAP:
                self._start_map(step, spec, context, attempt)
                return
            resolved = paths.resolve_value(spec.get("input", {}), context)
        except paths.PathError as exc:
            self.fail(step, f"input could not be resolved: {exc}", attempt=attempt)
            return
        if kind == StepKind.TASK:
            if self._input_too_large(step, resolved, attempt):
                return
            self.begin(
                step,
                "started",
                StepStatus.RUNNING,
                attempt=attempt,
                input=resolved,
            )
            self._new_tasks.append((step, spec, None))
        elif kind == StepKind.APPROVAL:
            self.begin(
                step,
                "waiting for an operator's decision",
                StepStatus.AWAITING_APPROVAL,
                attempt=attempt,
                input=resolved,
                due_at=self.now + timedelta(seconds=spec["timeout_seconds"]),
                decided_by="",
            )
        elif kind == StepKind.WORKFLOW:
            self._start_child(step, spec, resolved, attempt)

    def _input_too_large(self, step, resolved, attempt):
        size = json_size(resolved)
        if size > settings.TASK_MAX_INPUT_BYTES:
            self.fail(
                step,
                f"resolved input is {size} bytes; the limit is {settings.TASK_MAX_INPUT_BYTES}",
                attempt=attempt,
            )
            return True
        return False

    def begin(self, step, reason, status, **fields):
        """A step (or item) starts an attempt: its timing starts, the last attempt's output goes."""
        self.touch(
            step,
            reason,
            status=status,
            started_at=self.now,
            finished_at=None,
            output=None,
            error=None,
            **fields,
        )

    def fail(self, step, message, *, attempt=None, **more):
        fields = {"status": StepStatus.FAILED, "error": error_doc(message, **more), "finished_at": self.now}
        if attempt is not None:
            fields.update(attempt=attempt, started_at=self.now)
        self.touch(step, message, **fields)
        self.step_ended(step)

    # --- sub-workflows ---------------------------------------------------------------------------------

    def _start_child(self, step, spec, resolved, attempt):
        if self.run.depth >= settings.WORKFLOW_MAX_NESTING:
            self.fail(
                step, f"sub-workflows are nested deeper than {settings.WORKFLOW_MAX_NESTING}", attempt=attempt
            )
            return
        definition = get_definition(name=spec["workflow"], version=spec["version"])
        self.begin(
            step,
            f"started {definition}",
            StepStatus.RUNNING,
            attempt=attempt,
            input=resolved,
        )
        self.save_steps()  # the child run points at this step's row
        child = begin_run(
            definition=definition,
            tell_parent=False,
            input=resolved if isinstance(resolved, dict) else {"value": resolved},
            priority=self.run.priority,
            parent_step=step,
            depth=self.run.depth + 1,
            now=self.now,
        )
        if child.is_terminal:
            self.child_ended(step, child)

    def child_ended(self, step, child):
        if step.status != StepStatus.RUNNING:
            return
        if child.status == RunStatus.COMPLETED:
            self.touch(
                step,
                "its run completed",
                status=StepStatus.COMPLETED,
                output=child.output,
                finished_at=self.now,
            )
        elif child.status == RunStatus.CANCELLED:
            self.touch(
                step,
                "its run was cancelled",
                status=StepStatus.CANCELLED,
                finished_at=self.now,
                error=error_doc("the sub-workflow run was cancelled", run_id=str(child.run_id)),
            )
        else:
            self.touch(
                step,
                "its run failed",
                status=StepStatus.FAILED,
                finished_at=self.now,
                error=error_doc("the sub-workflow run failed", run_id=str(child.run_id), error=child.error),
            )
        self.step_ended(step)

    def decide_approval(self, step, *, approved, by, comment):
        decision = {"approved": approved, "by": by, "comment": comment}
        if approved:
            self.touch(
                step,
                f"approved by {by}",
                status=StepStatus.COMPLETED,
                output=decision,
                decided_by=by,
                due_at=None,  # decided: no default decision is due any more
                finished_at=self.now,
            )
        else:
            self.touch(
                step,
                f"rejected by {by}",
                status=StepStatus.FAILED,
                decided_by=by,
                due_at=None,
                finished_at=self.now,
                error=error_doc(f"rejected by {by}", **decision),
            )
        self.step_ended(step)

    # --- a step ended ------------------------------------------------------------------------------------

    def step_ended(self, step):
        """A step (or map item) reached a terminal status: it is counted in its joins by `drain`
        (a queue, not recursion: a chain of 500 steps cancelled or skipped at once stays flat)."""
        self._ended.append(step)

    def drain(self):
        drain_all([self])

    def _count_items_ended(self, ended):
        """A round's ended map items, counted per map with one UPDATE; their maps refilled."""
        for step_id, count in Counter(s.step_id for s in ended if s.map_index != WHOLE_STEP).items():
            map_step = self.steps[step_id]
            # While the run runs, items wait for a slot only in a map of more items than its
            # max_concurrency (resume and an item's retry launch theirs themselves): else no look.
            fits = map_step.items_total <= self.specs[step_id]["max_concurrency"]
            if self._count_items(map_step, count) and self.run.status == RunStatus.RUNNING and not fits:
                self.launch_waiting_items(map_step)

    def _children_counted(self, counted):
        for step_id, remaining in sorted(counted):
            child = self.steps[step_id]
            child.remaining_parents = remaining
            # A child already ended in memory (cancelled with its run) is not decided again.
            if remaining == 0 and child.status == StepStatus.WAITING:
                self.decide(child)

    def task_ended(self, step, ended):
        """The current task of a task step or map item ended (fenced by the caller)."""
        if ended.status == TaskStatus.COMPLETED:
            size = len((ended.result_json or "null").encode())
            if size > settings.WORKFLOW_OUTPUT_MAX_BYTES:
                self.fail(step, f"output is {size} bytes; the limit is {settings.WORKFLOW_OUTPUT_MAX_BYTES}")
                return
            output = None if ended.result_json is None else json.loads(ended.result_json)
            self.touch(
                step, "its task completed", status=StepStatus.COMPLETED, output=output, finished_at=self.now
            )
        elif ended.status == TaskStatus.CANCELLED:
            self.touch(
                step,
                "its task was cancelled",
                status=StepStatus.CANCELLED,
                finished_at=self.now,
                error=error_doc("the task was cancelled", task_id=str(ended.task_id)),
            )
        else:
            error = None if ended.error_json is None else json.loads(ended.error_json)
            self.touch(
                step,
                "its task failed",
                status=StepStatus.FAILED,
                finished_at=self.now,
                error=error_doc("the task failed", task_id=str(ended.task_id), task_error=error),
            )
        self.step_ended(step)

    # --- the run -------------------------------------------------------------------------------------

    def finish_if_done(self):
        if self.run.is_terminal or any(s.status in STEP_UNFINISHED for s in self.steps.values()):
            return
        if self.run.status == RunStatus.CANCELLING:
            self.set_run("every step has ended", status=RunStatus.CANCELLED, finished_at=self.now)
        elif failed := sorted(s.step_id for s in self.steps.values() if s.status in STEP_FAILED):
            self.set_run(
                f"steps failed: {', '.join(failed)}",
                status=RunStatus.FAILED,
                finished_at=self.now,
                error=error_doc("steps failed", steps=failed),
            )
        else:
            try:
                output = self._run_output()
            except paths.PathError as exc:
                self.set_run(
                    f"output could not be resolved: {exc}",
                    status=RunStatus.FAILED,
                    finished_at=self.now,
                    error=error_doc(f"output could not be resolved: {exc}"),
                )
            else:
                self.set_run(
                    "every step has ended", status=RunStatus.COMPLETED, finished_at=self.now, output=output
                )

    def _run_output(self):
        template = self.run.definition.spec.get("output")
        if template is None:
            leaves = [s for s in self.specs if s not in self.children]
            context = self._context({}, read=set(leaves))
            return {
                step_id: context["steps"][step_id]["output"]
                for step_id in leaves
                if context["steps"][step_id]["status"] == StepStatus.COMPLETED
            }
        return paths.resolve_value(template, self._context({"input": template}))

    # --- writing -------------------------------------------------------------------------------------

    def _task_fields(self, step, spec):
        run, definition = self.run, self.run.definition
        index = max(step.map_index, 0)
        return {
            "type": spec["task_type"],
            "description": f"workflow {definition.name} v{definition.version}, step {step.step_id}"
            + (f"[{step.map_index}]" if step.map_index >= 0 else ""),
            "input_data": step.input,
            "required_capabilities": spec["required_capabilities"],
            "priority": spec.get("priority", run.priority),
            "max_retries": spec["max_retries"],
            "timeout_seconds": spec["timeout_seconds"],
            "deadline": None,
            "auto_dispatch": True,
            "strategy": "",
            "workflow_step_id": step.pk,
            # Stable for the step's attempt across the task's own retries: the agent's dedupe key.
            "idempotency_key": f"{run.run_id}:{step.step_id}:{index}:{step.attempt}",
        }

    def save_steps(self):
        """Write the changed steps now, not with the rest at commit: a query next must see them."""
        execute_statement(_steps_update([self]))

    def commit(self):
        """Settle and write everything; call once, inside the transaction that locked the run."""
        settle_all([self])
        write_all([self])


def drain_all(advances):
    """Count what ended in the advances' runs in its joins, round by round: a round's ended map items
    per map, then its ended steps in all their children, every run's at once, with one UPDATE ...
    RETURNING; the steps decided then may end at once and make the next round."""
    pending = [a for a in advances if a._ended]
    while pending:
        joins = []  # (run id, child step id, parents of it that ended)
        by_run = {}
        for advance in pending:
            ended, advance._ended = advance._ended, deque()
            advance._count_items_ended(ended)
            counts = Counter(
                child
                for step in ended
                if step.map_index == WHOLE_STEP
                for child in advance.children.get(step.step_id, ())
            )
            joins += [(advance.run.run_id, child, n) for child, n in sorted(counts.items())]
            by_run[advance.run.run_id] = advance
        counted = defaultdict(list)
        if joins:
            params = [array_literal([join[column] for join in joins]) for column in range(3)]
            with connection.cursor() as cursor:
                # The join: each child's counter of parents still running, decremented once per parent.
                cursor.execute(_JOIN_SQL, [*params, WHOLE_STEP, StepStatus.WAITING])
                for run_id, step_id, remaining in cursor.fetchall():
                    counted[run_id].append((step_id, remaining))
        for run_id, rows in counted.items():
            by_run[run_id]._children_counted(rows)
        pending = [a for a in advances if a._ended]


_JOIN_SQL = (
    f"UPDATE {_STEP_TABLE} AS s SET remaining_parents = s.remaining_parents - d.n"
    " FROM unnest(%s::uuid[], %s::text[], %s::int[]) AS d(run_id, step_id, n)"
    " WHERE s.run_id = d.run_id AND s.map_index = %s AND s.step_id = d.step_id AND s.status = %s"
    " AND s.remaining_parents >= d.n RETURNING s.run_id, s.step_id, s.remaining_parents"
)


def settle_all(advances):
    """Count what ended in its joins and finish the runs that are done (before `write_all`)."""
    drain_all(advances)
    for advance in advances:
        advance.finish_if_done()


def write_all(advances):
    """Write what settled advances changed, all runs at once: their new tasks in one INSERT (or COPY);
    then their steps' changes, their runs' rows and their journals in one statement; then hand over
    the work for after the commit and tell the parents of sub-workflow runs that ended."""
    _create_tasks(advances)
    steps_update = _steps_update(advances)
    for advance in advances:
        for step, status, reason in advance._changes:
            if step is None:
                advance.journal.run_changed(status, reason)
                continue
            # A step's event says the status of that change, not the step's latest.
            step.status, current = status, step.status
            advance.journal.step_changed(step, reason)
            step.status = current
        advance._changes = []
    flush_journals([advance.journal for advance in advances], along=[steps_update, *_runs_updates(advances)])
    for advance in advances:
        for action in advance.after_commit:
            transaction.on_commit(action)
        advance.after_commit = []
    for advance in advances:
        run = advance.run
        if run.is_terminal and run.parent_step_id is not None and advance.tell_parent:
            _tell_parent(run, advance.now)


def _create_tasks(advances):
    new = [(advance, *entry) for advance in advances for entry in advance._new_tasks]
    if not new:
        return
    items = []
    for advance, step, spec, task_id in new:
        fields = advance._task_fields(step, spec)
        if task_id is not None:
            fields["task_id"] = task_id
        items.append(fields)
    tasks = task_services.create_tasks_bulk(items=items)
    for (advance, step, _, task_id), task in zip(new, tasks, strict=True):
        if task_id is None:
            advance.touch(step, task_id=task.task_id)
    for advance in advances:
        advance._new_tasks = []


def _steps_update(advances):
    """Every changed step row of the advances in one UPDATE, each row writing only what it changed."""
    dirty = [entry for advance in advances for entry in advance._dirty.values()]
    for advance in advances:
        advance._dirty = {}
    if not dirty:
        return None
    fields = sorted(set().union(*(changed for _, changed in dirty)))
    return update_statement(
        StepRun, [step for step, _ in dirty], fields, changed=[changed for _, changed in dirty], name="s"
    )


def _runs_updates(advances):
    """The changed runs' rows: one UPDATE per set of fields changed."""
    groups = defaultdict(list)
    for advance in advances:
        if advance._run_fields:
            advance.run.updated_at = advance.now
            groups[frozenset(advance._run_fields | {"updated_at"})].append(advance.run)
            advance._run_fields = set()
    return [
        update_statement(WorkflowRun, runs, sorted(fields), name=f"r{i}_")
        for i, (fields, runs) in enumerate(groups.items())
    ]


def _holder_paths(holder):
    if paths.PATH in holder:
        return [paths.parse(holder[paths.PATH])]
    return paths.template_paths(holder[paths.TEMPLATE])


def _tell_parent(child, now):
    """A sub-workflow's run ended: its parent's step ends with it (the child's lock is taken first)."""
    parent_step = StepRun.objects.filter(pk=child.parent_step_id).only("run_id").first()
    if parent_step is None:
        return
    advance = Advance.lock(parent_step.run_id, now=now)
    step = next((s for s in advance.steps.values() if s.pk == child.parent_step_id), None)
    if step is None or step.status != StepStatus.RUNNING:
        return
    advance.child_ended(step, child)
    advance.commit()


# A new run and its waiting whole steps, in one prepared statement: the run's INSERT through the ORM
# was a round trip and as much Python as the rest of a start's writes together.
_INSERT_RUN_AND_STEPS = """WITH run AS (INSERT INTO {run_table} ({columns}) VALUES ({values}))
    INSERT INTO {step_table}
        (run_id, step_id, map_index, kind, status, attempt, remaining_parents, items_total, remaining_items,
         decided_by, created_at)
    SELECT %s, s.step_id, {whole}, s.kind, %s, 0, s.parents, 0, 0, '', %s
    FROM unnest(%s::text[], %s::text[], %s::int[]) AS s(step_id, kind, parents)
    RETURNING id, step_id"""


@cache
def _run_insert():
    """The statement, and how each run column's value is read off a WorkflowRun."""
    fields = WorkflowRun._meta.concrete_fields
    readers = [insert_value_reader(field) for field in fields]
    sql = _INSERT_RUN_AND_STEPS.format(
        run_table=_RUN_TABLE,
        columns=", ".join(connection.ops.quote_name(field.column) for field in fields),
        values=", ".join(["%s"] * len(fields)),
        step_table=_STEP_TABLE,
        whole=WHOLE_STEP,
    )
    return sql, readers


def _insert_run_and_steps(run, steps, now):
    """INSERT the run and its steps as Model.save() and bulk_create would; each step gets its id."""
    sql, readers = _run_insert()
    with prepared_cursor() as cursor:
        cursor.execute(
            sql,
            [
                *(read(run) for read in readers),
                run.run_id,
                StepStatus.WAITING,
                now,
                array_literal([step.step_id for step in steps]),
                array_literal([step.kind for step in steps]),
                array_literal([step.remaining_parents for step in steps]),
            ],
        )
        ids = {step_id: pk for pk, step_id in cursor.fetchall()}
    run._state.adding, run._state.db = False, "default"
    for step in steps:
        step.pk = ids[step.step_id]
        step._state.adding, step._state.db = False, "default"


def begin_run(
    *,
    definition,
    input,
    priority,
    parent_step=None,
    depth=0,
    user=None,
    idempotency_key=None,
    fingerprint="",
    now=None,
    tell_parent=True,
):
    """Create a run, its steps and its root steps' tasks, in the caller's transaction.

    tell_parent: False when the parent's own Advance starts this run and reads its end itself."""
    now = now or timezone.now()
    run = WorkflowRun(
        definition=definition,
        status=RunStatus.RUNNING,
        input=input,
        priority=priority,
        parent_step=parent_step,
        depth=depth,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        created_by=user if user is not None and user.pk else None,
        created_at=now,
        updated_at=now,
    )
    advance = Advance(run, now=now)
    advance.tell_parent = tell_parent
    advance._changes.append((None, RunStatus.RUNNING, "started"))
    steps = [
        StepRun(
            run=run,
            step_id=spec["id"],
            kind=spec["type"],
            status=StepStatus.WAITING,
            remaining_parents=len(spec["depends_on"]),
            created_at=now,
        )
        for spec in definition.spec["steps"]
    ]
    _insert_run_and_steps(run, steps, now)
    advance._steps = {step.step_id: step for step in steps}
    advance.start_roots()
    advance.commit()
    return run

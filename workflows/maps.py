"""Map steps: an Advance's part that fans a step out over a list, one item (a step run with its own
map_index and task) per element, at most max_concurrency running at once, and joins them.

The join is the map step's `remaining_items`, decremented by a guarded UPDATE ... RETURNING as items
end; the map ends at 0 with its items' outputs in item order, completed if enough items succeeded
(min_success_ratio). A failed item that its task retries is not ended: the join waits for it.
"""

import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from orchestrator_project import ids
from orchestrator_project.pg_arrays import array_literal

from . import paths
from .models import RunStatus, StepKind, StepRun, StepStatus

_STEP_TABLE = StepRun._meta.db_table
_INSERT_ITEMS = f"""INSERT INTO {_STEP_TABLE}
        (run_id, step_id, map_index, kind, status, attempt, task_id, input, remaining_parents, items_total,
         remaining_items, decided_by, created_at, started_at)
    SELECT %(run)s, %(step)s, i.n - 1, %(kind)s, i.status, i.attempt, i.task_id, i.input::jsonb, 0, 0, 0, '',
           %(now)s, i.started_at
    FROM unnest(%(statuses)s::text[], %(attempts)s::int[], %(tasks)s::uuid[], %(started)s::timestamptz[],
                %(inputs)s::text[]) WITH ORDINALITY AS i(status, attempt, task_id, started_at, input, n)
    ORDER BY i.n
    RETURNING id, map_index"""


def error_doc(message, **more):
    """A step's or run's error document."""
    return {"message": message, **more}


def json_size(value):
    return len(json.dumps(value, separators=(",", ":")).encode())


class MapSteps:
    """Mixed into engine.Advance: it provides touch, begin, fail, step_ended, save_steps, run, now."""

    def _start_map(self, step, spec, context, attempt):
        items = paths.resolve(paths.parse(spec["over"][paths.PATH]), context)
        if not isinstance(items, list):
            raise paths.PathError(
                f"{spec['over'][paths.PATH]} is {paths._kind(items)}, not a list to map over"
            )
        if len(items) > settings.WORKFLOW_MAP_MAX_ITEMS:
            self.fail(
                step,
                f"{len(items)} items to map over; the limit is {settings.WORKFLOW_MAP_MAX_ITEMS}",
                attempt=attempt,
            )
            return
        template = spec.get("input") or {"item": {paths.PATH: "$.item"}}
        inputs = []
        for index, item in enumerate(items):
            resolved = paths.resolve_value(template, {**context, "item": item, "index": index})
            if json_size(resolved) > settings.TASK_MAX_INPUT_BYTES:
                self.fail(
                    step,
                    f"item {index}'s input is larger than {settings.TASK_MAX_INPUT_BYTES} bytes",
                    attempt=attempt,
                )
                return
            inputs.append(resolved)
        # Items of an earlier attempt (a retry of the whole step) are replaced; each new item's attempt
        # goes on from its predecessor's, so its calls' idempotency key is one that item never had.
        attempts = {}
        if attempt > 1:
            earlier = StepRun.objects.filter(run_id=self.run.run_id, step_id=step.step_id, map_index__gte=0)
            attempts = dict(earlier.values_list("map_index", "attempt"))
            earlier.delete()
        self.begin(
            step,
            f"started: {len(items)} items",
            StepStatus.RUNNING,
            attempt=attempt,
            items_total=len(items),
            remaining_items=len(items),
        )
        if not items:
            self._finish_map(step)
            return
        self._create_items(step, spec, inputs, attempts)

    def _create_items(self, map_step, spec, inputs, attempts):
        """The items' rows in one INSERT, those that start now already running with the id of the task
        they will have (one write per item, not an insert and then an update)."""
        started = spec["max_concurrency"] if self.run.status == RunStatus.RUNNING else 0
        items = []
        for index, value in enumerate(inputs):
            item = StepRun(
                run_id=self.run.run_id,
                step_id=map_step.step_id,
                map_index=index,
                kind=StepKind.TASK,
                status=StepStatus.WAITING,
                attempt=attempts.get(index, 0),
                input=value,
                created_at=self.now,
            )
            if index < started:
                item.status, item.attempt, item.started_at = StepStatus.RUNNING, item.attempt + 1, self.now
                item.task_id = ids.uuid4()
            items.append(item)
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_ITEMS,
                {
                    "run": self.run.run_id,
                    "step": map_step.step_id,
                    "kind": StepKind.TASK,
                    "now": self.now,
                    "statuses": array_literal([i.status for i in items]),
                    "attempts": array_literal([i.attempt for i in items]),
                    "tasks": array_literal([i.task_id for i in items]),
                    "started": array_literal([i.started_at for i in items]),
                    "inputs": array_literal([json.dumps(i.input, cls=DjangoJSONEncoder) for i in items]),
                },
            )
            for pk, index in cursor.fetchall():
                items[index].pk = pk
        for item in items[:started]:
            self._changes.append((item, StepStatus.RUNNING, "started"))
            self._new_tasks.append((item, spec, item.task_id))

    def _launch_items(self, map_step, items):
        if self.run.status != RunStatus.RUNNING:
            return
        spec = self.specs[map_step.step_id]
        for item in items:
            self.begin(
                item,
                "started",
                StepStatus.RUNNING,
                attempt=item.attempt + 1,
            )
            self._new_tasks.append((item, spec, None))

    def _items(self, map_step):
        self.save_steps()  # queries below must see the items changed in this advance
        return StepRun.objects.filter(run_id=self.run.run_id, step_id=map_step.step_id, map_index__gte=0)

    def launch_waiting_items(self, map_step):
        """Start as many waiting items as the map's max_concurrency leaves room for, lowest index first."""
        limit = self.specs[map_step.step_id]["max_concurrency"]
        items = self._items(map_step)
        waiting = list(items.filter(status=StepStatus.WAITING).order_by("map_index")[:limit])
        if waiting:  # else (every item started: the usual case) the count is not needed
            room = limit - items.filter(status=StepStatus.RUNNING).count()
            self._launch_items(map_step, waiting[: max(room, 0)])

    def cancel_waiting_items(self, map_step, reason):
        """Cancel the items of a map that have not started; counted in the map's join at once."""
        items = list(self._items(map_step).filter(status=StepStatus.WAITING))
        for item in items:
            self.touch(item, reason, status=StepStatus.CANCELLED, finished_at=self.now)
        self._count_items(map_step, len(items))

    def _count_items(self, map_step, count):
        """Decrement the map's join by `count` ended items; finish the map at 0. True if items remain."""
        if count == 0:
            return map_step.remaining_items > 0
        with connection.cursor() as cursor:
            # The join: guarded so that the map is never counted below zero nor after it ended.
            cursor.execute(
                f"UPDATE {_STEP_TABLE} SET remaining_items = remaining_items - %s"
                " WHERE id = %s AND status = %s AND remaining_items >= %s RETURNING remaining_items",
                [count, map_step.pk, StepStatus.RUNNING, count],
            )
            row = cursor.fetchone()
        if row is None:
            return False
        map_step.remaining_items = row[0]
        if row[0] == 0:
            self._finish_map(map_step)
            return False
        return True

    def _finish_map(self, map_step):
        spec = self.specs[map_step.step_id]
        items = list(self._items(map_step).order_by("map_index").only("status", "output", "map_index"))
        succeeded = sum(1 for i in items if i.status == StepStatus.COMPLETED)
        output = [i.output if i.status == StepStatus.COMPLETED else None for i in items]
        if self.run.status == RunStatus.CANCELLING and succeeded < len(items):
            self.touch(
                map_step,
                "the run was cancelled",
                status=StepStatus.CANCELLED,
                output=output,
                finished_at=self.now,
            )
        elif not items or succeeded / len(items) >= spec["min_success_ratio"]:
            self.touch(
                map_step,
                f"{succeeded} of {len(items)} items succeeded",
                status=StepStatus.COMPLETED,
                output=output,
                finished_at=self.now,
            )
        else:
            self.touch(
                map_step,
                f"only {succeeded} of {len(items)} items succeeded",
                status=StepStatus.FAILED,
                output=output,
                finished_at=self.now,
                error=error_doc(
                    f"only {succeeded} of {len(items)} items succeeded; min_success_ratio is "
                    f"{spec['min_success_ratio']}",
                    failed_items=[i.map_index for i in items if i.status != StepStatus.COMPLETED][:100],
                ),
            )
        self.step_ended(map_step)

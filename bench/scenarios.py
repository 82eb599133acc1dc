"""The scenarios of issue 6 and the three baselines. Each function runs one measurement and returns a dict.

They run in this (the benchmark's) process with Django set up against the bench database: the load goes
to the real web server (Uvicorn) over loopback, the bookkeeping (truncating tables, reading timestamps) is
done here directly in SQL. Every loop is bounded by a count and a deadline.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.db import connection, transaction

from . import httpload
from .httpload import json_request, percentiles_ms


@dataclass
class Size:
    """How much of everything: `full()` for `make bench`, `quick()` for `make bench-quick`."""

    name: str
    pg_seconds: float
    drf_requests: int
    celery_tasks: int
    create_requests: int
    rate_seconds: float  # duration of each fixed-rate (open-loop) phase
    e2e_tasks: int
    bulk_requests: int
    heartbeat_agents: int
    heartbeat_requests: int
    slow_tasks: int
    slow_agents: int
    ws_clients: int
    ws_seconds: float
    read_tasks: int
    read_agents: int
    read_requests: int
    claim_rounds: int
    bulk_size: int = 1000
    wait_s: float = 120  # bound on waiting for tasks to finish
    phase_s: float = 60  # bound on each max-rate (closed-loop) phase
    concurrency: int = 32

    @classmethod
    def full(cls):
        return cls("full", 5, 3000, 3000, 3000, 10, 2000, 3, 200, 3000, 500, 50, 500, 10,
                   1_000_000, 10_000, 300, 15, wait_s=90, phase_s=25)  # fmt: skip

    @classmethod
    def quick(cls):
        return cls("quick", 1, 300, 300, 300, 1, 100, 1, 20, 300, 100, 10, 50, 2,
                   10_000, 1_000, 20, 3, bulk_size=200, wait_s=10, phase_s=3)  # fmt: skip


class Bench:
    """Shared state of a run: the stack, the operator's token, the agents registered so far."""

    def __init__(self, stack, size):
        self.stack = stack
        self.size = size
        self.port = stack.port
        self.token = None
        self.endpoint_seq = 0

    # --- helpers -------------------------------------------------------------------------------------
    def setup(self):
        from django.contrib.auth import get_user_model

        from orchestrator_project.accounts.models import ApiToken

        user = get_user_model().objects.create_superuser("bench", "bench@example.invalid", uuid.uuid4().hex)
        _, self.token = ApiToken.issue(user=user, name="bench")
        # The baseline's own token (DRF's TokenAuthentication, bench/baseline), for the same user.
        self.baseline_token = uuid.uuid4().hex
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, now(), %s)",
                [self.baseline_token, user.pk],
            )
            cursor.execute(
                "CREATE TABLE bench_pg (id bigserial PRIMARY KEY, payload jsonb NOT NULL,"
                " created_at timestamptz NOT NULL)"
            )

        self.warm_up()

    def warm_up(self):
        """Every server's first requests pay for imports, connections and caches: a few hundred of each
        kind before anything is measured, so no process starts cold."""
        for path in ("/baseline/rows", "/baseline/rows-relaxed", "/baseline/jobs"):
            self.run(
                httpload.closed_loop(
                    self.stack.baseline_port,
                    lambda i, path=path: self.baseline_request(path, i),
                    total=200,
                    concurrency=8,
                    deadline_s=60,
                )
            )
        self.run(httpload.closed_loop(self.port, self.task_request, total=200, concurrency=8, deadline_s=60))
        self.sql("TRUNCATE baseline_job, baseline_row")
        self.reset()

    def sql(self, statement, params=None):
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def reset(self):
        """A clean slate between scenarios: no tasks, no events, no agents."""
        self.sql(
            "TRUNCATE tasks_task, tasks_taskevent, agents_agentstatuschange, agents_agentroute, agents_agent"
        )
        self.set_agent_delay(0)
        self.received()

    def run(self, coro):
        return asyncio.run(coro)

    def set_agent_delay(self, seconds):
        self.run(httpload.call(self.stack.agents_port, "POST", f"/_bench/config?delay={seconds}"))

    def received(self):
        _, body = self.run(httpload.call(self.stack.agents_port, "GET", "/_bench/received"))
        return body["calls"]

    def register_agents(self, count, *, max_concurrency, capability="bench"):
        """Through the API, like real agents. Returns [(agent_id, token)]."""
        base = self.endpoint_seq
        self.endpoint_seq += count

        def make(i):
            return json_request(
                "POST",
                "/api/v1/agents",
                {
                    "endpoint": f"http://127.0.0.1:{self.stack.agents_port}/a/{base + i}",
                    "type": "bench",
                    "name": f"bench-{base + i}",
                    "capabilities": [capability],
                    "max_concurrency": max_concurrency,
                    # The fake agents send no heartbeats; keep them online for the whole run.
                    "heartbeat_timeout": 3600,
                },
                self.token,
            )

        result = self.run(
            httpload.closed_loop(self.port, make, total=count, concurrency=8, deadline_s=60, keep_bodies=True)
        )
        if result.ok != count:
            raise RuntimeError(f"registered {result.ok}/{count} agents: {result.bodies[:3]}")
        agents = [json.loads(body) for body in result.bodies]
        return [(a["agent_id"], a["token"]) for a in agents]

    def task_request(self, i, capability="bench"):
        return json_request("POST", "/api/v1/tasks", {"type": capability, "input_data": {"n": i}}, self.token)

    def wait_terminal(self, expected, timeout):
        """Wait until `expected` tasks are completed/failed; returns (done, failed, last finished_at)."""
        deadline = time.monotonic() + timeout
        while True:
            done, failed, last = self.sql(
                "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed')),"
                " count(*) FILTER (WHERE status = 'failed'), extract(epoch FROM max(finished_at))"
                " FROM tasks_task"
            )[0]
            if done >= expected or time.monotonic() > deadline:
                return done, failed, float(last) if last is not None else None
            time.sleep(0.05)

    # --- baselines -----------------------------------------------------------------------------------
    def baseline_postgres(self):
        """Single-row INSERT commits per second from 4 connections (autocommit: one commit per row)."""
        url = os.environ["DATABASE_URL"]
        seconds = self.size.pg_seconds
        counts = [0] * 4
        start_barrier = threading.Barrier(5)

        def writer(k):
            with psycopg.connect(url, autocommit=True) as conn:
                payload = json.dumps({"type": "bench", "input_data": {"n": k}})
                start_barrier.wait()
                end = time.perf_counter() + seconds
                n = 0
                while time.perf_counter() < end:
                    conn.execute("INSERT INTO bench_pg (payload, created_at) VALUES (%s, now())", [payload])
                    n += 1
                counts[k] = n

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        start_barrier.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join(seconds + 30)
        elapsed = time.perf_counter() - t0
        return {
            "commits_per_s": round(sum(counts) / elapsed, 1),
            "commits": sum(counts),
            "elapsed_s": round(elapsed, 2),
        }

    def baseline_request(self, path, i):
        return json_request(
            "POST",
            path,
            {"type": "bench", "input_data": {"n": i}},
            extra_headers={"Authorization": f"Token {self.baseline_token}"},
        )

    def _baseline_creates(self, path):
        result = self.run(
            httpload.closed_loop(
                self.stack.baseline_port,
                lambda i: self.baseline_request(path, i),
                total=self.size.drf_requests,
                concurrency=self.size.concurrency,
                deadline_s=self.size.phase_s,
            )
        )
        return {"requests_per_s": round(result.rate, 1), **result.summary()}

    def baseline_drf(self):
        """A bare DRF create endpoint (token auth, validate, insert one row) on gunicorn sync workers."""
        return self._baseline_creates("/baseline/rows")

    def baseline_drf_relaxed(self):
        """The same, committing without waiting for the WAL flush, as the orchestrator's heartbeats do."""
        return self._baseline_creates("/baseline/rows-relaxed")

    def baseline_dispatch(self):
        """Hand-rolled Celery dispatch: a row and a Celery task per request, whose prefork worker POSTs to
        the agent and marks the row done. Created -> done, one per request, as e2e_single measures."""
        self.sql("TRUNCATE baseline_job")
        total = self.size.e2e_tasks
        t0 = time.time()
        created = self.run(
            httpload.closed_loop(
                self.stack.baseline_port,
                lambda i: self.baseline_request("/baseline/jobs", i),
                total=total,
                concurrency=self.size.concurrency,
                deadline_s=self.size.wait_s,
            )
        )
        deadline = time.monotonic() + self.size.wait_s
        while True:
            done, last = self.sql(
                "SELECT count(*), extract(epoch FROM max(done_at))"
                " FROM baseline_job WHERE done_at IS NOT NULL"
            )[0]
            if done >= created.ok or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        elapsed = (float(last) if last is not None else time.time()) - t0
        return {
            "tasks_per_s": round(done / elapsed, 1),
            "tasks": done,
            "elapsed_s": round(elapsed, 3),
            "create_rate_per_s": round(created.rate, 1),
        }

    def baseline_celery(self):
        """No-op Celery tasks published by one process per core and consumed by a prefork worker (one
        process per core): what Celery itself does per task on this machine, saturated."""
        import redis

        from .celery_noop import DONE_KEY, publish

        self.stack.start_noop_worker()
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        total = self.size.celery_tasks
        publishers = self.stack.cores
        procs = []
        try:
            client.delete(DONE_KEY)
            for _ in range(publishers):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", publish(total // publishers)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for proc in procs:
                if proc.stdout.readline().strip() != "ready":
                    raise RuntimeError("a Celery publisher did not start")
            t0 = time.time()
            for proc in procs:
                proc.stdin.write("go\n")
                proc.stdin.flush()
            for proc in procs:
                proc.wait(self.size.wait_s)
            published = time.time()
            expected = publishers * (total // publishers)
            deadline = time.monotonic() + self.size.wait_s
            while int(client.get(DONE_KEY) or 0) < expected and time.monotonic() < deadline:
                time.sleep(0.01)
            done_at = time.time()
            done = int(client.get(DONE_KEY) or 0)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            self.stack.stop_child("noop-worker")
        return {
            "tasks_per_s": round(done / (done_at - t0), 1),
            "tasks": done,
            "publishers": publishers,
            "publish_s": round(published - t0, 3),
            "elapsed_s": round(done_at - t0, 3),
        }

    # --- scenarios -----------------------------------------------------------------------------------
    def create_api(self):
        """Task creation with dispatch running beside it, as in real use: fast agents take every task."""
        self.reset()
        self._fast_agents()
        size = self.size
        max_run = self.run(
            httpload.closed_loop(
                self.port,
                self.task_request,
                total=size.create_requests,
                concurrency=size.concurrency,
                deadline_s=self.size.phase_s,
            )
        )
        self.wait_terminal(max_run.ok, timeout=size.wait_s)
        self.reset()
        self._fast_agents()
        at_rate = self.run(
            httpload.open_loop(
                self.port, self.task_request, rate=100, total=int(100 * size.rate_seconds),
                deadline_s=size.rate_seconds + size.phase_s,
            )
        )  # fmt: skip
        return {
            "max": max_run.summary(),
            "at_100": at_rate.summary(),
            "requests_per_s": round(max_run.rate, 1),
        }

    def _fast_agents(self):
        # Enough slots that agents are never the bottleneck: 20 x 50 = 1,000 calls in flight at most.
        return self.register_agents(20, max_concurrency=50)

    def e2e_single(self):
        self.reset()
        self._fast_agents()
        total = self.size.e2e_tasks
        t0 = time.time()
        created = self.run(
            httpload.closed_loop(
                self.port,
                self.task_request,
                total=total,
                concurrency=self.size.concurrency,
                deadline_s=self.size.wait_s,
            )
        )
        done, failed, last = self.wait_terminal(created.ok, timeout=self.size.wait_s)
        elapsed = (last or time.time()) - t0
        return {
            "tasks_per_s": round(done / elapsed, 1),
            "tasks": done,
            "failed": failed,
            "elapsed_s": round(elapsed, 3),
            "create_rate_per_s": round(created.rate, 1),
            "create": created.summary(),
        }

    def e2e_bulk(self):
        self.reset()
        self._fast_agents()
        requests = self.size.bulk_requests

        def make(i):
            items = [{"type": "bench", "input_data": {"n": i * 1000 + k}} for k in range(self.size.bulk_size)]
            return json_request("POST", "/api/v1/tasks/bulk", {"tasks": items}, self.token)

        bodies = [make(i) for i in range(requests)]  # built before the clock starts
        t0 = time.time()
        created = self.run(
            httpload.closed_loop(
                self.port, lambda i: bodies[i], total=requests, concurrency=2, deadline_s=self.size.wait_s
            )
        )
        done, failed, last = self.wait_terminal(created.ok * self.size.bulk_size, timeout=self.size.wait_s)
        elapsed = (last or time.time()) - t0
        return {
            "tasks_per_s": round(done / elapsed, 1),
            "tasks": done,
            "failed": failed,
            "elapsed_s": round(elapsed, 3),
            "bulk_request": created.summary(),
        }

    def dispatch_latency(self):
        """created_at (stamped by the API) -> the fake agent's receive time, at 100 tasks/s offered."""
        self.reset()
        self._fast_agents()
        seconds = self.size.rate_seconds * 2
        created = self.run(
            httpload.open_loop(
                self.port,
                self.task_request,
                rate=100,
                total=int(100 * seconds),
                deadline_s=seconds + self.size.phase_s,
            )
        )
        self.wait_terminal(created.ok, timeout=self.size.wait_s)
        received = {}
        for task_id, at in self.received():
            received.setdefault(task_id, at)
        rows = self.sql("SELECT task_id::text, extract(epoch FROM created_at) FROM tasks_task")
        latencies = [received[tid] - float(created_at) for tid, created_at in rows if tid in received]
        return {
            "offered_per_s": 100,
            "tasks": len(rows),
            "received": len(latencies),
            **percentiles_ms(latencies),
        }

    def heartbeats(self):
        self.reset()
        agents = self.register_agents(self.size.heartbeat_agents, max_concurrency=10, capability="hb")
        payload = {"status": "online", "current_load": 0}

        def make(i):
            agent_id, token = agents[i % len(agents)]
            return json_request("POST", f"/api/v1/agents/{agent_id}/heartbeat", payload, token)

        max_run = self.run(
            httpload.closed_loop(
                self.port,
                make,
                total=self.size.heartbeat_requests,
                concurrency=self.size.concurrency,
                deadline_s=self.size.phase_s,
            )
        )
        half = max(1.0, round(max_run.rate / 2))
        at_half = self.run(
            httpload.open_loop(
                self.port, make, rate=half, total=int(half * self.size.rate_seconds * 2),
                deadline_s=self.size.rate_seconds * 2 + self.size.phase_s,
            )
        )  # fmt: skip
        return {
            "requests_per_s": round(max_run.rate, 1),
            "max": max_run.summary(),
            "at_half": at_half.summary(),
        }

    def slow_agents(self):
        """N tasks in one bulk request; agents answer after 2 s; 50 agents x max_concurrency 10."""
        self.reset()
        self.register_agents(self.size.slow_agents, max_concurrency=10)
        self.set_agent_delay(2.0)
        total = self.size.slow_tasks
        items = [{"type": "bench", "input_data": {"n": k}} for k in range(total)]
        try:
            t0 = time.time()
            status, _ = self.run(
                httpload.call(self.port, "POST", "/api/v1/tasks/bulk", {"tasks": items}, self.token)
            )
            done, failed, last = self.wait_terminal(total, timeout=min(60, self.size.wait_s))
        finally:
            self.set_agent_delay(0)
        return {
            "all_done_s": round((last or time.time()) - t0, 3) if done >= total else None,
            "done": done,
            "failed": failed,
            "bulk_status": status,
        }

    def live_events(self, log_dir):
        """WebSocket clients watching /ws/tasks/ while tasks run at 25/s = 100 transitions/s
        (created, assigned, sent, completed)."""
        self.reset()
        self._fast_agents()
        out = Path(tempfile.mkstemp(prefix="bench-ws-", suffix=".json", dir=log_dir)[1])
        seconds = self.size.ws_seconds
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.ws_clients", "--port", str(self.port), "--token", self.token,
             "--clients", str(self.size.ws_clients), "--duration", str(seconds + 2), "--out", str(out)],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.stack.sampler.watch("ws-clients", clients.pid)
        try:
            line = ""
            deadline = time.monotonic() + 120
            while not line.startswith("connected") and time.monotonic() < deadline:
                line = clients.stdout.readline()
                if not line and clients.poll() is not None:
                    raise RuntimeError("the WebSocket clients exited before connecting")
            connected = int(line.split()[1]) if line.startswith("connected") else 0
            created = self.run(
                httpload.open_loop(
                    self.port,
                    self.task_request,
                    rate=25,
                    total=int(25 * seconds),
                    deadline_s=seconds + self.size.phase_s,
                )
            )
            clients.wait(seconds + 60)
        finally:
            self.stack.sampler.unwatch("ws-clients")
            if clients.poll() is None:
                clients.kill()
                clients.wait(10)
        stats = json.loads(out.read_text())
        latencies = stats.pop("latencies")
        out.unlink()
        transitions = self.sql("SELECT count(*) FROM tasks_taskevent")[0][0] + created.ok
        return {
            "clients": self.size.ws_clients,
            "connected": connected,
            "transitions": transitions,
            "transitions_per_s": round(transitions / seconds, 1),
            "expected_deliveries": transitions * connected,
            **{k: v for k, v in stats.items()},
            **percentiles_ms(latencies),
        }

    # --- reads at scale ------------------------------------------------------------------------------
    def load_agents(self, count):
        """Bulk-loaded in SQL: agents across 100 capabilities, half online with free slots."""
        self.sql(
            """INSERT INTO agents_agent (agent_id, type, name, endpoint, capabilities, metadata, status,
                   drained_by_operator, last_heartbeat, heartbeat_timeout, heartbeat_expires_at, last_metrics,
                   max_concurrency, current_load, weight, circuit_state, consecutive_failures, success_count,
                   failure_count, success_rate, probe_failures, probe_heartbeats, token_hash, signing_secret,
                   created_at, updated_at)
               SELECT gen_random_uuid(), 'bulk', 'bulk-' || g, 'http://127.0.0.1:9/bulk/' || g,
                   ARRAY['cap-' || (g %% 100)], '{}',
                   CASE WHEN (g / 100) %% 2 = 0 THEN 'online' ELSE 'offline' END,
                   false, now(), 30, now() + interval '1 day', '{}', 10, 0, 1, 'closed', 0, 0, 0, 1.0, 0,
                   false, md5('t' || g) || md5('u' || g), 'secret', now(), now()
               FROM generate_series(1, %s) AS g""",
            [count],
        )

    def load_tasks(self, first, last, *, pending=0):
        """Tasks `first`..`last` (1-based); the first `pending` are pending and due, the rest finished."""
        self.sql(
            """WITH agents AS (SELECT array_agg(agent_id) AS ids, count(*) AS n FROM agents_agent)
               INSERT INTO tasks_task (task_id, type, description, input_data, required_capabilities,
                   priority, status, result, error, attempts, retry_base, max_retries, timeout_seconds,
                   auto_dispatch, strategy, request_fingerprint, avoid_agents, created_at, assigned_at,
                   started_at, finished_at, updated_at, next_attempt_at, assigned_agent_id, event_sequence)
               SELECT gen_random_uuid(), 'type-' || (g %% 50), '', jsonb_build_object('n', g),
                   ARRAY['cap-' || (g %% 100)], 1 + g %% 10,
                   CASE WHEN g <= %(pending)s THEN 'pending' WHEN g %% 20 = 0 THEN 'failed'
                        WHEN g %% 50 = 1 THEN 'cancelled' ELSE 'completed' END,
                   CASE WHEN g > %(pending)s AND g %% 20 <> 0 THEN '{"ok": true}'::jsonb END,
                   CASE WHEN g > %(pending)s AND g %% 20 = 0 THEN '{"message": "boom"}'::jsonb END,
                   CASE WHEN g <= %(pending)s THEN 0 ELSE 1 END, 0, 3, 60, true, '', '', '{}',
                   now() - g * interval '1 second',
                   CASE WHEN g > %(pending)s THEN now() - g * interval '1 second' END,
                   CASE WHEN g > %(pending)s THEN now() - g * interval '1 second' END,
                   CASE WHEN g > %(pending)s THEN now() - g * interval '1 second' + interval '1 second' END,
                   now(), CASE WHEN g <= %(pending)s THEN now() - interval '1 minute' END,
                   CASE WHEN g > %(pending)s THEN agents.ids[1 + g %% agents.n] END,
                   CASE WHEN g <= %(pending)s THEN 1 ELSE 4 END
               FROM generate_series(%(first)s, %(last)s) AS g, agents""",
            {"first": first, "last": last, "pending": pending},
        )

    def load_events(self, count):
        """Four events each for `count` finished tasks: a realistic detail page."""
        self.sql(
            """INSERT INTO tasks_taskevent (task_id, kind, status, attempt, agent_id, reason, created_at)
               SELECT t.task_id, k.kind, k.status, 1, t.assigned_agent_id, '', t.created_at
               FROM (SELECT task_id, assigned_agent_id, created_at FROM tasks_task
                     WHERE status = 'completed' LIMIT %s) AS t,
                    (VALUES ('assigned', 'assigned'), ('sent', 'running'), ('completed', 'completed'))
                        AS k(kind, status)""",
            [count],
        )

    def time_claims(self, rounds):
        """`tasks.engine.claim.claim()` in this process, each round rolled back so every round sees the same
        queue. Returns the timings and how many tasks each round assigned."""
        from tasks.engine.claim import claim

        class Rollback(Exception):
            pass

        timings, assigned = [], []
        for i in range(rounds + 2):
            try:
                with transaction.atomic():
                    t0 = time.perf_counter()
                    assignments = claim()
                    if i >= 2:  # the first rounds warm up this process's caches
                        timings.append(time.perf_counter() - t0)
                        assigned.append(len(assignments))
                    raise Rollback
            except Rollback:
                pass
        return {"assigned_per_round": max(assigned) if assigned else 0, **percentiles_ms(timings)}

    def reads_setup(self):
        """Stops the worker and beat (the loaded queue must stay as loaded) and loads the small table."""
        for name in ("worker", "beat"):
            self.stack.stop_child(name)
        self.reset()
        t0 = time.monotonic()
        self.load_agents(self.size.read_agents)
        self.load_tasks(1, 1000, pending=500)
        self.sql("ANALYZE")
        small = self.time_claims(self.size.claim_rounds)
        step = 100_000
        for first in range(1001, self.size.read_tasks + 1, step):
            self.load_tasks(first, min(self.size.read_tasks, first + step - 1))
        self.load_events(2000)
        self.sql("ANALYZE")
        load_seconds = time.monotonic() - t0
        count = self.sql("SELECT count(*) FROM tasks_task")[0][0]
        sample = self.sql(
            "SELECT t.task_id::text FROM tasks_task t JOIN tasks_taskevent e ON e.task_id = t.task_id"
            " GROUP BY t.task_id LIMIT 200"
        )
        self.detail_ids = [row[0] for row in sample]
        self.filter_agents = [
            row[0]
            for row in self.sql(
                "SELECT assigned_agent_id::text FROM tasks_task WHERE assigned_agent_id IS NOT NULL LIMIT 50"
            )
        ]
        return {
            "tasks": count,
            "agents": self.size.read_agents,
            "load_s": round(load_seconds, 1),
            "claim_1k": small,
        }

    def reads(self):
        """List, filter and detail latency, one request at a time (service latency, no queueing)."""
        total = self.size.read_requests

        def run_paths(paths):
            def make(i):
                return json_request("GET", paths[i % len(paths)], None, self.token)

            # A few requests first, so the first request's import and cache costs stay out of the p99.
            self.run(httpload.closed_loop(self.port, make, total=5, concurrency=1, deadline_s=10))
            return self.run(
                httpload.closed_loop(
                    self.port, make, total=total, concurrency=1, deadline_s=self.size.phase_s * 2
                )
            )

        filters = [
            "/api/v1/tasks?status=pending",
            "/api/v1/tasks?status=failed",
            "/api/v1/tasks?type=type-7",
            "/api/v1/tasks?priority=3",
            *[f"/api/v1/tasks?agent_id={a}" for a in self.filter_agents[:10]],
            "/api/v1/tasks?status=completed&type=type-3",
        ]
        results = {
            "list": run_paths(["/api/v1/tasks"]),
            "list_page_500": run_paths(["/api/v1/tasks?page_size=500"]),
            "filter": run_paths(filters),
            "detail": run_paths([f"/api/v1/tasks/{tid}" for tid in self.detail_ids]),
            "agents_list": run_paths(["/api/v1/agents", "/api/v1/agents?status=online"]),
        }
        out = {name: result.summary() for name, result in results.items()}
        out["claim_1m"] = self.time_claims(self.size.claim_rounds)
        return out

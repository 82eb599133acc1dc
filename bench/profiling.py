"""py-spy around a scenario: samples the web and worker processes, then sums the stacks by frame.

`start()` launches one `py-spy record --format raw` per process (bounded by a duration); `stop()` ends
them with SIGINT (py-spy then writes its file) and returns, per process, the share of samples in which
each frame appears (inclusive) and in which it is the innermost frame (self).
"""

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

PROCESSES = ("web", "worker")


def _py_spy():
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else "py-spy"


def start(stack, scenario, out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for name in PROCESSES:
        child = stack.children.get(name)
        if child is None:
            continue
        path = out_dir / f"{scenario}-{name}.txt"
        proc = subprocess.Popen(
            [_py_spy(), "record", "--pid", str(child.pid), "--rate", "200", "--duration", "300",
             "--format", "raw", "--output", str(path), "--nonblocking", "--subprocesses",
             # BENCH_PROFILE_IDLE=1: also threads that wait, labelled (who waits on what, not only who
             # computes); the summaries below then show the thread labels as frames.
             *(["--idle", "--threads"] if os.environ.get("BENCH_PROFILE_IDLE") else []),
             # BENCH_PROFILE_GIL=1: only the thread holding the GIL, i.e. where the Python CPU goes
             # (a thread waiting for Postgres in psycopg's C code otherwise counts as busy).
             *(["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        running.append((f"{scenario}/{name}", proc, path))
    return running


def stop(running):
    summaries = {}
    for label, proc, path in running:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if path.exists():
            summaries[label] = summarize(path)
            summaries[label]["file"] = str(path)
    return summaries


def _frame(raw):
    # raw frames look like "function (path/to/file.py:123)"
    name, _, where = raw.rpartition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    else:
        file = file.split("/main/", 1)[-1]
    return f"{file}:{name}"


def summarize(path, top=40):
    inclusive = collections.Counter()
    self_time = collections.Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    share = lambda c: [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)] if total else []  # noqa: E731
    return {"samples": total, "inclusive": share(inclusive), "self": share(self_time)}

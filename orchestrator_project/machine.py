"""How many CPU cores this process may use: the default number of web processes (WEB_CONCURRENCY)."""

import math
import os
from pathlib import Path

# cgroup v2's CPU quota of this container, "max 100000" when unlimited (Docker's --cpus, Kubernetes'
# CPU limit). os.cpu_count() sees the host's cores whatever the quota.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpu_count(cpu_max=CGROUP_CPU_MAX):
    """The cores we may run on (CPU affinity, as `taskset` or a cpuset sets it), capped by a CPU quota."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
        cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 file, or "max": no quota
    return cores

"""The default number of web processes: the cores this process may run on, capped by a CPU quota."""

import os

from orchestrator_project.machine import usable_cpu_count

AFFINITY = len(os.sched_getaffinity(0))


def quota(tmp_path, text):
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


def test_with_no_quota_it_is_the_cores_this_process_may_run_on(tmp_path):
    assert usable_cpu_count(quota(tmp_path, "max 100000\n")) == AFFINITY
    assert usable_cpu_count(tmp_path / "no-cgroup-v2-here") == AFFINITY


def test_a_quota_caps_it_rounded_up_and_never_below_one(tmp_path):
    assert usable_cpu_count(quota(tmp_path, "150000 100000\n")) == min(AFFINITY, 2)
    assert usable_cpu_count(quota(tmp_path, "20000 100000\n")) == 1
    assert usable_cpu_count(quota(tmp_path, f"{AFFINITY * 400000} 100000\n")) == AFFINITY

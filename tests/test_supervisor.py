"""`make run`'s supervisor (orchestrator_project/supervisor.py): a crashed child is restarted after a delay
that doubles with each further crash in the window, one that keeps crashing stops everything with a
non-zero exit, and only a stop request (or giving up) stops the children; a second one kills them.

The policy is driven by a clock the tests hold and children they crash by hand; the loop itself runs
real processes that tell it what happened by their exits and signals, so nothing here sleeps.
"""

import signal
import sys

import pytest

from orchestrator_project.supervisor import Child, RestartPolicy, Supervisor, describe_exit

pytestmark = pytest.mark.timeout(60)


class FakeChild:
    def __init__(self, name):
        self.name = name
        self.returncode = None
        self.signals = []

    def poll(self):
        return self.returncode

    def signal_group(self, signum):
        self.signals.append(signum)
        if self.returncode is None and signum in (signal.SIGTERM, signal.SIGKILL):
            self.returncode = -signum

    def crash(self, returncode=-signal.SIGKILL):
        self.returncode = returncode


class Harness:
    """A supervisor of web, worker and beat with fake children, a log kept in a list, and no clock: the
    tests hand `tick()` the time."""

    def __init__(self, **policy):
        self.started = {"web": [], "worker": [], "beat": []}
        self.lines = []
        self.supervisor = Supervisor(
            {name: [name] for name in self.started},
            env={},
            policy=RestartPolicy(**{"initial": 1.0, "maximum": 30.0, "limit": 5, "window": 60.0, **policy}),
            stop_grace=10,
            spawn=self._spawn,
            clock=None,  # tick() is given the time; run() is not used with fakes
            log=self.lines.append,
        )
        for name in self.started:
            self.supervisor.start(name)

    def _spawn(self, name, argv, env):
        child = FakeChild(name)
        self.started[name].append(child)
        return child

    def current(self, name):
        return self.started[name][-1]

    def tick(self, now):
        return self.supervisor.tick(now)


def test_a_crashed_child_is_restarted_after_the_initial_delay_and_its_leftovers_killed():
    stack = Harness()
    worker = stack.current("worker")
    worker.crash()

    assert stack.tick(100.0) == 1.0
    assert stack.lines == ["worker was killed by SIGKILL (crash 1 within 60 s); restarting it in 1 s"]
    assert worker.signals == [signal.SIGKILL]  # its process group: whatever it started dies with it
    assert stack.tick(100.5) == 0.5 and len(stack.started["worker"]) == 1

    assert stack.tick(101.0) is None
    assert len(stack.started["worker"]) == 2 and stack.lines[-1] == "restarting worker"
    # The others were left alone.
    assert [len(stack.started[name]) for name in ("web", "beat")] == [1, 1]
    assert stack.current("web").signals == [] and stack.current("beat").signals == []


def test_each_further_crash_within_the_window_doubles_the_delay_up_to_the_maximum():
    stack = Harness(initial=1.0, maximum=5.0, limit=10, window=60.0)
    delays = []
    now = 0.0
    for _ in range(5):
        stack.current("web").crash(3)
        delay = stack.tick(now)
        delays.append(delay)
        now += delay
        stack.tick(now)  # the restart
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(stack.started["web"]) == 6
    assert stack.lines[-2] == "web exited with code 3 (crash 5 within 60 s); restarting it in 5 s"


def test_crashes_older_than_the_window_are_forgotten():
    stack = Harness(initial=1.0, limit=3, window=60.0)
    for now in (0.0, 61.0, 122.0, 183.0):
        stack.current("beat").crash()
        assert stack.tick(now) == 1.0
        stack.tick(now + 1.0)
    assert stack.supervisor.stop_requests == 0 and len(stack.started["beat"]) == 5


def test_a_child_that_crashes_the_limit_within_the_window_makes_it_give_up():
    stack = Harness(initial=1.0, limit=3, window=60.0)
    now = 0.0
    for _ in range(2):
        stack.current("worker").crash(1)
        now += stack.tick(now)
        stack.tick(now)
    stack.current("worker").crash(1)

    assert stack.tick(now + 10) is None
    assert stack.lines[-1] == "worker exited with code 1 (crash 3 within 60 s, the limit is 3); giving up"
    assert len(stack.started["worker"]) == 3  # not started again
    assert stack.supervisor.exit_code == 1 and stack.supervisor.stop_requests == 1


def test_a_stop_request_cancels_a_pending_restart_and_a_second_one_kills_everything():
    stack = Harness()
    stack.current("beat").crash()
    stack.tick(0.0)
    stack.supervisor.request_stop()
    assert all(stack.current(name).signals == [] for name in ("web", "worker"))  # the first: graceful, later
    stack.supervisor.request_stop()
    assert stack.current("web").signals == [signal.SIGKILL]
    assert stack.current("worker").signals == [signal.SIGKILL]


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-signal.SIGTERM) == "was killed by SIGTERM"


# --- the loop, with real processes -------------------------------------------------------------------
def python(code):
    return [sys.executable, "-I", "-c", f"import os, signal, sys\n{code}"]


WAITS_FOR_A_SIGNAL = python("signal.pause()")
# Asks its parent (the supervisor, here the test process) to stop, as a Ctrl-C would.
ASKS_TO_STOP = python("os.kill(os.getppid(), signal.SIGTERM)\nsignal.pause()")


def run(commands, **policy):
    """Runs a real supervisor over `commands`; returns (exit code, log lines, every child started)."""
    lines, started = [], []

    def spawn(name, argv, env):
        started.append(Child(name, argv, env))
        return started[-1]

    supervisor = Supervisor(
        commands,
        env=None,
        policy=RestartPolicy(**{"initial": 0.0, "maximum": 0.0, "limit": 3, "window": 600.0, **policy}),
        stop_grace=120,
        spawn=spawn,
        log=lines.append,
    )
    return supervisor.run(), lines, started


def test_it_gives_up_on_a_child_that_keeps_crashing_stops_the_rest_and_exits_non_zero():
    code, lines, started = run({"steady": WAITS_FOR_A_SIGNAL, "crasher": python("sys.exit(3)")})

    assert code == 1
    assert [child.name for child in started] == ["steady", "crasher", "crasher", "crasher"]
    assert lines == [
        "crasher exited with code 3 (crash 1 within 600 s); restarting it in 0 s",
        "restarting crasher",
        "crasher exited with code 3 (crash 2 within 600 s); restarting it in 0 s",
        "restarting crasher",
        "crasher exited with code 3 (crash 3 within 600 s, the limit is 3); giving up",
        "stopping steady",
    ]
    assert started[0].process.returncode == -signal.SIGTERM  # stopped gracefully


def test_a_stop_request_stops_every_child_gracefully_and_exits_zero():
    code, lines, started = run({"steady": WAITS_FOR_A_SIGNAL, "asks": ASKS_TO_STOP})

    assert code == 0
    assert lines == ["stopping steady, asks"]
    assert [child.process.returncode for child in started] == [-signal.SIGTERM, -signal.SIGTERM]


def test_a_second_stop_request_kills_a_child_that_ignores_the_first():
    # It asks to stop, and answers the SIGTERM that follows by asking again instead of exiting.
    stubborn = python(
        "signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getppid(), signal.SIGTERM))\n"
        "os.kill(os.getppid(), signal.SIGTERM)\n"
        "while True: signal.pause()"
    )
    code, lines, started = run({"stubborn": stubborn})

    assert code == 0
    assert lines == ["stopping stubborn"]  # no "did not stop within 120 s": killed long before that
    assert started[0].process.returncode == -signal.SIGKILL


def test_the_signal_handlers_of_the_caller_are_restored():
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)}
    run({"asks": ASKS_TO_STOP})
    assert {signum: signal.getsignal(signum) for signum in before} == before

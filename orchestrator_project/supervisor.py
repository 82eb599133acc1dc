"""Keeps a set of child processes running: the web server, the Celery worker and beat under `make run`.

A child that exits while nobody asked it to is a crash: its process group is cleared (a Uvicorn parent
killed outright leaves its worker processes behind, still holding the port) and it is started again
after a delay that doubles with each further crash of that child within the window. A child that
crashes `limit` times within the window is not worth restarting: everything is stopped and the
supervisor exits non-zero, so that whatever runs `make run` (a terminal, systemd) sees the failure.

Only SIGINT/SIGTERM (or giving up) stops everything: each child gets SIGTERM and up to `stop_grace`
seconds to finish its work, then SIGKILL. A second SIGINT/SIGTERM kills them all at once.

The loop sleeps until something happens: a signal (SIGCHLD when a child exits, or a stop request)
wakes it through signal.set_wakeup_fd, and a pending restart wakes it when it falls due. `tick()` is the
whole of one decision, a function of the children's state and the time it is given, so the policy can
be tested with a fake clock and fake children.
"""

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

_PR_SET_PDEATHSIG = 1
# The most the loop waits without looking at its children, should a wake-up ever go astray.
_IDLE_WAKE_SECONDS = 5.0


@dataclass
class RestartPolicy:
    """How long to wait before restarting a crashed child, and when to give up on it."""

    initial: float  # seconds before the first restart
    maximum: float  # the longest wait between restarts
    limit: int  # this many crashes of one child within `window` seconds: give up
    window: float
    _crashes: dict = field(default_factory=dict, repr=False)

    def crashed(self, name, now):
        """Record a crash of `name` at `now`. Returns (crashes within the window, seconds to wait before
        restarting it); the delay is None when the child has crashed too often and must not be restarted.
        """
        recent = [at for at in self._crashes.get(name, []) if now - at < self.window] + [now]
        self._crashes[name] = recent
        if len(recent) >= self.limit:
            return len(recent), None
        return len(recent), min(self.maximum, self.initial * 2 ** (len(recent) - 1))


def describe_exit(returncode):
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _die_with_parent():
    # Runs in the child before exec. If the supervisor is killed outright (SIGKILL, the OOM killer) it
    # cannot stop anything, so the kernel sends the child SIGTERM instead of leaving it orphaned.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process, leader of its own process group."""

    def __init__(self, name, argv, env):
        self.name = name
        # Its own group (and session): a terminal's Ctrl-C reaches only the supervisor, which stops the
        # children in order, and the group names everything the child started (Uvicorn's workers).
        self.process = subprocess.Popen(argv, env=env, start_new_session=True, preexec_fn=_die_with_parent)
        self.pid = self.process.pid

    def poll(self):
        return self.process.poll()

    def signal_group(self, signum):
        # After the leader is gone the group lives on while any member does, and Linux does not hand its
        # number to a new process meanwhile; with no member left this finds nothing.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)


def spawn(name, argv, env):
    return Child(name, argv, env)


def _stderr(line):
    print(f"runstack: {line}", file=sys.stderr, flush=True)


class Supervisor:
    def __init__(self, commands, *, env, policy, stop_grace, spawn=spawn, clock=time.monotonic, log=_stderr):
        self.commands = dict(commands)
        self.env = env
        self.policy = policy
        self.stop_grace = stop_grace
        self.spawn = spawn
        self.clock = clock
        self.log = log
        self.running = {}  # name -> Child
        self.restart_due = {}  # name -> clock time at which the crashed child starts again
        self.stop_requests = 0
        self.exit_code = 0

    # --- decisions ------------------------------------------------------------------------------------
    def start(self, name):
        self.running[name] = self.spawn(name, self.commands[name], self.env)

    def tick(self, now):
        """Reap crashed children, schedule their restarts (or give up), start those due.

        Returns the seconds until the next restart falls due (None: nothing pending)."""
        for name, child in list(self.running.items()):
            returncode = child.poll()
            if returncode is None:
                continue
            del self.running[name]
            # Whatever it left behind is headless: Uvicorn's workers outlive a killed parent and would
            # keep the port from the next one.
            child.signal_group(signal.SIGKILL)
            crashes, delay = self.policy.crashed(name, now)
            window = f"crash {crashes} within {self.policy.window:g} s"
            if delay is None:
                limit = f"the limit is {self.policy.limit}"
                self.log(f"{name} {describe_exit(returncode)} ({window}, {limit}); giving up")
                self.exit_code = 1
                self.request_stop()
                return None
            self.log(f"{name} {describe_exit(returncode)} ({window}); restarting it in {delay:g} s")
            self.restart_due[name] = now + delay
        for name, due in sorted(self.restart_due.items(), key=lambda item: item[1]):
            if due <= now:
                del self.restart_due[name]
                self.log(f"restarting {name}")
                self.start(name)
        if not self.restart_due:
            return None
        return max(0.0, min(self.restart_due.values()) - now)

    def request_stop(self, signum=None, frame=None):
        """SIGINT/SIGTERM: the first stops the children gracefully, a second kills them at once."""
        self.stop_requests += 1
        if self.stop_requests > 1:
            for child in list(self.running.values()):
                child.signal_group(signal.SIGKILL)

    # --- the loop -------------------------------------------------------------------------------------
    def run(self):
        """Start every child, keep them running until asked to stop (or giving up); returns the exit code."""
        with _Wakeups(self.request_stop) as wakeups:
            for name in self.commands:
                if self.stop_requests:
                    break
                self.start(name)
            while not self.stop_requests:
                wait = self.tick(self.clock())
                if not self.stop_requests:
                    wakeups.wait(_IDLE_WAKE_SECONDS if wait is None else min(wait, _IDLE_WAKE_SECONDS))
            self.restart_due.clear()
            self._stop_all(wakeups)
        return self.exit_code

    def _stop_all(self, wakeups):
        if self.running:
            self.log(f"stopping {', '.join(self.running)}")
        for child in self.running.values():
            child.signal_group(signal.SIGTERM)
        deadline = self.clock() + self.stop_grace
        while self.running:
            for name, child in list(self.running.items()):
                if child.poll() is not None:
                    child.signal_group(signal.SIGKILL)  # anything of its group still about
                    del self.running[name]
            remaining = deadline - self.clock()
            if self.running and remaining <= 0:
                self.log(f"{', '.join(self.running)} did not stop within {self.stop_grace:g} s; killing")
                for child in self.running.values():
                    child.signal_group(signal.SIGKILL)
                deadline = float("inf")  # SIGKILL cannot be refused: wait for the exits
            elif self.running:
                wakeups.wait(min(remaining, _IDLE_WAKE_SECONDS))


class _Wakeups:
    """Routes SIGINT/SIGTERM to `on_stop` and turns every signal (SIGCHLD included) into a wake-up of
    `wait()`. Restores the previous handlers on exit, so the supervisor can run inside a test process."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)

    def __init__(self, on_stop):
        self.on_stop = on_stop

    def __enter__(self):
        self.reader, self.writer = socket.socketpair()
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        self.previous_fd = signal.set_wakeup_fd(self.writer.fileno(), warn_on_full_buffer=False)
        self.previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        signal.signal(signal.SIGINT, self.on_stop)
        signal.signal(signal.SIGTERM, self.on_stop)
        # SIGCHLD is ignored by default, which would never trip the wake-up fd: a no-op handler does.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        return self

    def wait(self, seconds):
        select.select([self.reader], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while self.reader.recv(4096):
                pass

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self.previous_fd)
        self.reader.close()
        self.writer.close()

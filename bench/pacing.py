"""Paced load from several threads: a schedule of due times (seconds from the start), shared out."""

import threading
import time


def run_schedule(schedule, action, *, threads, on_exit=None):
    """Call `action()` at each due time of `schedule`. Each of `threads` threads takes every n-th slot:
    together they keep a pace one thread cannot (a task creation's commit waits for the disk).
    `on_exit` runs at the end of each thread, in it (closing its database connection). Returns the start."""
    started = time.monotonic()

    def work(offset):
        try:
            for due in schedule[offset::threads]:
                delay = started + due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                action()
        finally:
            if on_exit is not None:
                on_exit()

    workers = [threading.Thread(target=work, args=(offset,)) for offset in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return started

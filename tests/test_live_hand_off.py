"""live.hand_off: work after a commit runs on the publisher's thread, gathered per receiver."""

import threading

from orchestrator_project import live


def test_handed_items_reach_their_receiver_in_one_call_off_the_callers_thread():
    calls = []
    done = threading.Event()

    def receiver(items):
        calls.append((threading.get_ident(), list(items)))
        if sum(len(batch) for _, batch in calls) >= 5:
            done.set()

    live.hand_off(receiver, [1, 2])
    live.hand_off(receiver, [3])
    live.hand_off(receiver, [])  # nothing to hand: no call for it
    live.hand_off(receiver, (4, 5))
    assert done.wait(5), calls
    assert [item for _, batch in calls for item in batch] == [1, 2, 3, 4, 5]
    assert threading.get_ident() not in {ident for ident, _ in calls}
    assert len(calls) <= 2  # a burst is one call (two if the publisher woke in between)


def test_a_failing_receiver_stops_neither_the_others_nor_the_live_updates():
    got = []
    changed = threading.Condition()

    def broken(items):
        raise RuntimeError("a bug in a receiver")

    def working(items):
        with changed:
            got.extend(items)
            changed.notify_all()

    live.hand_off(broken, ["x"])
    live.hand_off(working, ["y"])
    with changed:
        assert changed.wait_for(lambda: got == ["y"], timeout=5)
    live.hand_off(working, ["z"])  # the publisher goes on after the failure
    with changed:
        assert changed.wait_for(lambda: got == ["y", "z"], timeout=5)

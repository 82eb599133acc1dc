"""orchestrator_project.ids: version-4 UUIDs read in blocks, never repeated across threads or a fork."""

import os
import threading
import uuid

from orchestrator_project import ids


def test_ids_are_random_version_4_uuids_and_never_repeat():
    made = [ids.uuid4() for _ in range(5000)]  # many blocks
    assert len(set(made)) == len(made)
    assert all(isinstance(u, uuid.UUID) and u.version == 4 and u.variant == uuid.RFC_4122 for u in made)


def test_threads_draw_from_blocks_of_their_own():
    found = []

    def draw():
        found.extend(ids.uuid4() for _ in range(1000))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 4000


def test_a_forked_child_does_not_repeat_its_parents_next_ids():
    ids.uuid4()  # the parent has a block under way
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(ids.uuid4().bytes for _ in range(10)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(ids.uuid4().bytes for _ in range(10))
    assert len(child) == 160 and child != parent
    assert not {child[i : i + 16] for i in range(0, 160, 16)} & {
        parent[i : i + 16] for i in range(0, 160, 16)
    }

"""Random version-4 UUIDs without a system call each.

`uuid.uuid4()` reads `os.urandom` for every id: a system call that lets go of the GIL, and in a busy
worker taking it back means waiting for whichever thread holds it (up to the 5 ms switch interval). The
event loop signing every agent call, and a bulk creation of 1,000 tasks, paid that per id: a tenth of a
busy worker's py-spy samples sat in uuid4. Here each thread reads the same source in blocks (256 ids
at a time) and slices them; a forked child never reuses its parent's block.
"""

import os
import threading
import uuid

_IDS_PER_READ = 256
_local = threading.local()
_generation = 0  # bumped in a forked child, whose inherited blocks are its parent's


def _forked():
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def uuid4():
    """A random UUID (version 4), as uuid.uuid4() makes, from the operating system's randomness."""
    local = _local
    if getattr(local, "generation", None) != _generation or local.offset >= len(local.block):
        local.block, local.offset, local.generation = os.urandom(16 * _IDS_PER_READ), 0, _generation
    start = local.offset
    local.offset = start + 16
    return uuid.UUID(bytes=local.block[start : start + 16], version=4)

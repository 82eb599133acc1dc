"""Short full garbage collections in the long-running processes (web and worker).

A full (generation 2) collection walks every object the collector tracks. In the web process that is
about 135,000 objects of Django, DRF, the URL conf and the libraries, alive for as long as the process,
and each full pass took 90-145 ms (gc.callbacks in the web process under the heartbeat benchmark).
Requests leave enough cyclic garbage that such a pass came every few seconds, stalling every request in
flight: it was the p99 latency at moderate load. `gc.freeze()` moves what is alive once start-up is
done into the permanent generation, which collections skip; garbage is still collected as before.

Measured in one benchmark run each (bench/notes.md, point 21): heartbeat p99 at half the max rate 63 ->
13 ms, creation p99 at 100 requests/s 51 -> 12 ms. Raising the collection thresholds instead made each
young collection the long pause (20,000: ~15 ms each; 50,000: ~60 ms each).
"""

import gc


def freeze_startup_objects():
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()

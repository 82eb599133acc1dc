"""The dispatch engine: how a pending task reaches an agent and how its answer comes back.

Modules, in the order a task meets them:

- wake.py        what starts a dispatch round (a ring on commit, the writer's kick, the clock)
- dispatcher.py  the thread in each worker that runs rounds when woken
- claim.py       one round: lock due tasks, choose agents (strategies.py), reserve slots, assign
- callspec.py    what a call needs, read by the assigning statement itself
- runner.py      the worker's event loop of agent calls in flight, and their start and shutdown
- agent_calls.py one signed call to an agent, and what its answer means (an Outcome, outcome.py)
- writer.py      the thread that applies sent marks and outcomes in batches
- outcomes.py    applying an outcome: complete, accept, retry with backoff, fail; ending and requeueing
- handback.py    work handed back when an agent or a worker goes away
- sweeps.py      the beat's sweep: expired leases and deadlines

Every change of a task goes through tasks/transitions.py; every change of an agent's load, figures
or breaker through agents/capacity.py.
"""

"""Fixtures of the chaos suite: real worker, beat and web processes, agents, and the servers to break."""

from pathlib import Path

import pytest

CHAOS_DIR = Path(__file__).resolve().parent
PLUGIN = "tests.chaos.plugin"


def pytest_ignore_collect(collection_path, config):
    # The scenarios restart servers, so they run only on private ones (`make chaos`), never in `make test`.
    if config.pluginmanager.has_plugin(PLUGIN):
        return None
    asked_for = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if any(path.is_relative_to(CHAOS_DIR) for path in asked_for):
        raise pytest.UsageError(
            f"the chaos suite brings its own servers: run `make chaos` (pytest -p {PLUGIN})"
        )
    return True


@pytest.fixture
def servers(pytestconfig):
    from .plugin import servers_key

    return pytestconfig.stash[servers_key]


@pytest.fixture
def stack(tmp_path, transactional_db, settings):
    from .harness import SWEEP_SECONDS, Stack, create_beat_schedules

    settings.SWEEP_INTERVAL_SECONDS = SWEEP_SECONDS
    create_beat_schedules()
    processes = Stack(tmp_path)
    yield processes
    processes.stop()


@pytest.fixture
def chaos_agents():
    """Make agents (ChaosAgent by default, or any class given); all are closed at the end."""
    from .agents import ChaosAgent

    made = []

    def make(behaviour=None, *, cls=ChaosAgent, **kwargs):
        agent = cls(behaviour, **kwargs) if behaviour is not None else cls(**kwargs)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()

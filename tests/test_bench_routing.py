"""The routing benchmark's scoring (bench/routing.py): what its report and targets are computed with.
The benchmark itself runs in `make bench` (python -m bench.run --routing), not here."""

import pytest

from bench import routing


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert routing.percentile(values, 0.50) == 50
    assert routing.percentile(values, 0.99) == 99
    assert routing.percentile([7], 0.99) == 7
    assert routing.percentile([], 0.5) is None


def test_a_steady_split_does_not_oscillate_and_a_flipping_one_does():
    steady = [(agent, second) for second in range(10) for agent in (0, 1)]
    assert routing.oscillation(steady, 2) == 0
    flipping = [(second % 2, second) for second in range(10)]
    assert routing.oscillation(flipping, 2) == 1
    # Half the traffic moves each second.
    half = [(a, s) for s in range(4) for a in ((0, 0, 1, 1) if s % 2 else (0, 0, 0, 0))]
    assert routing.oscillation(half, 2) == pytest.approx(0.5)
    # Seconds without calls between them are not compared.
    assert routing.oscillation([(0, 0), (1, 5)], 2) is None


def test_a_run_is_summarized_with_unfinished_tasks_counted_at_the_drain_deadline():
    tasks = [(0.1, True, 1)] * 98 + [(2.0, False, 6), (None, False, 2)]
    calls = [(0, 0, 200)] * 3 + [(1, 0, 503)]
    summary = routing.summarize(tasks, calls, agents=2, drain_seconds=30)
    assert summary["p50_ms"] == 100.0 and summary["p99_ms"] == 2000.0
    assert summary["success_rate"] == 0.98 and summary["unfinished"] == 1
    assert summary["retries_per_task"] == pytest.approx((5 + 1) / 100)
    assert summary["share"] == [0.75, 0.25]


def _runs(p99s, oscillations=None):
    oscillations = oscillations or {}
    return {s: {"p99_ms": p99, "oscillation": oscillations.get(s, 0.1)} for s, p99 in p99s.items()}


def test_the_targets_compare_adaptive_with_least_connections_and_the_best_other():
    good = _runs({"round_robin": 900, "least_connections": 1000, "fastest": 800, "adaptive": 650})
    bad = _runs({"round_robin": 900, "least_connections": 1000, "fastest": 600, "adaptive": 750})
    verdicts = routing.judge({"fast_failer@80": good, "steady@50": bad})
    by_check = {(v["case"], v["check"]): v["met"] for v in verdicts}
    assert by_check == {
        ("fast_failer", "p99 <= 1.05 x best other"): True,
        ("fast_failer", "p99 <= 0.70 x least_connections"): True,  # 650 <= 700
        ("fast_failer", "oscillation <= 1.25 x round_robin"): True,
        ("steady", "p99 <= 1.05 x best other"): False,  # 750 > 630
        ("steady", "oscillation <= 1.25 x round_robin"): True,
    }


def test_oscillation_is_also_judged_against_what_chance_gives_the_same_split():
    runs = _runs({"round_robin": 900, "least_connections": 1000, "fastest": 800, "adaptive": 500})
    runs["adaptive"]["chance_oscillation"] = 0.1

    def against_chance(index):
        runs["adaptive"]["oscillation"] = index
        verdicts = routing.judge({"steady@50": runs})
        [verdict] = [v for v in verdicts if v["check"] == "oscillation <= 1.25 x chance"]
        return verdict["met"]

    assert against_chance(0.12)
    assert not against_chance(0.2)


def test_oscillation_beyond_round_robins_chance_wobble_fails():
    runs = _runs(
        {"round_robin": 900, "least_connections": 1000, "fastest": 800, "adaptive": 500},
        {"round_robin": 0.1, "adaptive": 0.3},
    )
    [oscillating] = [v for v in routing.judge({"steady@80": runs}) if v["check"].startswith("oscillation")]
    assert not oscillating["met"]


def test_the_fleet_matches_the_issue():
    assert routing.MEDIANS_MS == (50, 50, 100, 100, 200, 400)
    assert routing.FAILURE_RATES == (0.01, 0.01, 0.02, 0.05, 0.01, 0.20)
    assert routing.agent_profiles("fast_failer")[routing.FAST_FAILER]["fast_503"] == 0.5
    assert routing.agent_profiles("slowdown", slowed=True)[routing.SLOWED]["slow"] == 10
    assert routing.fleet_capacity() == pytest.approx(2 * (20 + 20 + 10 + 10 + 5 + 2.5))


def test_the_simulation_is_seeded_and_uses_the_products_strategies(settings):
    from bench import routing_sim

    def once(strategy):
        return routing_sim.simulate(
            agents=6, case="fast_failer", load=0.5, strategy_name=strategy, seconds=5, seed=3
        )

    assert once("adaptive") == once("adaptive")
    # The fast failer (behaviour 1) answers 503 half the time: adaptive learns to send it little.
    assert once("adaptive")["share"][1] < once("least_connections")["share"][1]


def test_the_simulations_window_keeps_it_seeded_and_its_arrivals(settings):
    from bench import routing_sim

    def once(window):
        return routing_sim.simulate(
            agents=60, case="slowdown", load=0.8, strategy_name="adaptive", seconds=1, seed=5, window=window
        )

    assert once(8) == once(8)
    assert once(8)["tasks"] == once(None)["tasks"]  # the same arrivals, whatever each round sees


def test_the_simulation_averages_its_seeds_figure_by_figure(settings):
    from bench import routing_sim

    runs = [
        routing_sim.simulate(
            agents=6, case="steady", load=0.5, strategy_name="adaptive", seconds=2, seed=seed
        )
        for seed in (3, 4)
    ]
    assert runs[0] != runs[1]
    merged = routing_sim._mean_of(runs)
    assert merged["p99_ms"] == pytest.approx((runs[0]["p99_ms"] + runs[1]["p99_ms"]) / 2, abs=0.051)
    assert merged["share"] == [
        pytest.approx((a + b) / 2, abs=1e-3) for a, b in zip(runs[0]["share"], runs[1]["share"], strict=True)
    ]
    assert routing_sim._mean_of(runs[:1]) == runs[0]


def test_the_simulations_loads_can_be_shares_of_a_measured_capacity(settings):
    from bench import routing_sim

    results = routing_sim.run(agents=6, seconds=2, seeds=[3], loads=(0.5,), capacity_share=0.5)
    alone = routing_sim.simulate(
        agents=6, case="steady", load=0.25, strategy_name="adaptive", seconds=2, seed=3
    )
    assert results["runs"]["steady@50"]["adaptive"] == alone


def test_the_capacity_counts_completions_inside_the_window_only():
    finished = [0.5, 3.0, 3.5, 4.0, 7.9, 8.0, 9.5]
    # The queue builds until 3 s, arrivals stop at 8 s: five completions in five seconds.
    assert routing.throughput(finished, start=3.0, end=8.0) == pytest.approx(1.0)
    assert routing.throughput([], start=0, end=2) == 0
    with pytest.raises(ValueError):
        routing.throughput(finished, start=5, end=5)


def test_the_chance_oscillation_tells_a_random_split_from_a_swinging_one():
    import random

    rng = random.Random(3)
    # Two agents each taking a call at random, 20 calls a second: all of its swing is chance.
    at_random = [(rng.randrange(2), second) for second in range(60) for _ in range(20)]
    index, chance = routing.oscillation(at_random, 2), routing.chance_oscillation(at_random, 2)
    assert 0.75 * chance <= index <= 1.25 * chance
    # The same volume and overall shares, but all traffic flips between the agents every 2 s.
    swinging = [((second // 2) % 2, second) for second in range(60) for _ in range(20)]
    assert routing.oscillation(swinging, 2) > 1.5 * routing.chance_oscillation(swinging, 2)
    # A strict rotation swings less than chance would.
    rotation = [(n % 2, second) for second in range(60) for n in range(20)]
    assert routing.oscillation(rotation, 2) == 0 < routing.chance_oscillation(rotation, 2)
    assert routing.chance_oscillation([(0, 0), (1, 5)], 2) is None


def test_a_run_can_be_limited_to_some_cases_loads_and_strategies():
    args = routing.parse_args(["--cases", "slowdown", "--loads", "0.8", "--strategies", "adaptive,fastest"])
    assert (args.cases, args.loads, args.strategies) == (["slowdown"], [0.8], ["adaptive", "fastest"])
    assert routing.parse_args([]).cases is None
    with pytest.raises(SystemExit):
        routing.parse_args(["--strategies", "telepathy"])


def test_the_verdicts_say_how_much_of_the_degraded_fleet_the_load_asked_for():
    runs = _runs({"round_robin": 900, "least_connections": 1000, "fastest": 800, "adaptive": 750})
    verdicts = routing.judge(
        {"slowdown@80": runs, "steady@80": runs}, capacity=100.0, degraded={"slowdown": 75.0}
    )
    details = {(v["case"], v["check"]): v["detail"] for v in verdicts}
    offered = "; offered 80.0 tasks/s, 107 % of the 75.0 this fleet completes at its worst"
    assert details["slowdown", "p99 <= 0.70 x least_connections"].endswith(offered)
    assert details["slowdown", "p99 <= 1.05 x best other"].endswith(offered)
    assert "offered" not in details["steady", "p99 <= 1.05 x best other"]  # no degraded fleet there
    # Without the capacities the verdicts are as before.
    plain = routing.judge({"slowdown@80": runs})
    assert all("offered" not in v["detail"] for v in plain)
    assert [v["met"] for v in plain] == [v["met"] for v in verdicts if v["case"] == "slowdown"]


def _report_input(**figures):
    """What bench.routing.report reads of a run with no runs in it, and `figures`."""
    return {
        "at": "2026-12-07T03:00:00",
        "seconds": 20,
        "capacity": 100.8,
        "nominal_capacity": 135.0,
        "runs": {},
        "verdicts": [],
        **figures,
    }


def test_the_report_names_the_degraded_fleets_capacity():
    results = _report_input(degraded_capacity={"fast_failer": 95.1, "slowdown": 76.4})
    text = routing.report(results)
    assert "95.1 tasks/s in fast_failer (agent 1 answering 503 half the time)" in text
    assert "76.4 tasks/s in slowdown (agent 0 10 x slower)" in text
    del results["degraded_capacity"]
    assert "the agent degraded for the whole run" not in routing.report(results)


def test_another_agent_can_be_the_one_that_degrades():
    # A 100 ms agent carries 15 % of the fleet's capacity, a 50 ms one 30 %: how much an incident takes
    # away decides whether 80 % is still a load while it lasts.
    assert routing.parse_args(["--degraded-agent", "2"]).degraded_agent == 2
    assert routing.parse_args([]).degraded_agent is None
    with pytest.raises(SystemExit):
        routing.parse_args(["--degraded-agent", "6"])
    failing = routing.agent_profiles("fast_failer", degraded=2)
    assert [p["fast_503"] for p in failing] == [0, 0, 0.5, 0, 0, 0]
    slowed = routing.agent_profiles("slowdown", slowed=True, degraded=2)
    assert [p["slow"] for p in slowed] == [1, 1, 10, 1, 1, 1]
    assert [p["slow"] for p in routing.agent_profiles("slowdown", degraded=2)] == [1] * 6
    text = routing.report(_report_input(degraded_capacity={"fast_failer": 99.0}, degraded_agent=2))
    assert "99.0 tasks/s in fast_failer (agent 2 answering 503 half the time)" in text


def test_the_simulations_dispatch_gap_holds_every_slot_past_its_call(settings):
    from bench import routing_sim

    def once(gap_ms):
        return routing_sim.simulate(
            agents=6,
            case="steady",
            load=0.5,
            strategy_name="least_connections",
            seconds=5,
            seed=3,
            gap_ms=gap_ms,
        )

    without, with_gap = once(0), once(40)
    assert with_gap["tasks"] == without["tasks"]  # the same arrivals
    # Every call ends its task (or its attempt) 40 ms later, and slots held longer make more tasks queue.
    assert with_gap["p50_ms"] >= without["p50_ms"] + 40
    assert with_gap["p99_ms"] > without["p99_ms"]
    results = routing_sim.run(agents=6, seconds=2, seeds=[3], loads=(0.5,), gap_ms=40)
    assert results["gap_ms"] == 40
    assert "each call holding its slot 40 ms past its answer" in routing_sim.report(results)


def test_the_loads_can_be_shares_of_the_degraded_fleets_capacity():
    assert routing.parse_args([]).load_basis == "steady"
    assert routing.parse_args(["--load-basis", "degraded"]).load_basis == "degraded"
    with pytest.raises(SystemExit):
        routing.parse_args(["--load-basis", "nominal"])
    results = {"capacity": 100.0, "degraded_capacity": {"slowdown": 79.2}}
    assert routing.load_capacity(results, "slowdown", "degraded") == 79.2
    assert routing.load_capacity(results, "steady", "degraded") == 100.0  # no degraded fleet there
    assert routing.load_capacity(results, "slowdown", "steady") == 100.0
    runs = _runs({"round_robin": 900, "least_connections": 1000, "fastest": 800, "adaptive": 650})
    (verdict, *_) = routing.judge(
        {"slowdown@80": runs}, capacity=100.0, degraded={"slowdown": 79.2}, basis="degraded"
    )
    assert verdict["detail"].endswith(
        "; offered 63.4 tasks/s, 80 % of the 79.2 this fleet completes at its worst"
    )


def test_the_report_says_when_the_loads_are_shares_of_the_degraded_fleets():
    results = _report_input(degraded_capacity={"fast_failer": 83.8, "slowdown": 79.2}, load_basis="degraded")
    basis = "Here the loads of fast_failer and slowdown are fractions of those figures"
    assert basis in routing.report(results)
    results["load_basis"] = "steady"
    assert basis not in routing.report(results)


def test_repeats_are_pooled_task_by_task_and_second_by_second():
    fast = routing.Run(
        tasks=[(0.1, True, 1)] * 99, calls=[(0, 0, 200), (1, 1, 200)], created=99, drain_seconds=30
    )
    slow = routing.Run(
        tasks=[(2.0, True, 2)] * 3 + [(0.1, True, 1)] * 98,
        calls=[(1, 0, 200), (0, 1, 200)],
        created=101,
        drain_seconds=30,
    )
    alone = routing.pooled([fast])
    assert alone == {**routing.summarize(fast.tasks, fast.calls, agents=6, drain_seconds=30), "created": 99}
    both = routing.pooled([fast, slow])
    assert both["tasks"] == 200 and both["created"] == 200 and both["repeats"] == 2
    # The percentile of all 200 tasks (the three slow ones are its top 1.5 %), not the mean of two.
    assert (alone["p99_ms"], routing.pooled([slow])["p99_ms"], both["p99_ms"]) == (100.0, 2000.0, 2000.0)
    assert both["retries_per_task"] == pytest.approx(3 / 200)
    assert both["share"][:2] == [0.5, 0.5]
    # Each run moves all its traffic from one agent to the other after its first second. Pooled, each
    # run's seconds are compared among themselves: read as one run's seconds, the two would cancel out.
    assert both["oscillation"] == 1
    assert routing.oscillation([(agent, second) for agent, second, _ in fast.calls + slow.calls], 6) == 0


def test_the_repeats_are_asked_for_and_reported():
    assert routing.parse_args([]).repeat == 1
    assert routing.parse_args(["--repeat", "3"]).repeat == 3
    with pytest.raises(SystemExit):
        routing.parse_args(["--repeat", "0"])
    pools = "Each figure pools 3 runs per strategy and block"
    assert pools in routing.report(_report_input(repeats=3))
    assert pools not in routing.report(_report_input(repeats=1))
    assert pools not in routing.report(_report_input())


def test_the_simulation_fails_over_after_a_503_as_the_product_does(settings):
    from bench import routing_sim

    def once():
        return routing_sim.simulate(
            agents=6, case="fast_failer", load=0.5, strategy_name="least_connections", seconds=20, seed=3
        )

    settings.TASK_FAILOVER_ATTEMPTS = 0
    waiting = once()
    settings.TASK_FAILOVER_ATTEMPTS = 1
    failing_over = once()
    assert failing_over["tasks"] == waiting["tasks"]  # the same arrivals
    # A refused task no longer waits up to a second before its next attempt: the tail shrinks.
    assert failing_over["p99_ms"] < waiting["p99_ms"]
    assert failing_over["success_rate"] >= waiting["success_rate"]


def test_the_report_says_whether_refused_tasks_failed_over():
    assert "Every retry waited its backoff (TASK_FAILOVER_ATTEMPTS 0)" in routing.report(_report_input())
    text = routing.report(_report_input(failover_attempts=1))
    assert "first 1 attempt(s) sent it at once to an agent it had not tried" in text

"""Loopback agents with behaviours for the routing benchmark: one asyncio process serving every agent.

Agent n answers `POST /r/<n>/execute` after a latency drawn from a log-normal around its median (sigma
SIGMA), failing with HTTP 500 after that latency with its failure rate; with its fast-503 share it answers
503 at once instead; while slowed it takes `slow` times as long. Every call is counted per agent and per
second of the run, the traffic shares the report shows.

Control (loopback only, like everything here):
  POST /_bench/config  {"agents": [{"median_ms": 50, "failure": 0.01, "fast_503": 0, "slow": 1}, ...]}
  GET  /_bench/calls   -> {"calls": [[agent, second, status], ...]} and clears them
  GET  /health         -> 200

Run: python -m bench.routing_agents --port 0 --seed 1   (prints "port N" once listening)
"""

import argparse
import asyncio
import math
import random
import signal
import time

from aiohttp import web

SIGMA = 0.25


class Fleet:
    def __init__(self, seed):
        self.random = random.Random(seed)
        self.agents = []
        self.calls = []
        self.started = time.monotonic()

    def answer_plan(self, index):
        """(seconds to wait, status) for the next call of agent `index`."""
        agent = self.agents[index]
        if self.random.random() < agent.get("fast_503", 0):
            return 0.0, 503
        median = agent["median_ms"] / 1000 * agent.get("slow", 1)
        latency = median * math.exp(self.random.gauss(0, SIGMA))
        status = 500 if self.random.random() < agent["failure"] else 200
        return latency, status


async def execute(request):
    fleet = request.app["fleet"]
    index = int(request.match_info["index"])
    await request.read()
    delay, status = fleet.answer_plan(index)
    fleet.calls.append((index, int(time.monotonic() - fleet.started), status))
    if delay:
        await asyncio.sleep(delay)
    if status == 200:
        return web.json_response({"result": {"ok": True}})
    return web.json_response({"error": "busy" if status == 503 else "failed"}, status=status)


async def configure(request):
    fleet = request.app["fleet"]
    body = await request.json()
    fleet.agents = body["agents"]
    if body.get("restart_clock"):
        fleet.started = time.monotonic()
        fleet.calls = []
    return web.json_response({"agents": len(fleet.agents)})


async def calls(request):
    fleet = request.app["fleet"]
    taken, fleet.calls = fleet.calls, []
    return web.json_response({"calls": taken})


async def health(request):
    return web.json_response({"status": "ok"})


async def serve(port, seed):
    app = web.Application()
    app["fleet"] = Fleet(seed)
    app.add_routes(
        [
            web.post("/r/{index:\\d+}/execute", execute),
            web.post("/_bench/config", configure),
            web.get("/_bench/calls", calls),
            web.get("/health", health),
            web.get("/r/{index:\\d+}/health", health),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print(f"port {site._server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), 3600)  # a forgotten server exits by itself after an hour
    except TimeoutError:
        pass
    await runner.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.seed))


if __name__ == "__main__":
    main()

"""Many live-event clients in one process: each opens /ws/tasks/ with a Bearer token and measures, for every
task event it receives, the delay from the transition's own timestamp to its arrival.

Runs in its own process so that decoding thousands of frames per second does not slow the load generator.
Prints "connected N" once every client is in, then listens for `--duration` seconds (bounded) and writes
its numbers to `--out` as JSON.

Run: python -m bench.ws_clients --port P --token T --clients 500 --duration 10 --out file.json
"""

import argparse
import asyncio
import json
import time
from datetime import datetime

from websockets.asyncio.client import connect


async def client(uri, token, stats, stop):
    try:
        async with connect(
            uri,
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            max_size=None,
            open_timeout=30,
            ping_interval=None,
        ) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if first.get("type") != "snapshot":
                stats["refused"] += 1
                return
            stats["connected"] += 1
            stop_waiter = asyncio.ensure_future(stop.wait())
            stop_waiter.add_done_callback(lambda _: asyncio.ensure_future(ws.close()))
            # `async for` ends when `stop` closes the socket; a wait_for() per frame cost this process
            # more CPU than the decoding.
            async for raw in ws:
                now = time.time()
                frame = json.loads(raw)
                stats["frames"] += 1
                if stats["measuring"]:
                    for event in frame.get("events", ()):
                        sent = datetime.fromisoformat(event["timestamp"]).timestamp()
                        stats["latencies"].append(now - sent)
    except Exception as exc:  # a refused or dropped client is counted, not fatal
        stats["failed"] += 1
        stats["errors"].append(repr(exc)[:200])


async def main_async(args):
    uri = f"ws://127.0.0.1:{args.port}/ws/tasks/"
    stats = {
        "connected": 0,
        "failed": 0,
        "refused": 0,
        "frames": 0,
        "latencies": [],
        "errors": [],
        "measuring": False,
    }
    stop = asyncio.Event()
    tasks = []
    t0 = time.monotonic()
    for start in range(0, args.clients, 50):
        batch = [
            asyncio.ensure_future(client(uri, args.token, stats, stop))
            for _ in range(start, min(args.clients, start + 50))
        ]
        tasks.extend(batch)
        # Let this batch finish its handshakes before opening the next one.
        deadline = time.monotonic() + 30
        while (
            stats["connected"] + stats["failed"] + stats["refused"] < len(tasks)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
    connect_seconds = time.monotonic() - t0
    print(f"connected {stats['connected']}", flush=True)
    stats["measuring"] = True
    cpu_started, wall_started = time.process_time(), time.monotonic()
    await asyncio.sleep(args.duration)
    stats["measuring"] = False
    # This process's own load: if it neared 100 %, the latencies include its queueing, not only ours.
    stats["client_cpu_percent"] = round(
        100 * (time.process_time() - cpu_started) / (time.monotonic() - wall_started), 1
    )
    stop.set()
    await asyncio.wait(tasks, timeout=10)
    latencies = stats.pop("latencies")
    stats["errors"] = stats["errors"][:5]
    stats["connect_seconds"] = round(connect_seconds, 2)
    stats["events"] = len(latencies)
    with open(args.out, "w") as handle:
        json.dump({**stats, "latencies": latencies}, handle)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

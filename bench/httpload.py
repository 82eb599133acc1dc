"""A lean HTTP/1.1 load generator on raw asyncio streams, with keep-alive.

httpx costs a few hundred microseconds of CPU per request; on a 2-core box that shares its CPU with the
service under test, the load generator must be as cheap as possible, so this speaks just enough HTTP/1.1
(Content-Length and chunked bodies) over a pool of persistent connections.

Two drivers:
- `closed_loop`: N connections each send the next request as soon as the previous answered (max rate);
- `open_loop`: requests are *scheduled* at a fixed rate and latency is measured from the scheduled time,
  so a stalled server shows up as latency instead of silently lowering the offered rate (no coordinated
  omission).
Every loop is bounded by a request count and a deadline.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


class HttpError(Exception):
    pass


@dataclass
class Result:
    ok: int = 0
    errors: int = 0
    statuses: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)  # seconds, successful requests only
    started: float = 0.0
    finished: float = 0.0
    offered_rate: float | None = None
    bodies: list = field(default_factory=list)

    @property
    def elapsed(self):
        return max(1e-9, self.finished - self.started)

    @property
    def rate(self):
        return self.ok / self.elapsed

    def summary(self):
        return {
            "ok": self.ok,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items(), key=lambda kv: str(kv[0]))},
            "elapsed_s": round(self.elapsed, 3),
            "rate_per_s": round(self.rate, 1),
            "offered_rate_per_s": self.offered_rate,
            **percentiles_ms(self.latencies),
        }


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[index]


def percentiles_ms(seconds):
    out = {}
    for q in (50, 95, 99):
        value = percentile(seconds, q)
        out[f"p{q}_ms"] = None if value is None else round(value * 1000, 2)
    out["max_ms"] = round(max(seconds) * 1000, 2) if seconds else None
    out["samples"] = len(seconds)
    return out


class Connection:
    def __init__(self, port):
        self.port = port
        self.reader = None
        self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, body=b"", headers=b""):
        if self.writer is None:
            await self.open()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n".encode()
            + headers
            + b"\r\n"
        )
        self.writer.write(head + body)
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            length, chunked, close = None, False, False
            while True:
                line = await self.reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            if chunked:
                data = bytearray()
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await self.reader.readuntil(b"\r\n")
                        break
                    data += await self.reader.readexactly(size + 2)
                    del data[-2:]
                payload = bytes(data)
            elif length is not None:
                payload = await self.reader.readexactly(length)
            else:
                payload = await self.reader.read()
                close = True
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            self.close()
            raise HttpError(str(exc)) from exc
        if close:
            self.close()
        return status, payload


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: bytes = b""


def json_request(method, path, payload=None, token=None, extra_headers=None):
    headers = b""
    if token:
        headers += f"Authorization: Bearer {token}\r\n".encode()
    if payload is not None:
        headers += b"Content-Type: application/json\r\n"
    for key, value in (extra_headers or {}).items():
        headers += f"{key}: {value}\r\n".encode()
    body = json.dumps(payload).encode() if payload is not None else b""
    return Request(method, path, body, headers)


def _record(result, status, latency, payload, keep_bodies, expect):
    result.statuses[status] = result.statuses.get(status, 0) + 1
    if status in expect:
        result.ok += 1
        result.latencies.append(latency)
        if keep_bodies:
            result.bodies.append(payload)
    else:
        result.errors += 1
        if result.errors <= 3:
            result.bodies.append(payload[:500])


async def closed_loop(
    port, make_request, *, total, concurrency, deadline_s, keep_bodies=False, expect=(200, 201)
):
    """`concurrency` connections send `total` requests back to back (or until `deadline_s` passes)."""
    result = Result()
    counter = iter(range(total))
    end = time.monotonic() + deadline_s

    async def worker():
        conn = Connection(port)
        try:
            for i in counter:
                if time.monotonic() > end:
                    break
                req = make_request(i)
                t0 = time.perf_counter()
                try:
                    status, payload = await conn.request(req.method, req.path, req.body, req.headers)
                except (HttpError, OSError):
                    result.errors += 1
                    continue
                _record(result, status, time.perf_counter() - t0, payload, keep_bodies, expect)
        finally:
            conn.close()

    result.started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.finished = time.perf_counter()
    return result


async def open_loop(
    port, make_request, *, rate, total, deadline_s, connections=64, keep_bodies=False, expect=(200, 201)
):
    """Send `total` requests at `rate` per second; latency counts from each request's scheduled time."""
    result = Result(offered_rate=rate)
    idle = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(Connection(port))
    pending = set()
    start = time.perf_counter()
    end = time.monotonic() + deadline_s

    async def one(i, scheduled):
        conn = await idle.get()
        try:
            req = make_request(i)
            try:
                status, payload = await conn.request(req.method, req.path, req.body, req.headers)
            except (HttpError, OSError):
                result.errors += 1
                return
            _record(result, status, time.perf_counter() - scheduled, payload, keep_bodies, expect)
        finally:
            idle.put_nowait(conn)

    result.started = start
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() > end:
            break
        task = asyncio.ensure_future(one(i, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=max(1.0, end - time.monotonic() + 5))
    result.finished = time.perf_counter()
    while not idle.empty():
        idle.get_nowait().close()
    return result


async def call(port, method, path, payload=None, token=None):
    """One request on a fresh connection; returns (status, parsed JSON or raw bytes)."""
    req = json_request(method, path, payload, token)
    conn = Connection(port)
    try:
        status, body = await asyncio.wait_for(conn.request(req.method, req.path, req.body, req.headers), 60)
    finally:
        conn.close()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body

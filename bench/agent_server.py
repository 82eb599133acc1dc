"""Fast fake agents: one asyncio process answering for every benchmark agent.

Agents are registered with endpoints `http://127.0.0.1:PORT/a/<n>`, so the orchestrator calls
`/a/<n>/execute`. Each call is answered with 200 {"result": {"ok": true}}, after `delay` seconds when the
slow-agent scenario sets one. The receive time (time.time(), the same clock as the service's timestamps)
of every call is recorded per task id for the dispatch-latency scenario.

Control endpoints (loopback only, like everything here):
  GET  /_bench/received        -> {"calls": [[task_id, received_at], ...]} and clears the list
  POST /_bench/config?delay=S  -> sets the answer delay
  GET  /health                 -> 200

Run: python -m bench.agent_server --port 0   (prints "port N" once listening)
"""

import argparse
import asyncio
import json
import signal
import time

ANSWER = json.dumps({"result": {"ok": True}}).encode()


class State:
    def __init__(self):
        self.delay = 0.0
        self.calls = []
        self.total = 0


def _response(status, body, reason=b"OK"):
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (status, reason, len(body))
        + body
    )


class AgentProtocol(asyncio.Protocol):
    def __init__(self, state):
        self.state = state
        self.buffer = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self.handle(head.split(b"\r\n", 1)[0], body)

    def _send(self, payload):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)

    def handle(self, request_line, body):
        method, target, _ = request_line.split(b" ", 2)
        state = self.state
        if method == b"POST" and target.endswith(b"/execute"):
            received = time.time()
            state.total += 1
            try:
                task_id = json.loads(body).get("task_id")
            except ValueError:
                task_id = None
            state.calls.append((task_id, received))
            answer = _response(200, ANSWER)
            if state.delay > 0:
                asyncio.get_running_loop().call_later(state.delay, self._send, answer)
            else:
                self._send(answer)
        elif target.startswith(b"/_bench/received"):
            calls, state.calls = state.calls, []
            self._send(_response(200, json.dumps({"calls": calls, "total": state.total}).encode()))
        elif target.startswith(b"/_bench/config"):
            query = target.partition(b"?")[2].decode()
            for pair in query.split("&"):
                key, _, value = pair.partition("=")
                if key == "delay":
                    state.delay = float(value)
            self._send(_response(200, json.dumps({"delay": state.delay}).encode()))
        elif target.startswith(b"/health") or target.endswith(b"/health"):
            self._send(_response(200, b'{"status":"ok"}'))
        else:
            self._send(_response(404, b'{"error":"not found"}', b"Not Found"))

    def connection_lost(self, exc):
        self.transport = None


async def serve(port):
    loop = asyncio.get_running_loop()
    state = State()
    server = await loop.create_server(lambda: AgentProtocol(state), "127.0.0.1", port, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Bounded like every benchmark loop: a forgotten agent server exits by itself after an hour.
    try:
        await asyncio.wait_for(stop.wait(), 3600)
    except TimeoutError:
        pass
    server.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

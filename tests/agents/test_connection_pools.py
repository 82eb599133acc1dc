"""Agent calls (agents/egress.py `request`) keep connections alive, never queue behind a pool limit, keep no
cookies and never read past the body cap."""

import asyncio

import pytest

from orchestrator_project import egress

pytestmark = pytest.mark.asyncio


class SlowServer:
    """An HTTP/1.1 keep-alive server on loopback that holds each answer until released."""

    def __init__(self, body=b'{"ok": true}', extra_headers=b""):
        self.body = body
        self.extra_headers = extra_headers
        self.heads = []
        self.connections = 0
        self.release = asyncio.Event()
        self.waiting = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.heads.append(head.lower())
                self.waiting += 1
                await self.release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + self.extra_headers)
                writer.write(b"content-length: %d\r\n\r\n" % len(self.body) + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def wait_for_waiting(self, count):
        while self.waiting < count:
            await asyncio.sleep(0.01)


async def _call(client, url, **kwargs):
    return await egress.request(client, "POST", url, content=b"{}", timeout=10, **kwargs)


def _held(client):
    return len(client.connector._acquired)  # connections lent to a request and not yet given back


async def test_concurrent_calls_each_get_a_connection_and_reuse_it_afterwards():
    server = await SlowServer().start()
    url = f"http://127.0.0.1:{server.port}/agent/execute"
    async with egress.new_async_client() as client:
        calls = [asyncio.ensure_future(_call(client, url)) for _ in range(120)]
        # All 120 reach the agent at once: the callers' semaphores bound concurrency, not the pool.
        await asyncio.wait_for(server.wait_for_waiting(120), 10)
        assert _held(client) == 120
        server.release.set()
        responses = await asyncio.gather(*calls)
        assert [r.status_code for r in responses] == [200] * 120
        assert _held(client) == 0
        # A second wave reuses the kept-alive connections instead of opening new ones.
        assert all(
            r.status_code == 200 for r in await asyncio.gather(*(_call(client, url) for _ in range(120)))
        )
        assert server.connections == 120
    server.server.close()


async def test_a_refused_answer_gives_its_connection_back():
    server = await SlowServer(body=b"x" * 5000).start()
    server.release.set()
    url = f"http://127.0.0.1:{server.port}/agent/execute"
    async with egress.new_async_client() as client:
        with pytest.raises(egress.ResponseTooLarge):
            await _call(client, url, max_bytes=100)
        assert _held(client) == 0
        assert (await _call(client, url)).status_code == 200
    server.server.close()


async def test_no_cookie_set_by_an_agent_is_ever_sent_and_bodies_are_asked_for_unencoded():
    server = await SlowServer(extra_headers=b"set-cookie: session=agent-a; Path=/\r\n").start()
    server.release.set()
    # A name, not an IP literal: cookie jars that keep anything keep cookies of names.
    url = f"http://localhost:{server.port}/agent/execute"
    async with egress.new_async_client() as client:
        for _ in range(2):
            assert (await _call(client, url)).status_code == 200
    assert len(server.heads) == 2
    assert all(b"\r\ncookie:" not in head for head in server.heads)
    assert all(b"accept-encoding: identity" in head for head in server.heads)
    server.server.close()


async def test_a_legacy_numeric_spelling_is_refused_before_anything_is_sent():
    server = await SlowServer().start()
    server.release.set()
    async with egress.new_async_client() as client:
        # aiohttp refuses dotted short forms outright; other spellings are names, resolved and checked.
        for spelling in ("127.1", "127.0.1"):
            with pytest.raises(egress.EgressRefused, match="register it canonically"):
                await _call(client, f"http://{spelling}:{server.port}/agent/execute")
        assert (await _call(client, f"http://127.0.0.1:{server.port}/agent/execute")).status_code == 200
    assert server.connections == 1
    server.server.close()

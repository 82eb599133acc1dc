"""Agent calls reuse connections from small pools per agent URL (agents/egress.py PoolPerAddress)."""

import asyncio

import pytest

from agents import egress

pytestmark = pytest.mark.asyncio


class SlowServer:
    """An HTTP/1.1 keep-alive server on loopback that holds each answer until released."""

    def __init__(self, body=b'{"ok": true}'):
        self.body = body
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
                self.waiting += 1
                await self.release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
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


def _shards(client):
    return [shard for shards in client._transport._pools.values() for shard in shards]


async def test_concurrent_calls_spread_over_small_pools_and_free_their_slots(settings):
    server = await SlowServer().start()
    url = f"http://127.0.0.1:{server.port}/agent/execute"
    async with egress.new_async_client() as client:
        calls = [asyncio.ensure_future(_call(client, url)) for _ in range(20)]
        await asyncio.wait_for(server.wait_for_waiting(20), 10)
        shards = _shards(client)
        # 20 calls in flight at once: five shards of at most four connections, none waiting.
        assert egress.POOL_SHARD_CONNECTIONS == 4
        assert len(shards) == 5
        assert sorted(shard.in_flight for shard in shards) == [4, 4, 4, 4, 4]
        server.release.set()
        responses = await asyncio.gather(*calls)
        assert [r.status_code for r in responses] == [200] * 20
        assert [shard.in_flight for shard in _shards(client)] == [0] * 5
        # A second wave reuses the kept-alive connections instead of opening new ones.
        assert all(
            r.status_code == 200 for r in await asyncio.gather(*(_call(client, url) for _ in range(20)))
        )
        assert server.connections == 20
    server.server.close()


async def test_a_refused_answer_frees_its_slot_too():
    server = await SlowServer(body=b"x" * 5000).start()
    server.release.set()
    url = f"http://127.0.0.1:{server.port}/agent/execute"
    async with egress.new_async_client() as client:
        with pytest.raises(egress.ResponseTooLarge):
            await _call(client, url, max_bytes=100)
        assert [shard.in_flight for shard in _shards(client)] == [0]
        assert (await _call(client, url)).status_code == 200
    server.server.close()

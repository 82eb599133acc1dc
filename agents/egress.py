"""SSRF-safe outbound HTTP to agents.

The orchestrator sends requests to URLs that API users typed in, so every request is checked twice:
once when an endpoint is registered (`validate_endpoint`) and again at connection time, on the address
the name resolves to *then* (a name may resolve to a harmless address at registration and to loopback
or a metadata service later: DNS rebinding). The connection goes to the checked IP itself, with the
original Host header and TLS server name, so no second lookup can slip in between check and connect.
Redirects are never followed and response bodies are capped.
"""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache, partial
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

# Refused whatever AGENT_ALLOWED_NETWORKS says: link-local and cloud metadata, multicast, unspecified.
ALWAYS_DENIED = [
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "224.0.0.0/4",
        "ff00::/8",
        "0.0.0.0/8",
        "::/128",
        "100.100.100.200/32",
        "255.255.255.255/32",
    )
]


class EgressRefused(Exception):
    """The destination is not one the orchestrator may call."""


class ResponseTooLarge(Exception):
    pass


@dataclass
class AgentResponse:
    status_code: int
    headers: httpx.Headers
    body: bytes

    def json(self):
        import json

        return json.loads(self.body) if self.body else None


def _canonical(address):
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    # ::ffff:169.254.169.254 is 169.254.169.254 in disguise; judge the IPv4 address it carries.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def check_address(address):
    """Raise EgressRefused unless `address` (an IP string) is an allowed agent address."""
    # Every agent call checks its address: the verdicts are remembered per address and allow-list
    # (parsing and a dozen network tests cost a busy worker a few percent of its CPU).
    return _allowed(address, tuple(settings.AGENT_ALLOWED_NETWORKS))


@lru_cache(maxsize=4096)
def _allowed(address, allowed_networks):
    ip = _canonical(address)
    if any(ip in net for net in ALWAYS_DENIED) or ip.is_multicast or ip.is_unspecified or ip.is_link_local:
        raise EgressRefused(f"address {ip} is link-local, metadata, multicast or unspecified")
    if not any(ip.version == net.version and ip in net for net in allowed_networks):
        raise EgressRefused(f"address {ip} is outside AGENT_ALLOWED_NETWORKS")
    return ip


@lru_cache(maxsize=4096)  # pure, and run for every agent call
def _split(url):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise EgressRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise EgressRefused("URLs with user information are not allowed")
    if not parts.hostname:
        raise EgressRefused("the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EgressRefused("the URL has an invalid port") from None
    return parts, port


def _checked(infos, host):
    if not infos:
        raise EgressRefused(f"host {host!r} does not resolve")
    addresses = [info[4][0] for info in infos]
    # Every address must pass: a name that also resolves to a forbidden one is refused outright.
    return [check_address(address) for address in addresses][0]


def resolve_sync(url):
    parts, port = _split(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EgressRefused(f"host {parts.hostname!r} does not resolve") from None
    return parts, port, _checked(infos, parts.hostname)


@lru_cache(maxsize=4096)
def _ip_literal(hostname):
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        return None


async def resolve(url):
    parts, port = _split(url)
    literal = _ip_literal(parts.hostname)
    if literal is not None:
        # Nothing to look up; getaddrinfo would cost a thread-pool round trip on every agent call.
        # Other spellings of an address ("127.1", "0x7f.0.0.1") are not literals and are looked up.
        return parts, port, check_address(literal)
    try:
        # Python's socket.getaddrinfo on a thread, as the stock event loop does, rather than uvloop's
        # libuv lookup: registration (resolve_sync) and dispatch then resolve through the same function.
        infos = await asyncio.get_running_loop().run_in_executor(
            None, partial(socket.getaddrinfo, parts.hostname, port, type=socket.SOCK_STREAM)
        )
    except (socket.gaierror, UnicodeError):
        raise EgressRefused(f"host {parts.hostname!r} does not resolve") from None
    return parts, port, _checked(infos, parts.hostname)


def validate_endpoint(url):
    """Registration-time check. Raises EgressRefused with a message fit for an API error."""
    resolve_sync(url)


@lru_cache(maxsize=4096)
def _pinned(parts, port, ip):
    """The URL rewritten to the checked IP, plus the Host header and TLS name of the original."""
    host_for_url = f"[{ip}]" if ip.version == 6 else str(ip)
    pinned = urlunsplit(parts._replace(netloc=f"{host_for_url}:{port}"))
    default_port = 443 if parts.scheme == "https" else 80
    host_header = parts.hostname if port == default_port else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        host_header = f"[{parts.hostname}]" if port == default_port else f"[{parts.hostname}]:{port}"
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return pinned, host_header, extensions


def _max_bytes(max_bytes):
    return settings.AGENT_RESPONSE_MAX_BYTES if max_bytes is None else max_bytes


async def request(client, method, url, *, headers=None, content=None, timeout, max_bytes=None):
    """An async request through `client` (an httpx.AsyncClient) to a checked address."""
    parts, port, ip = await resolve(url)
    pinned, host_header, extensions = _pinned(parts, port, ip)
    limit = _max_bytes(max_bytes)
    req = client.build_request(
        method,
        pinned,
        headers={**(headers or {}), "Host": host_header},
        content=content,
        timeout=timeout,
        extensions=dict(extensions),  # _pinned's answers are shared
    )
    response = await client.send(req, stream=True, follow_redirects=False)
    try:
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > limit:
                raise ResponseTooLarge(f"response body exceeds {limit} bytes")
    finally:
        await response.aclose()
    return AgentResponse(response.status_code, response.headers, bytes(body))


def request_sync(method, url, *, headers=None, content=None, timeout, max_bytes=None):
    """The blocking twin of `request`, for the few calls made while serving an API request."""
    parts, port, ip = resolve_sync(url)
    pinned, host_header, extensions = _pinned(parts, port, ip)
    limit = _max_bytes(max_bytes)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        req = client.build_request(
            method,
            pinned,
            headers={**(headers or {}), "Host": host_header},
            content=content,
            extensions=extensions,
        )
        response = client.send(req, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > limit:
                    raise ResponseTooLarge(f"response body exceeds {limit} bytes")
        finally:
            response.close()
    return AgentResponse(response.status_code, response.headers, bytes(body))


# Connections per pool. httpcore walks all of a pool's connections, with a syscall each, whenever a
# request starts or ends; small pools keep that walk short whatever an agent's concurrency. Four
# measured best in the bulk benchmark (2: 461-487, 4: 473-525, 8: 435-458 tasks/s).
POOL_SHARD_CONNECTIONS = 4


@lru_cache(maxsize=1)
def _ssl_context():
    # Shared by every pool and client of the process: building one (loading the CA bundle) takes about
    # 0.1 s, and the probe round builds a client each time.
    return httpx.create_ssl_context()


class _Shard:
    def __init__(self, transport):
        self.transport = transport
        self.in_flight = 0


class _ReleasingStream(httpx.AsyncByteStream):
    """The response body; closing it frees the shard's slot (the connection is busy until then)."""

    def __init__(self, stream, shard):
        self._stream = stream
        self._shard = shard
        self._open = True

    async def __aiter__(self):
        async for chunk in self._stream:
            yield chunk

    async def aclose(self):
        try:
            await self._stream.aclose()
        finally:
            if self._open:
                self._open = False
                self._shard.in_flight -= 1


class PoolPerAddress(httpx.AsyncBaseTransport):
    """Connection pools per agent URL (checked IP, port and path: an agent's endpoint), in shards of
    POOL_SHARD_CONNECTIONS; a request goes to the least busy shard, and a new shard opens when all are
    full.

    One pool shared by hundreds of connections to many agents spent seconds of CPU per burst of answers
    in httpcore's per-request walk over its connections, and starved the event loop until leases
    expired (tests/chaos, 1,000 tasks). A pool per agent still held 50 connections for an agent with
    max_concurrency 50, and the walk took 17 % of a busy worker's CPU (docs/benchmarks.md).
    """

    # Each shard's limits; how many calls are in flight at all is bounded by the callers' semaphores.
    _SHARD_LIMITS = httpx.Limits(
        max_connections=POOL_SHARD_CONNECTIONS, max_keepalive_connections=POOL_SHARD_CONNECTIONS
    )

    def __init__(self):
        self._ssl_context = _ssl_context()
        self._pools = {}

    def _shard_for(self, request):
        url = request.url
        shards = self._pools.setdefault((url.scheme, url.host, url.port, url.path), [])
        shard = min(shards, key=lambda candidate: candidate.in_flight, default=None)
        if shard is None or shard.in_flight >= POOL_SHARD_CONNECTIONS:
            transport = httpx.AsyncHTTPTransport(
                verify=self._ssl_context, limits=self._SHARD_LIMITS, trust_env=False
            )
            shard = _Shard(transport)
            shards.append(shard)
        return shard

    async def handle_async_request(self, request):
        shard = self._shard_for(request)
        shard.in_flight += 1
        try:
            response = await shard.transport.handle_async_request(request)
        except BaseException:
            shard.in_flight -= 1
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, shard),
            extensions=response.extensions,
        )

    async def aclose(self):
        for shards in self._pools.values():
            for shard in shards:
                await shard.transport.aclose()


def new_async_client():
    # trust_env=False: proxies from the environment must not reroute calls around the address check.
    return httpx.AsyncClient(transport=PoolPerAddress(), follow_redirects=False, trust_env=False)

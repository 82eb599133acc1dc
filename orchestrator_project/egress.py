"""SSRF-safe outbound HTTP to agents.

The orchestrator sends requests to URLs that API users typed in, so destinations are checked twice:
once when an endpoint is registered (`validate_endpoint`) and again whenever a connection is opened, on
the address the name resolves to *then* (a name may resolve to a harmless address at registration and
to loopback or a metadata service later: DNS rebinding). The connection goes to the checked IP itself,
with the original Host header and TLS server name, so no second lookup can slip in between check and
connect. Redirects are never followed, cookies are never kept and response bodies are capped.
"""

import asyncio
import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver
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
    headers: Mapping[str, str]  # case-insensitive (httpx's or aiohttp's)
    body: bytes

    def json(self):
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
    """The addresses of a lookup, each checked, in order and without repeats."""
    if not infos:
        raise EgressRefused(f"host {host!r} does not resolve")
    # Every address must pass: a name that also resolves to a forbidden one is refused outright.
    return list(dict.fromkeys(check_address(info[4][0]) for info in infos))


def resolve_sync(url):
    parts, port = _split(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise EgressRefused(f"host {parts.hostname!r} does not resolve") from None
    return parts, port, _checked(infos, parts.hostname)[0]


@lru_cache(maxsize=4096)
def _ip_literal(hostname):
    try:
        return str(ipaddress.ip_address(hostname))
    except ValueError:
        return None


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


# --- Agent calls from the worker's event loop ---------------------------------------------------
#
# aiohttp rather than httpx: its C HTTP parser and plain asyncio transports cost a busy worker about a
# fifth of the CPU per agent call (150 against 730 us, bench/notes.md), and agent calls are most of
# what a worker does. Its pool hands out kept-alive connections without walking them all.


class CheckedResolver(AbstractResolver):
    """The names of agent URLs, resolved and checked each time aiohttp opens a connection.

    aiohttp connects to the addresses returned here and nowhere else, so the address checked is the
    address connected to: a name that rebinds later can only affect connections opened later, and those
    are checked again. IP literals never reach a resolver: `request` checks them itself.
    """

    async def resolve(self, host, port=0, family=socket.AF_UNSPEC):
        try:
            # Python's socket.getaddrinfo on a thread, as registration (resolve_sync) uses, rather than
            # uvloop's own lookup: both then resolve through the same function.
            infos = await asyncio.get_running_loop().run_in_executor(
                None, partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
            )
        except (socket.gaierror, UnicodeError):
            raise EgressRefused(f"host {host!r} does not resolve") from None
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in _checked(infos, host)
        ]

    async def close(self):
        pass


def new_async_client():
    """The session agent calls go through; open it on the event loop that will use it."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(),
        use_dns_cache=False,  # every new connection is checked on a fresh lookup
        ssl=_ssl_context(),
        # How many calls are in flight is bounded by the callers' semaphores, not by the pool.
        limit=0,
        limit_per_host=0,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),  # one agent's cookies must never reach another
        auto_decompress=False,  # bodies are capped as sent; nothing is inflated past the cap
        trust_env=False,  # proxies from the environment must not reroute calls around the address check
    )


async def request(
    client, method, url, *, headers=None, content=None, timeout, connect_timeout=None, max_bytes=None
):
    """An async request through `client` (from new_async_client) to a checked address.

    `timeout` bounds the whole exchange, `connect_timeout` (default: `timeout`) opening a connection.
    """
    parts, _port = _split(url)
    literal = _ip_literal(parts.hostname)
    if literal is not None:
        check_address(literal)
    limit = _max_bytes(max_bytes)
    try:
        async with client.request(
            method,
            url,
            # identity: the body is read as sent (not inflated), so ask for it unencoded.
            headers={"accept-encoding": "identity", **(headers or {})},
            data=content,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout or timeout),
        ) as response:
            declared = response.content_length
            if declared is not None and declared > limit:
                raise ResponseTooLarge(f"response body exceeds {limit} bytes")
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > limit:
                    raise ResponseTooLarge(f"response body exceeds {limit} bytes")
    except aiohttp.InvalidURL as exc:
        # Nothing was sent. aiohttp refuses some spellings that resolve fine, such as "127.1".
        raise EgressRefused(f"the URL cannot be called as written ({exc}); register it canonically") from None
    return AgentResponse(response.status, response.headers, bytes(body))


@lru_cache(maxsize=1)
def _ssl_context():
    # Shared by every client of the process: building one (loading the CA bundle) takes about 0.1 s,
    # and each probe round opens a client.
    return httpx.create_ssl_context()

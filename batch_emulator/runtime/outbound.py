"""Where a node may send or fetch data: resource files, output files, service log uploads.

A task names URLs, and the emulator fetches and uploads on its behalf from the developer's
machine. On Azure those requests leave a VM in a virtual network; here they would reach
whatever listens on this machine, the emulator itself included (its portal's request log,
its own API). So:

- only ``http`` and ``https`` URLs are used (``file://`` and every other scheme are refused);
- an address of this machine (loopback, the unspecified address, any address of its own
  interfaces) is reached only at the storage endpoint the emulator was given
  (``--storage-connection-string``: Azurite's) or at a ``host:port`` named with
  ``--allow-outbound-host``; the emulator's own port never;
- every name is checked when it is resolved for the connection (``GuardedResolver``), so a
  name that resolves to 127.0.0.1 later than it was checked is refused too; redirects are
  followed by hand, each hop checked.

A storage container listing is XML from a server the task chose: ``blob_names`` parses it
with defusedxml (no DTD, no entities), as a stream, with a size limit per page and a limit
on the names, following ``NextMarker`` as the service's agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

MAX_REDIRECTS = 10
MAX_LISTING_PAGE_BYTES = 32 * 1024 * 1024  # a page holds at most 5,000 blobs: a few MB
MAX_LISTED_BLOBS = 100_000
_REDIRECTS = (301, 302, 303, 307, 308)


class OutboundRefused(ValueError):
    """The URL is not one a node may reach from this machine."""


class BadListing(ValueError):
    """A container listing that is not a Blob service listing (not XML, a DTD or entities, too large)."""


def storage_endpoints(connection_string: str | None) -> list[str]:
    """The ``host:port`` of the blob endpoint a connection string names (Azurite's), if any."""
    if not connection_string:
        return []
    fields = dict(part.split('=', 1) for part in connection_string.split(';') if '=' in part)
    if fields.get('UseDevelopmentStorage', '').lower() == 'true':
        return ['127.0.0.1:10000', 'localhost:10000']
    endpoint = fields.get('BlobEndpoint')
    if not endpoint:
        return []
    parts = urlsplit(endpoint)
    try:
        return [f'{parts.hostname}:{parts.port or _default_port(parts.scheme)}'] if parts.hostname else []
    except ValueError:
        return []


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == 'https' else 80


def host_port(text: str) -> tuple[str, int]:
    """'host:port', '[::1]:port' or 'host' (port 80) as (lower-case host without brackets, port)."""
    parts = urlsplit('//' + text.strip())
    if not parts.hostname or parts.path or parts.query or parts.username:
        raise ValueError(f'{text!r} is not host:port')
    return parts.hostname.lower(), parts.port or 80


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split('%', 1)[0])
    except ValueError:
        return False
    return True


def is_this_machine(address: str) -> bool:
    """Loopback, the unspecified address (which reaches this machine), or an address of one of its interfaces."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip, address = ip.ipv4_mapped, str(ip.ipv4_mapped)
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:  # the socket address with its scope (fe80::1%eth0), as bind needs it
        sockaddr = socket.getaddrinfo(address, 0, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4]
    except OSError:
        return False
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(sockaddr)  # only an address of this machine can be bound
        except OSError:
            return False
    return True


class OutboundPolicy:
    """Which URLs a node may reach; ``own_url`` is asked each time (the emulator's port is known late)."""

    def __init__(self, allowed: Iterable[str] = (), own_url: Callable[[], str] = str) -> None:
        self.allowed = {host_port(entry) for entry in allowed}
        self.own_url = own_url

    def _own_port(self) -> int | None:
        try:
            return urlsplit(self.own_url()).port
        except ValueError:
            return None

    def allows_address(self, host: str, port: int, address: str) -> bool:
        """May a connection named ``host:port`` go to ``address``?"""
        if not is_this_machine(address):
            return True
        if port == self._own_port():
            return False
        return bool({(host.lower().strip('[]'), port), (address, port)} & self.allowed)

    def check(self, url: str) -> tuple[str, int]:
        """Refuses a URL that is not http(s) or names this machine's address unless allowed; (host, port)."""
        try:
            parts = urlsplit(url)
            port = parts.port or _default_port(parts.scheme)
        except ValueError as error:
            raise OutboundRefused(f'the URL is not valid: {error}') from None
        if parts.scheme.lower() not in ('http', 'https'):
            raise OutboundRefused(f'only http and https URLs are used, not {parts.scheme or "a relative URL"}')
        host = (parts.hostname or '').lower()
        if not host:
            raise OutboundRefused('the URL names no host')
        if _is_address(host) and not self.allows_address(host, port, parts.hostname or host):
            raise self.refusal(host, port)  # an address is not resolved: GuardedResolver never sees it
        return host, port

    async def check_resolved(self, url: str) -> None:
        """``check``, and a name that resolves to an address of this machine is refused now as well."""
        host, port = self.check(url)
        if _is_address(host):
            return
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # unknown here: the upload fails as a node's would
        if any(not self.allows_address(host, port, str(entry[4][0])) for entry in found):
            raise self.refusal(host, port)

    def refusal(self, host: str, port: int) -> OutboundRefused:
        if port == self._own_port():
            return OutboundRefused(f'{host}:{port} is this emulator: a node never sends or fetches there')
        return OutboundRefused(f'{host}:{port} is on this machine: a node reaches only the storage endpoint of '
                               '--storage-connection-string there, or a host:port given with --allow-outbound-host')



class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, then refuses an address of this machine the policy does not allow."""

    def __init__(self, policy: Callable[[], OutboundPolicy]) -> None:
        self.policy = policy  # asked each time: the emulator may name its policy after the session exists
        self._resolver = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        found = await self._resolver.resolve(host, port, family)
        policy = self.policy()
        if any(not policy.allows_address(host, port, entry['host']) for entry in found):
            raise policy.refusal(host, port)
        return found

    async def close(self) -> None:
        await self._resolver.close()


@contextlib.asynccontextmanager
async def get(session: aiohttp.ClientSession, policy: OutboundPolicy, url: str,
              headers: dict[str, str] | None = None) -> AsyncIterator[aiohttp.ClientResponse]:
    """GET, following redirects by hand so that every hop is checked."""
    for _ in range(MAX_REDIRECTS + 1):
        policy.check(url)
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            location = response.headers.get('Location')
            if response.status in _REDIRECTS and location:
                url = str(response.url.join(URL(location)))
                continue
            yield response
            return
    raise OutboundRefused(f'more than {MAX_REDIRECTS} redirects')


class _Names:
    """An XMLParser target that keeps only the text of <Blob><Name> and <NextMarker>: no tree is built."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.next_marker = ''
        self._path: list[str] = []
        self._text: list[str] = []

    def start(self, tag: str, _attributes: dict) -> None:
        self._path.append(tag)
        self._text = []

    def data(self, text: str) -> None:
        if self._path[-2:] == ['Blob', 'Name'] or self._path[-1:] == ['NextMarker']:
            self._text.append(text)

    def end(self, tag: str) -> None:
        if self._path[-2:] == ['Blob', 'Name']:
            self.names.append(''.join(self._text))
            if len(self.names) > MAX_LISTED_BLOBS:
                raise BadListing(f'the container lists more than {MAX_LISTED_BLOBS} blobs')
        elif self._path == ['EnumerationResults', 'NextMarker']:
            self.next_marker = ''.join(self._text)
        self._path.pop()

    def close(self) -> None:
        return None


async def blob_names(session: aiohttp.ClientSession, policy: OutboundPolicy, container_url: str, prefix: str,
                     headers: dict[str, str]) -> list[str]:
    """The names of the blobs below ``prefix`` in a container, from its listing pages."""
    from xml.etree.ElementTree import ParseError  # here: the XML parsers are not what an emulator starts with

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    separator = '&' if '?' in container_url else '?'
    names = _Names()
    marker = ''
    while True:
        list_url = f'{container_url}{separator}restype=container&comp=list&prefix={quote(prefix)}'
        if marker:
            list_url += f'&marker={quote(marker)}'
        names.next_marker = ''
        parser = DefusedXMLParser(target=names, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        async with get(session, policy, list_url, headers) as response:
            if response.status != 200:
                raise ValueError(f'HTTP {response.status} {response.reason} listing the container')
            read = 0
            try:
                async for chunk in response.content.iter_chunked(1 << 16):
                    read += len(chunk)
                    if read > MAX_LISTING_PAGE_BYTES:
                        raise BadListing(f'a page of the container listing is larger than '
                                         f'{MAX_LISTING_PAGE_BYTES // (1024 * 1024)} MiB')
                    parser.feed(chunk)
                parser.close()
            except (ParseError, DefusedXmlException) as error:
                raise BadListing(f'the container listing is not a Blob service listing: {error}') from None
        if not names.next_marker or names.next_marker == marker:
            return names.names
        marker = names.next_marker

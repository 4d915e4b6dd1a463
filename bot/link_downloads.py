"""Downloading a LoRA or embedding from a link (/library import url:…), for files over Discord's
upload limit (most LoRAs are 10-200 MB).

The bot fetches what a user names, so the fetch is fenced in: https only; every address the host
resolves to (each redirect hop too, and at connect time, so DNS tricks do not help) must be a public
one, never loopback, private, link-local or the cloud metadata address; at most a few redirects; the
size is capped before and while reading. What arrives is only bytes: the caller checks them exactly
like an uploaded file (safetensors header, never unpickled) before anything is stored.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from bot.captions import shown_text
from generation.errors import DreamcordError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REDIRECTS = 5
# A Hugging Face page of a file (…/blob/…) is HTML; the file itself is at …/resolve/….
_HF_BLOB = re.compile(r"^https://huggingface\.co/(?P<repo>[^/?#]+/[^/?#]+)/blob/(?P<rest>[^?#]+)")


class LinkRefused(DreamcordError):
    """A link that is not fetched, or whose download failed; the message says why."""


def public_address(address: IPAddress) -> bool:
    """Whether the internet at large may be reached there (not this host, a LAN or link-local)."""
    return address.is_global and not address.is_multicast


def file_url(url: str) -> str:
    """The address of the file itself for a link people copy from a model page (Hugging Face `blob`)."""
    url = url.strip()
    if match := _HF_BLOB.match(url):
        return f"https://huggingface.co/{match['repo']}/resolve/{match['rest']}"
    return url


class _PrivateAddress(OSError):
    pass


class _PublicOnlyResolver(AbstractResolver):
    """DNS answers filtered at connect time: a name that resolves to a private address is refused
    even if it resolved to a public one when the link was first checked."""

    def __init__(self, allowed: Callable[[IPAddress], bool]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise _PrivateAddress(f"{host} resolves to a private or local address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class LinkFetcher:
    """Fetches one file from a link within the limits above."""

    max_bytes: int
    timeout_s: float = 600.0
    schemes: tuple[str, ...] = ("https",)
    address_allowed: Callable[[IPAddress], bool] = public_address
    headers: dict[str, str] = field(default_factory=lambda: {"User-Agent": "dreamcord (LoRA import)"})

    async def fetch(self, url: str) -> tuple[str, bytes]:
        """(the file's name, its bytes), or LinkRefused with one line saying why."""
        url = file_url(url)
        connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(self.address_allowed))
        timeout = aiohttp.ClientTimeout(total=self.timeout_s, sock_connect=20)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self.headers
        ) as session:
            for _ in range(MAX_REDIRECTS + 1):
                self._check(url)
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                            url = urljoin(url, response.headers["Location"])
                            continue
                        if response.status != 200:
                            raise LinkRefused(
                                f"the link answered {response.status} {response.reason or ''}".rstrip()
                            )
                        return _filename(response, url), await self._read(response)
                except aiohttp.ClientConnectorError as error:
                    if isinstance(error.os_error, _PrivateAddress):
                        raise LinkRefused(f"{error.os_error}; only public addresses are fetched") from None
                    raise LinkRefused(f"could not connect to {urlsplit(url).hostname}") from None
                except (aiohttp.ClientError, TimeoutError) as error:
                    raise LinkRefused(f"the download failed ({type(error).__name__})") from None
        raise LinkRefused(f"the link redirects more than {MAX_REDIRECTS} times")

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in self.schemes or not parts.hostname:
            raise LinkRefused(f"only {' or '.join(self.schemes)} links are fetched: {shown_text(url, 80)}")
        if parts.username or parts.password:
            raise LinkRefused("links with a user name or password are not fetched")
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a name: checked when it resolves (_PublicOnlyResolver)
        if not self.address_allowed(address):
            raise LinkRefused(
                f"{parts.hostname} is a private or local address; only public addresses are fetched"
            )

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.max_bytes
        too_big = LinkRefused(f"the file is larger than {limit // 2**20} MiB")
        if response.content_length is not None and response.content_length > limit:
            raise too_big
        data = bytearray()
        async for chunk in response.content.iter_chunked(1 << 20):
            data += chunk
            if len(data) > limit:  # a server that sends more than it announced, or announced nothing
                raise too_big
        return bytes(data)


def _filename(response: aiohttp.ClientResponse, url: str) -> str:
    disposition = response.headers.get("Content-Disposition", "")
    if disposition:
        message = Message()
        message["Content-Disposition"] = disposition
        name: Any = message.get_param("filename", header="Content-Disposition")
        if isinstance(name, str) and name.strip():
            return shown_text(name.strip().rsplit("/", 1)[-1], 100)
    return shown_text(unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "download", 100)

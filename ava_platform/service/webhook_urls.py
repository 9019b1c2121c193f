"""Where a webhook may go. A URL is resolved and every address it resolves to must be public
(not loopback, private, link-local such as the cloud metadata address 169.254.169.254,
shared, reserved or multicast) unless the operator allows private targets
(`AVA_WEBHOOK_ALLOW_PRIVATE`). Checked when the URL is set and again at each delivery, whose
connection then goes to the very address checked, so a DNS answer that changes in between
(rebinding) cannot redirect it."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from ava_platform.errors import Invalid

FIELD = "webhook_url"


class Target:
    """A checked URL: where to connect (`address`), and the host it names (Host and SNI)."""

    __slots__ = ("address", "host", "port", "scheme", "target")

    def __init__(self, scheme: str, host: str, port: int, address: str, target: str) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self.address = address
        self.target = target  # path and query, as given

    def pinned_url(self) -> str:
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{ip}:{self.port}{self.target}"


def _refuse(message: str) -> Invalid:
    return Invalid(f"{FIELD}: {message}", details=[{"field": FIELD, "message": message}])


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _parts(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refuse(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _refuse("must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise _refuse("must not carry credentials; verify the signature instead")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), target


async def resolve(url: str, *, allow_private: bool) -> Target:
    """The checked target of `url`, or Invalid (422) saying why it is refused."""
    scheme, host, port, target = _parts(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refuse(f"host {host} does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _refuse(f"host {host} does not resolve")
    if not allow_private:
        blocked = [a for a in addresses if not _public(a)]
        if blocked:
            raise _refuse(
                f"host {host} resolves to a non-public address ({blocked[0]}); "
                "an operator may allow private targets with AVA_WEBHOOK_ALLOW_PRIVATE=1"
            )
    return Target(scheme, host, port, addresses[0], target)


class UrlPolicy:
    """The check the services run when a URL is set (a worker's, or one trigger's)."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def check(self, url: str) -> None:
        await resolve(url, allow_private=self.allow_private)

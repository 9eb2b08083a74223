"""Where the portal may send a webhook (notifications, commit statuses): an http(s) URL whose
host resolves only to global addresses, unless WEBHOOK_ALLOWED_HOSTS lists it (no SSRF into
the hosts' own network)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from kernel.errors import RequestError


def check_webhook(url: str, field: str = "webhook_url") -> tuple[SplitResult, int, str]:
    """The URL's parts, its port and the address to connect to. Every address the host resolves to must
    be global (no loopback, private, link-local, …) unless WEBHOOK_ALLOWED_HOSTS lists the host.
    RequestError naming `field` otherwise."""

    def _refused(message: str) -> RequestError:
        return RequestError(message, field=field)

    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("the webhook's port is not a number") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise _refused("the webhook must be an http(s) URL with a host")
    try:
        addresses = [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError):
        raise _refused(f"the webhook's host {host} does not resolve") from None
    if host not in settings.WEBHOOK_ALLOWED_HOSTS:
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address.partition("%")[0])):
                raise _refused(
                    f"the webhook's host {host} resolves to {address}, a loopback, private or link-local address; "
                    "list the host in WEBHOOK_ALLOWED_HOSTS to allow it"
                )
    return parts, port, addresses[0]


# IPv6 ranges that carry an IPv4 address a gateway may route to (NAT64, 6to4, the deprecated
# IPv4-compatible form): Python calls them global whatever IPv4 address they embed.
_EMBEDDING_IPV4 = tuple(ipaddress.ip_network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "::/96"))


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not any(address in network for network in _EMBEDDING_IPV4)

"""Believing ``X-Forwarded-*`` headers only from the configured reverse proxies.

Behind a TLS proxy every request comes from the proxy's address. With
``web.trusted_proxies`` set, :class:`TrustedProxies` takes the client's address
from ``X-Forwarded-For`` (the rightmost entry that is not itself a trusted
proxy: entries to its left were written by the client and prove nothing), and
the scheme and host from ``X-Forwarded-Proto`` and ``X-Forwarded-Host``, but only
when the request really arrives from one of those networks. From anyone else
the headers are ignored, so a client cannot choose the address the login
limiter counts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _last(header: str) -> str:
    return header.rsplit(",", 1)[-1].strip()


class TrustedProxies:
    """WSGI middleware: rewrite the peer address, scheme and host set by trusted proxies.

    Args:
        app: the wrapped WSGI app.
        networks: the proxies' networks; empty trusts no one (the middleware then
            passes requests through untouched).
    """

    def __init__(self, app: WSGIApplication, networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def trusted(self, address: str) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def client(self, peer: str, forwarded_for: str) -> str:
        """The client's address: walk ``X-Forwarded-For`` from the right past trusted hops."""
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            if not self.trusted(client):
                break
            try:
                client = str(ipaddress.ip_address(hop.strip()))
            except ValueError:
                break  # a malformed entry: the last hop we could read stands
        return client

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request, with the forwarded values applied if a trusted proxy sent it."""
        peer = str(environ.get("REMOTE_ADDR", ""))
        if self.networks and self.trusted(peer):
            environ["footfall.proxy_addr"] = peer
            environ["REMOTE_ADDR"] = self.client(peer, str(environ.get("HTTP_X_FORWARDED_FOR", "")))
            proto = _last(str(environ.get("HTTP_X_FORWARDED_PROTO", ""))).lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
            host = _last(str(environ.get("HTTP_X_FORWARDED_HOST", "")))
            if host:
                environ["HTTP_HOST"] = host
        return self.app(environ, start_response)

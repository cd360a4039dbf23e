"""Why a request got no answer (NetworkFailure), and the one line that names the URL and the next step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class NetworkFailure:
    """Why a request got no answer, in words a person reads, and what kind of trouble it is.

    `kind` is "dns" (the host name does not resolve), "tls" (no TLS spoken, or a certificate refused),
    "refused" and "connect" (nothing accepted the connection), or "dropped" (an answer was cut off).
    """

    reason: str
    kind: str

    def clears_by_waiting(self, reached: bool) -> bool:
        """Whether a retry can help: never for DNS and TLS; for a refused connection only when the
        server answered before (it is restarting); always for a connection cut off mid-transfer."""
        if self.kind in ("dns", "tls"):
            return False
        if self.kind in ("refused", "connect"):
            return reached
        return True


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests -> urllib3 -> socket/ssl)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]


def network_failure(exc: BaseException) -> NetworkFailure:
    """Classifies a failed request (a requests exception) without showing urllib3's internals."""
    import socket
    import ssl

    chain = list(_exception_chain(exc))
    if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
        return NetworkFailure("its host name does not resolve", "dns")
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return NetworkFailure(f"its TLS certificate was refused: {e.verify_message or e.reason}", "tls")
        if isinstance(e, ssl.SSLError):
            return NetworkFailure(f"the TLS handshake failed ({e.reason or e})", "tls")
        if isinstance(e, TimeoutError) and "handshake" in str(e):
            return NetworkFailure("the TLS handshake got no answer", "tls")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return NetworkFailure("the connection was refused", "refused")
    if any(type(e).__name__ in ("ConnectTimeout", "ConnectTimeoutError") for e in chain):
        return NetworkFailure("the connection got no answer", "connect")
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return NetworkFailure("the connection was reset", "dropped")
    if any(isinstance(e, TimeoutError) or type(e).__name__ in ("ReadTimeout", "ReadTimeoutError") for e in chain):
        return NetworkFailure("the server stopped answering", "dropped")
    return NetworkFailure("the connection was cut off", "dropped")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def loggable_url(url: str) -> str:
    """A URL for -v logs: the query's names without their values (signatures, key hashes)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    names = "&".join(f"{name}=..." for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return parts._replace(query=names).geturl()


def speaks_plain_http(url: str) -> bool:
    """Whether an address answers plain HTTP (to explain a TLS failure against it)."""
    import requests

    try:
        requests.head(url, timeout=(2.0, 2.0), allow_redirects=False)
    except requests.RequestException:
        return False
    return True


def unreachable_message(where: str, failure: NetworkFailure, connect_timeout: float) -> str:
    """The one-line error for a server that cannot be reached: the URL, the reason, the next step."""
    parts = urlsplit(where)
    if failure.kind == "dns":
        hint = (f"check the host name {parts.hostname!r} in --endpoint (or LOCKR_ENDPOINT, or the endpoint "
                "'lockr-local login' saved)")
    elif failure.kind == "tls":
        plain = parts._replace(scheme="http").geturl()
        if parts.scheme == "https" and speaks_plain_http(plain):
            hint = f"that port speaks plain HTTP: use --endpoint {plain} (or put a TLS proxy in front)"
        else:
            hint = "check the scheme and port, or the certificate (REQUESTS_CA_BUNDLE names a private CA)"
    elif failure.kind == "refused":
        hint = "is the lockr server running on that port? Start it ('lockr-local serve') or fix --endpoint"
    else:
        hint = f"no answer within {connect_timeout:.0f} s; check the address, the network and any firewall"
    return f"Cannot reach {where}: {failure.reason}; {hint}."

"""Credentials inside server addresses: the printable form of an address, and cutting any echo
of a credential out of a message. No imports from the rest of the package, so that every layer
(the client, the storage checks, exports) can use it."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def public_url(url: str | None) -> str | None:
    """A server address without credentials: ``user:password@`` and the query string are
    dropped, the fragment too."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def has_credentials(url: str | None) -> bool:
    """Whether an address carries something that must not be stored: userinfo or a query."""
    if not url:
        return False
    parts = urlsplit(url.strip())
    return bool(parts.username or parts.password or "@" in parts.netloc or parts.query)


def secrets_of(url: str | None) -> list[str]:
    """The credential strings inside an address, raw and percent-decoded, longest first, so
    that any echo of them (an error body, a log line) can be cut out."""
    if not url:
        return []
    parts = urlsplit(url)
    found: set[str] = set()
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.add(userinfo)
        user, _, password = userinfo.partition(":")
        for piece in (user, password):
            if piece:
                found.update({piece, unquote(piece)})
    if parts.query:
        found.add(parts.query)
        for pair in parts.query.split("&"):
            _, _, value = pair.partition("=")
            if value:
                found.update({value, unquote(value)})
    # Very short pieces (a user called "a") would shred every message; the URL forms still go.
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

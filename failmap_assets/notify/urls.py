"""Webhook URLs: the configured list, and how a URL is shown (never its credentials)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """``url`` without userinfo, query and fragment: what logs, metadata and messages
    show (credentials and tokens live there)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_urls(text: str) -> list[str]:
    """The comma-separated list of ``FAILMAP_WEBHOOK_URLS`` (blanks ignored); a URL that
    is not http(s) with a host is an error naming it redacted."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    for url in urls:
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"webhook URL {redact(url)!r} is not an http:// or https:// URL with a host")
    return urls

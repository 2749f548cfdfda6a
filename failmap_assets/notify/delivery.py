"""POST a signed document to each webhook URL: a short timeout, a few retries with
backoff on what may pass (connection errors, timeouts, 5xx), none on a 4xx.

urllib3 does the HTTP. The retry loop is ours rather than ``urllib3.Retry`` because
we record every delivery's attempts and last error, which ``Retry`` does not hand
back when it gives up. Redirects are not followed (a signed POST is not re-sent to
another host). Nothing here raises for a receiver's sake: a ``Delivery`` says what
happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import urllib3
from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from failmap_assets.notify.urls import redact

# connection refused / DNS / connect and read timeouts, and a connection dropped mid-answer
RETRYABLE = (Urllib3Timeout, ProtocolError)

_POOL = urllib3.PoolManager(num_pools=16, maxsize=4)
USER_AGENT = "failmap-assets-webhook/1"


@dataclass(frozen=True)
class Delivery:
    url: str               # redacted: no userinfo, no query
    status: int | None     # the last HTTP status; None when no answer came
    attempts: int
    error: str             # "" when delivered
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def max_seconds(timeout: float, retries: int, backoff: float) -> float:
    """The longest one delivery can take: every attempt timing out, every backoff slept."""
    return (retries + 1) * timeout + sum(backoff * 2 ** i for i in range(retries))


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = 3.0, retries: int = 2,
         backoff: float = 0.5, pool: urllib3.PoolManager | None = None,
         sleep: Callable[[float], None] = time.sleep) -> Delivery:
    started = time.monotonic()
    target, request_headers = _request(url, headers)
    status: int | None = None
    error = ""
    attempt = 0
    for attempt in range(1, retries + 2):
        try:
            response = (pool or _POOL).request(
                "POST", target, body=body, headers=request_headers, retries=False, redirect=False,
                # total: one bound for connect + answer, so a slow receiver costs at most this
                timeout=urllib3.Timeout(total=timeout), preload_content=False,
            )
            status = response.status
            response.close()  # the answer's body is not used
            if status < 500:
                error = "" if 200 <= status < 300 else f"HTTP {status}"
                break
            error = f"HTTP {status}"
        except RETRYABLE as exc:
            status, error = None, describe(exc, url, timeout)
        except HTTPError as exc:  # TLS, a malformed URL: another attempt would fail alike
            status, error = None, describe(exc, url, timeout)
            break
        if attempt <= retries:
            sleep(backoff * 2 ** (attempt - 1))
    return Delivery(redact(url), status, attempt, error, round(time.monotonic() - started, 3))


def post_all(urls: list[str], body: bytes, headers: Mapping[str, str], **options) -> list[Delivery]:
    """``post`` to every URL at once (one slow receiver does not delay the others), in
    the order given."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(urls)), thread_name_prefix="webhook") as pool:
        return list(pool.map(lambda u: post(u, body, headers, **options), urls))


def _request(url: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The URL without userinfo, and the headers with HTTP basic auth from it (how a
    user/password in a URL is meant)."""
    parts = urlsplit(url)
    out = {"User-Agent": USER_AGENT, **headers}
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        out.update(urllib3.make_headers(basic_auth=f"{user}:{password}"))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), out


def describe(exc: Exception, url: str, timeout: float) -> str:
    """A short reason, without the URL's credentials or query."""
    if isinstance(exc, ReadTimeoutError):
        text = f"no answer within {timeout:g} s"
    elif isinstance(exc, Urllib3Timeout):
        # "<HTTPConnection object at 0x..>: Failed to establish a new connection: [Errno 111] ..."
        text = str(exc).split(">: ", 1)[-1]
    else:
        text = f"{type(exc).__name__}: {exc}"
    parts = urlsplit(url)
    for secret in (parts.netloc.rpartition("@")[0], parts.query, url):
        if secret:
            text = text.replace(secret, "***")
    return text[:300]

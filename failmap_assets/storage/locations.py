"""A location string -> an ObjectStore, and the one cache of opened stores.

``s3://bucket/prefix`` is an S3 (or S3-compatible) store, ``ftp://host[:port]/path``
and ``sftp://host[:port]/path`` read-only file-server sources (credentials, host keys
and the settle time from the environment, through ``settings.py``; never in the URL),
anything else a local folder. Opening an S3 store builds a boto3 client (~0.1-0.4 s: endpoint rules,
service model), and Dagster builds fresh resources for every sensor evaluation and
every run, so stores are kept per process, keyed by everything that makes one
client differ from another: location, endpoint, region, pool size and the
credentials' identity (a digest, never the secret itself).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from failmap_assets.storage.local_store import LocalObjectStore
from failmap_assets.storage.object_store import ObjectStore
from failmap_assets.storage.s3_store import S3ObjectStore, s3_client

if TYPE_CHECKING:
    from failmap_assets.settings import Settings

_CACHE_LIMIT = 64  # configurations come and go in tests; never grow without bound
_cache: dict[tuple, ObjectStore] = {}
_clients: dict[tuple, Any] = {}
_lock = threading.Lock()


def parse_s3_url(location: str) -> tuple[str, str] | None:
    """``(bucket, prefix)`` for ``s3://bucket/prefix``, None for anything else."""
    scheme, sep, rest = location.partition("://")
    if not sep or scheme.lower() != "s3":
        return None
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in S3 location {location!r}")
    return bucket, prefix


REMOTE_SCHEMES = {"ftp": 21, "sftp": 22}


def parse_remote_url(location: str) -> tuple[str, str, int, str] | None:
    """``(scheme, host, port, path)`` for ``ftp://`` and ``sftp://`` locations, None for
    anything else. A user or password in the URL is refused (it would be printed with
    the location): they come from the environment."""
    scheme, sep, rest = location.partition("://")
    if not sep or scheme.lower() not in REMOTE_SCHEMES:
        return None
    scheme = scheme.lower()
    netloc, _, _ = rest.partition("/")
    if "@" in netloc:
        shown = f"{scheme}://{rest.partition('@')[2]}"
        raise ValueError(f"credentials in the location {shown!r} are refused: set FAILMAP_{scheme.upper()}_USER "
                         f"and FAILMAP_{scheme.upper()}_PASSWORD instead")
    parts = urlsplit(location)
    try:
        port = parts.port or REMOTE_SCHEMES[scheme]
    except ValueError:
        raise ValueError(f"bad port in {scheme} location {location!r}") from None
    if not parts.hostname:
        raise ValueError(f"no host in {scheme} location {location!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{scheme} location {location!r} has a query or fragment; give host, port and path only")
    return scheme, parts.hostname, port, unquote(parts.path)


def _remote_store(parsed: tuple[str, str, int, str], settings: Settings) -> ObjectStore:
    from failmap_assets.storage.remote_store import RemoteOptions

    scheme, host, port, path = parsed
    options = RemoteOptions(settle_seconds=settings.remote_settle_seconds,
                            max_connections=settings.remote_max_connections)
    if scheme == "ftp":
        from failmap_assets.storage.ftp_store import FtpCredentials, FtpObjectStore

        return FtpObjectStore(host, port, path, FtpCredentials(settings.ftp_user, settings.ftp_password), options)
    from failmap_assets.storage.sftp_store import SftpCredentials, SftpObjectStore

    creds = SftpCredentials(settings.sftp_user, settings.sftp_password, settings.sftp_key_file,
                            settings.sftp_known_hosts, settings.sftp_insecure_accept_any_host_key)
    return SftpObjectStore(host, port, path, creds, options)


def open_store(location: str, *, endpoint_url: str | None = None, region: str | None = None,
               max_pool: int = 32, client: Any = None, settings: Settings | None = None) -> ObjectStore:
    """A new store for ``location`` (a relative folder is taken relative to the current
    directory). ``client`` lets several S3 stores share one boto3 client and its pool;
    without it one is built with credentials from boto3's default chain. FTP and SFTP
    stores take their credentials and options from ``settings`` (default: the environment)."""
    remote = parse_remote_url(location)
    if remote is not None:
        if settings is None:
            from failmap_assets.settings import Settings

            settings = Settings.from_env()
        return _remote_store(remote, settings)
    parsed = parse_s3_url(location)
    if parsed is None:
        if "://" in location:  # gs://, http://, file://: not a folder name, and not supported
            raise ValueError(f"unsupported storage location {location!r}: use s3://bucket/prefix, "
                             "ftp://host/path, sftp://host/path (sources only) or a folder")
        return LocalObjectStore(os.path.abspath(location))
    if client is None:
        client = s3_client(endpoint_url, region, max_pool)
    bucket, prefix = parsed
    return S3ObjectStore(bucket, prefix, client)


def _identity() -> str:
    """Which credentials boto3 will pick up, as a digest: a changed key or secret (tests,
    rotation) gets a new client, and nothing secret is kept in the cache key."""
    parts = [os.environ.get(n, "") for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                              "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _remote_identity(settings: Settings) -> str:
    """Everything an FTP/SFTP store is opened with, as a digest (credentials included)."""
    from dataclasses import fields

    parts = [repr(getattr(settings, f.name)) for f in fields(settings)
             if f.name.startswith(("ftp_", "sftp_", "remote_"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def cached_store(location: str, *, endpoint_url: str = "", region: str = "", max_pool: int = 32) -> ObjectStore:
    """The process's store for ``location``; all S3 stores of one configuration share a client."""
    settings = None
    if parse_remote_url(location) is not None:
        from failmap_assets.settings import Settings

        settings = Settings.from_env()
        client_key: tuple = ("remote", _remote_identity(settings))
    else:
        client_key = (endpoint_url, region, max_pool, _identity())
    key = (location, *client_key)
    with _lock:  # ops and sensors may ask from several threads at once
        store = _cache.get(key)
        if store is None:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
                _clients.clear()
            client = None
            if parse_s3_url(location) is not None:
                client = _clients.get(client_key)
                if client is None:
                    client = _clients[client_key] = s3_client(endpoint_url or None, region or None, max_pool)
            store = _cache[key] = open_store(location, client=client, settings=settings)
        return store

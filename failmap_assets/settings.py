"""FAILMAP_* environment -> one typed settings object.

The environment picks the deployment (local folders vs S3, which endpoint), never
code branches. With nothing set, everything lives under ``./.failmap/`` (the
embedded default) and Dagster keeps its SQLite storage under ``./.dagster``.
Credentials are not settings: boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
from the environment itself, so they never pass through our objects or logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

DEFAULT_ROOT = ".failmap"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, minimum: int = 0) -> int:
    """An integer setting; a malformed or too small value is an error that names the variable."""
    return _env_number(name, default, minimum, int, "an integer")


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    return _env_number(name, default, minimum, float, "a number")


def _env_number(name, default, minimum, parse, kind: str):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not {kind}") from exc
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    source_a: str
    source_b: str
    source_stdf: str
    output: str
    s3_endpoint_url: str
    aws_region: str
    start_date: date          # first daily partition
    fab_timezone: str         # the testers' local time: keys carry fab time without a zone
    max_workers: int          # parallel GETs inside one run

    @classmethod
    def from_env(cls) -> "Settings":
        root = _env("FAILMAP_HOME", DEFAULT_ROOT)
        return cls(
            source_a=_env("FAILMAP_SOURCE_A", os.path.join(root, "a")),
            source_b=_env("FAILMAP_SOURCE_B", os.path.join(root, "b")),
            source_stdf=_env("FAILMAP_SOURCE_STDF", os.path.join(root, "stdf")),
            output=_env("FAILMAP_OUTPUT", os.path.join(root, "out")),
            s3_endpoint_url=_env("FAILMAP_S3_ENDPOINT_URL", ""),
            aws_region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "")),
            start_date=date.fromisoformat(_env("FAILMAP_START_DATE", "2026-01-01")),
            fab_timezone=_env("FAILMAP_TIMEZONE", "UTC"),
            max_workers=env_int("FAILMAP_MAX_WORKERS", 16, minimum=1),
        )

"""Signed requests: HMAC-SHA256 over ``<timestamp>.<body>`` with the shared secret.

The timestamp is part of the signed material, so a receiver that rejects old
timestamps (say older than 5 minutes) also rejects a replayed request. A receiver
verifies with::

    expected = hmac.new(secret, f"{ts}.".encode() + body, sha256).hexdigest()
    hmac.compare_digest(f"sha256={expected}", request.headers["X-Failmap-Signature"])
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Failmap-Signature"
TIMESTAMP_HEADER = "X-Failmap-Timestamp"
EVENT_HEADER = "X-Failmap-Event"
DELIVERY_HEADER = "X-Failmap-Delivery"


def signed_material(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), signed_material(timestamp, body), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def headers(body: bytes, *, secret: str, timestamp: int, event: str, delivery_id: str) -> dict[str, str]:
    """The request headers; without a secret the request goes unsigned (no signature
    header; the sensor says so in its log and metadata)."""
    out = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_HEADER: event,
        # the same on every attempt and receiver: lets a receiver drop a retried duplicate
        DELIVERY_HEADER: delivery_id,
    }
    if secret:
        out[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return out

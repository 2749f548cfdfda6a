"""Signing and delivery against a real HTTP receiver on 127.0.0.1 (no Dagster)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import time

import pytest

from failmap_assets.notify import delivery, payload, signing
from failmap_assets.notify.urls import parse_urls, redact
from failmap_assets.settings import Settings, problems, secret_values
from tests.support.webhook_receiver import start_receiver, stop_receiver

SECRET = "whsec-7f3a9c"


@pytest.fixture(scope="module")
def receiver():
    rec, thread = start_receiver()
    yield rec
    stop_receiver(rec, thread)


def test_signature_is_hmac_sha256_of_timestamp_and_exact_body():
    body = payload.encode({"day": "2026-01-11", "yield_pct": 75.0, "pipeline": "failmap"})
    h = signing.headers(body, secret=SECRET, timestamp=1767139200, event="day_run.succeeded", delivery_id="r:failmap")
    expected = hmac.new(SECRET.encode(), b"1767139200." + body, hashlib.sha256).hexdigest()
    assert h[signing.SIGNATURE_HEADER] == f"sha256={expected}"
    assert h[signing.TIMESTAMP_HEADER] == "1767139200"
    # the timestamp is signed: replaying the body under another timestamp does not verify
    assert signing.signature(SECRET, 1767139201, body) != h[signing.SIGNATURE_HEADER]
    assert body == b'{"day":"2026-01-11","pipeline":"failmap","yield_pct":75.0}'
    assert signing.SIGNATURE_HEADER not in signing.headers(body, secret="", timestamp=1, event="e", delivery_id="d")


def test_a_4xx_is_final_no_retry(receiver):
    before = len(receiver.at("/missing"))
    d = delivery.post(receiver.url("/missing"), b"{}", {}, timeout=1, retries=2, backoff=0.01)
    assert (d.status, d.attempts, d.delivered, d.error) == (404, 1, False, "HTTP 404")
    assert len(receiver.at("/missing")) == before + 1


def test_connection_refused_is_retried_with_doubling_backoff_then_given_up():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept = []
    d = delivery.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, timeout=1, retries=2, backoff=0.2, sleep=slept.append)
    assert (d.status, d.attempts, d.delivered) == (None, 3, False)
    assert "refused" in d.error.lower()
    assert slept == [0.2, 0.4]


def test_credentials_in_the_url_go_as_basic_auth_and_are_never_shown(receiver):
    url = receiver.url("/ok").replace("http://", "http://hook%40user:p%3Ass@") + "?token=q-tok-123"
    d = delivery.post(url, b"{}", {"Content-Type": "application/json"}, timeout=1)
    assert d.delivered and d.attempts == 1
    got = receiver.at("/ok")[-1]
    assert got.path == "/ok?token=q-tok-123"  # the query is sent, only never shown
    assert got.headers["authorization"] == "Basic " + base64.b64encode(b"hook@user:p:ss").decode()
    assert d.url == receiver.url("/ok")


def test_redact_and_url_errors_never_show_userinfo_or_query():
    assert redact("https://u:pw@hooks.example.com:8443/a/b?sig=xyz#f") == "https://hooks.example.com:8443/a/b"
    assert redact("http://[::1]:9000/x?k=v") == "http://[::1]:9000/x"
    assert parse_urls(" http://a/x , ,https://b/y ") == ["http://a/x", "https://b/y"]
    with pytest.raises(ValueError) as err:
        parse_urls("http://a/x,ftp://u:pw@files.example.com/in?key=k9")
    assert "ftp://files.example.com/in" in str(err.value)
    assert "pw" not in str(err.value) and "k9" not in str(err.value)


def test_webhook_settings_parse_and_the_secret_stays_out_of_sight():
    env = {"FAILMAP_WEBHOOK_URLS": "https://a.example/h,http://b.example:81/h", "FAILMAP_WEBHOOK_SECRET": SECRET,
           "FAILMAP_WEBHOOK_TIMEOUT_SECONDS": "2.5", "FAILMAP_UI_URL": "http://dagster.example:3000"}
    s = Settings.from_env(env)
    assert (s.webhook_urls, s.webhook_secret, s.webhook_timeout_seconds, s.ui_url) == (
        env["FAILMAP_WEBHOOK_URLS"], SECRET, 2.5, "http://dagster.example:3000")
    assert SECRET not in repr(s)
    assert SECRET in secret_values(env)  # so `failmap doctor` scrubs it from every line
    bad = problems({"FAILMAP_WEBHOOK_URLS": "mailto:ops@example.com?token=t0k", "FAILMAP_UI_URL": "a,b",
                    "FAILMAP_WEBHOOK_TIMEOUT_SECONDS": "0"})
    assert len(bad) == 3 and not any("t0k" in p for p in bad), bad


def test_every_attempt_is_bounded_by_the_timeout(receiver):
    started = time.monotonic()
    d = delivery.post(receiver.url("/slow"), b"{}", {}, timeout=0.2, retries=1, backoff=0.05)
    took = time.monotonic() - started
    assert (d.status, d.attempts, d.error) == (None, 2, "no answer within 0.2 s")
    assert took < delivery.max_seconds(0.2, 1, 0.05) + 0.5, took

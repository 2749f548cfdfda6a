"""A real HTTP receiver for webhook tests: ``http.server`` on 127.0.0.1 in a thread.

Each path behaves its own way: ``/ok`` answers 200, ``/flaky`` 500 to its first two
requests then 200, ``/slow`` answers only after ``slow_seconds`` (longer than the
tests' timeout), ``/missing`` 404. Every request is recorded (path, headers, body).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]   # names lower-cased (HTTP header names are case-insensitive)
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)
    slow_seconds: float = 2.0
    release: threading.Event = field(default_factory=threading.Event)  # ends every /slow wait at teardown
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path.split("?")[0]
            with receiver.lock:
                receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.hits[path] += 1
                hit = receiver.hits[path]
            if path == "/slow":
                receiver.release.wait(receiver.slow_seconds)
            code = {"/missing": 404, "/flaky": 500 if hit <= 2 else 200}.get(path, 200)
            try:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up waiting (the /slow case)

        def log_message(self, *args):  # keep the test output quiet
            pass

    return Handler


def start_receiver() -> tuple[Receiver, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), None)  # handler set below: it needs the Receiver
    receiver = Receiver(server)
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    return receiver, thread


def stop_receiver(receiver: Receiver, thread: threading.Thread) -> None:
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()
    thread.join(timeout=5)

"""Support for the alert tests and bench (no tests here): a real local webhook receiver (http.server on 127.0.0.1
in a thread) that records what it is sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    at: float  # time.time() on arrival
    path: str
    body: dict[str, Any]


class Receiver:
    """Records every POST. Paths starting with /flaky answer 500 to every other request (the retry path)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._flaky = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with receiver._lock:
                    if self.path.startswith("/flaky"):
                        receiver._flaky += 1
                        if receiver._flaky % 2:
                            self.send_response(500)
                            self.end_headers()
                            return
                    receiver.received.append(Received(time.time(), self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def matching(self, path: str, pred: Callable[[dict[str, Any]], bool]) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path and pred(r.body)]

    def wait_for(
        self, path: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0, count: int = 1
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(path, pred)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise TimeoutError(f"no webhook to {path} matched within {timeout}s; got {self.received!r}"[:4000])

"""A faulty JSON-RPC proxy in front of a node: real HTTP faults for the keeper's tests.

Every request is counted; the k-th matching request (``fail_every``) gets a fault:
- ``"error"``: answered 502 without reaching the node;
- ``"delay"``: held ``delay`` seconds (longer than the client's timeout), then forwarded;
- ``"lost"``: forwarded to the node, and the answer replaced by a 502 (the node acted, the
  client does not know).
``only_methods`` limits faults to some JSON-RPC methods, ``max_faults`` bounds their number and
``down`` fails every request with 503.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyRpcProxy:
    def __init__(
        self,
        upstream: str,
        fail_every: int = 0,
        mode: str = "error",
        delay: float = 1.0,
        only_methods: frozenset[str] | None = None,
        max_faults: int | None = None,
    ) -> None:
        if mode not in ("error", "delay", "lost"):
            raise ValueError(f"unknown mode {mode!r}")
        self.upstream = upstream
        self.fail_every = fail_every
        self.mode = mode
        self.delay = delay
        self.only_methods = only_methods
        self.max_faults = max_faults
        self.down = False
        self.requests = 0
        self.matching = 0
        self.faults = 0
        self.methods: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._decide(body)
                if fault == "down":
                    self._reply(503, b"down")
                    return
                if fault == "error":
                    self._reply(502, b"bad gateway")
                    return
                if fault == "delay":
                    time.sleep(proxy.delay)
                try:
                    answer = proxy._forward(body)
                except OSError:
                    self._reply(502, b"upstream unreachable")
                    return
                if fault == "lost":
                    self._reply(502, b"bad gateway")
                    return
                self._reply(200, answer)

            def _reply(self, status: int, payload: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); that is the point of "delay"

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _decide(self, body: bytes) -> str | None:
        try:
            method = json.loads(body).get("method", "")
        except (ValueError, AttributeError):
            method = ""
        with self._lock:
            self.requests += 1
            self.methods.append(method)
            if self.down:
                return "down"
            if self.only_methods is not None and method not in self.only_methods:
                return None
            self.matching += 1
            if not self.fail_every or self.matching % self.fail_every:
                return None
            if self.max_faults is not None and self.faults >= self.max_faults:
                return None
            self.faults += 1
            return self.mode

    def _forward(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def start(self) -> FaultyRpcProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""A tiny http.server on 127.0.0.1 serving ticks as JSON, for the keeper's market data tests.

``payload`` is served as JSON with ``status``; ``body`` (bytes), when set, is served as is
instead (a malformed answer). ``delay`` holds each answer that many seconds (a slow feed);
``drip`` sends the body a byte at a time, that many seconds apart (a feed too slow to finish).
The server runs in daemon threads until ``stop``; ``port`` starts one again where a stopped one
listened.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class TickServer:
    def __init__(self, port: int = 0) -> None:
        self.payload: object = []
        self.body: bytes | None = None
        self.status = 200
        self.delay = 0.0
        self.drip = 0.0
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.hits += 1
                time.sleep(server.delay)
                body = (
                    server.body if server.body is not None else json.dumps(server.payload).encode()
                )
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    pieces = [body[k : k + 1] for k in range(len(body))] if server.drip else [body]
                    for piece in pieces:
                        self.wfile.write(piece)
                        self.wfile.flush()
                        time.sleep(server.drip)
                except OSError:
                    pass  # the client gave up waiting (a slow answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/ticks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

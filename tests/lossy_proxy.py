"""A loopback HTTP proxy in front of the emulator that loses answers: it forwards a request, lets the
emulator act on it, reads the answer, then closes the client's connection without replying.

That is what a timeout, a reset connection or a proxy's 5xx after AWS acted looks like to botocore.
A request is marked for it by the header the test adds (DROP_HEADER); the proxy loses the answer to
the first copy of each distinct marked request (same operation, same body) and lets resends through.
"""
from __future__ import annotations

import hashlib
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DROP_HEADER = "X-Test-Lose-Answer"


class LossyProxy:
    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.lost: list[str] = []  # the operations whose answer was lost
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = self.headers.get(DROP_HEADER)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", DROP_HEADER.lower())}
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                if operation and proxy._first(operation, body):
                    self.close_connection = True  # the emulator acted; the client never hears of it
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _first(self, operation: str, body: bytes) -> bool:
        fingerprint = operation + hashlib.sha256(body).hexdigest()
        with self._lock:
            if fingerprint in self._seen:
                return False
            self._seen.add(fingerprint)
            self.lost.append(operation)
            return True

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()


def mark_creates(prefixes: tuple[str, ...]):
    """A botocore before-send handler marking every call whose operation starts with `prefixes`."""
    def mark(request, event_name: str, **_):
        operation = event_name.rsplit(".", 1)[-1]
        if operation.startswith(prefixes):
            request.headers[DROP_HEADER] = operation
    return mark

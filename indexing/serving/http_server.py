"""The search HTTP API (stdlib ThreadingHTTPServer; JSON format in pixsearch_core/retrieval/codec.py).

    POST /v1/search          {"k": 5, "queries": [...]}  -> {"index_version", "results": [[evidence, ...], ...]}
    GET  /v1/index-version   -> {"index_version": "name/version", "kinds": ["image", "text"]}
    GET  /healthz            -> {"status": "ok", "index_version": ..., "requests": n, "errors": n}

    server, url = start_http(searcher, host="127.0.0.1", port=0)   # background thread; server.shutdown() stops it

A bad request (not JSON, empty text, bytes that are not an image, mask of the wrong shape or empty, k out of
range, body over `max_body_bytes`) is answered 4xx with {"error": {"type": "bad_request", "message": ...}};
an unexpected failure is a 500 that is logged with its traceback. Either way the server keeps serving.
`searcher` is anything with `search_many(queries, k)` and `index_version` (ShardedSearcher, RaySearchRouter).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pixsearch_core.retrieval.types import BadSearchRequest
from pixsearch_core.retrieval.codec import wire_to_request

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 << 20
DRAIN_MAX_BYTES = 256 << 20  # an oversized body up to this size is read and dropped before the 413


class SearchHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, searcher, max_body_bytes: int = MAX_BODY_BYTES, max_queries: int = 256):
        super().__init__(addr, _Handler)
        self.searcher, self.max_body_bytes, self.max_queries = searcher, max_body_bytes, max_queries
        self.lock = threading.Lock()  # one search at a time: encoders need not be thread-safe
        self.counts = {"requests": 0, "errors": 0}
        self.counts_lock = threading.Lock()

    def count(self, what: str) -> None:
        with self.counts_lock:
            self.counts[what] += 1

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: SearchHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid a 40 ms delayed-ACK stall

    def log_message(self, fmt, *args):  # route the stdlib's stderr access log to logging
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self.server.count("errors")
        self._send(status, {"error": {"type": kind, "message": message}})

    def do_GET(self):
        s = self.server
        if self.path == "/healthz":
            return self._send(200, {"status": "ok", "index_version": s.searcher.index_version, **s.counts})
        if self.path == "/v1/index-version":
            return self._send(200, {"index_version": s.searcher.index_version,
                                    "kinds": list(getattr(s.searcher, "kinds", []))})
        self._error(404, "not_found", f"no such endpoint {self.path!r}; have GET /healthz, GET /v1/index-version, "
                                      f"POST /v1/search")

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(411, "bad_request", "a Content-Length header is required")
            return None
        if int(length) > self.server.max_body_bytes:
            self.close_connection = True
            left = int(length) if int(length) <= DRAIN_MAX_BYTES else 0  # drain so the client reads our 413
            while left > 0:
                left -= len(self.rfile.read(min(left, 1 << 20)) or b"\0" * left)
            self._error(413, "bad_request", f"body of {length} bytes exceeds {self.server.max_body_bytes}")
            return None
        return self.rfile.read(int(length))

    def do_POST(self):
        s = self.server
        s.count("requests")
        if self.path != "/v1/search":
            return self._error(404, "not_found", f"no such endpoint {self.path!r}; POST /v1/search")
        raw = self._read_body()
        if raw is None:
            return
        try:
            queries, k = wire_to_request(json.loads(raw), s.max_queries)
            with s.lock:
                results = s.searcher.search_many(queries, k)
        except json.JSONDecodeError as e:
            return self._error(400, "bad_request", f"body is not JSON: {e}")
        except (BadSearchRequest, ValueError, TypeError) as e:
            return self._error(400, "bad_request", str(e))
        except Exception as e:  # noqa: BLE001 - any other failure is a logged 500, the server keeps serving
            log.exception("search failed")
            return self._error(500, "internal", f"{type(e).__name__}: {e}")
        self._send(200, {"index_version": s.searcher.index_version,
                         "results": [[e.to_dict() for e in hits] for hits in results]})


def start_http(searcher, host: str = "127.0.0.1", port: int = 0, **kw) -> tuple[SearchHTTPServer, str]:
    """Serve in a daemon thread; returns (server, base URL). Stop with server.shutdown(); server.server_close()."""
    server = SearchHTTPServer((host, port), searcher, **kw)
    threading.Thread(target=server.serve_forever, name="search-http", daemon=True).start()
    log.info("search API on %s (index %s)", server.url, searcher.index_version)
    return server, server.url

"""The search HTTP API (stdlib HTTP server, a bounded worker pool; JSON format in pixsearch_core/retrieval/codec.py).

    POST /v1/search          {"k": 5, "queries": [...]}  -> {"index_version", "results": [[evidence, ...], ...]}
    GET  /v1/index-version   -> {"index_version": "name/version", "kinds": ["image", "text"]}
    GET  /healthz            -> {"status": "ok", "index_version": ..., "requests": n, "errors": n, "rejected": n,
                                 "search_calls": n, "queries_searched": n}

    server, url = start_http(searcher, host="127.0.0.1", port=0)   # background thread; server.shutdown() stops it

A bad request (not JSON, nested too deeply, empty text, bytes that are not an image, an image over the pixel or
aspect limits, a mask whose size is not its image's, k out of range, body over `max_body_bytes`, an unknown path
or method) is answered 4xx with {"error": {"type": "bad_request" | "not_found" | "timeout", "message": ...}}; an
unexpected failure is a 500 that is logged with its traceback. Either way the server keeps serving.

Slow or stuck clients cannot hold the server (see connections.py): each connection is served by one of `workers`
threads; when all are busy a new connection is answered 503 with Retry-After and closed. A connection idle for
`read_timeout` seconds is closed, and a request must arrive whole (line, headers, body) within `request_timeout`
seconds or it is answered 408 and closed. A body the server will not use (unknown path, 413) is read and
dropped when it is small enough, otherwise the connection is closed, so the next keep-alive request is never
parsed from the middle of it.
`searcher` is anything with `search_many(queries, k)` and `index_version` (ShardedSearcher, RaySearchRouter).

Searches are batched (batcher.py): requests that arrive together are served by one `search_many` call per k on one
thread, each request getting its own results (or its own 4xx/5xx). `batch_window_ms` is how long the batcher may
wait for requests already being read; `max_batch_queries` bounds one call; `search_threads` searches that many
batches at once (one core each: torch and FAISS release the GIL while they compute).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler

from indexing.serving.batcher import BatcherClosed, RequestBatcher
from indexing.serving.connections import PooledHTTPServer
from pixsearch_core.retrieval.codec import RequestLimits, wire_to_request
from pixsearch_core.retrieval.types import BadSearchRequest

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 << 20
DRAIN_MAX_BYTES = 64 << 20  # an unused body up to this size is read and dropped (else the connection is closed)


class SearchHTTPServer(PooledHTTPServer):
    def __init__(
        self,
        addr,
        searcher,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_queries: int | None = None,
        limits: RequestLimits | None = None,
        batch_window_ms: float = 5.0,
        max_batch_queries: int = 256,
        search_thread_init=None,
        search_threads: int = 1,
        **pool,
    ):
        """`pool`: workers, read_timeout, request_timeout (connections.PooledHTTPServer); `search_thread_init`:
        called first on each thread that runs searches (e.g. `lambda: set_faiss_threads(1)`); `search_threads`:
        how many batches are searched at once (more than 1 needs a searcher marked `thread_safe`)."""
        if search_threads != 1 and not getattr(searcher, "thread_safe", False):
            raise ValueError(
                f"search_threads={search_threads!r}: {type(searcher).__name__} is not marked thread_safe, so it "
                "must be searched by one thread (search_threads=1); ShardedSearcher and RaySearchRouter can take more"
            )
        batcher = RequestBatcher(searcher, batch_window_ms, max_batch_queries, search_thread_init, search_threads)
        try:
            super().__init__(addr, _Handler, **pool)
        except BaseException:
            batcher.close()
            raise
        limits = limits or RequestLimits()
        if max_queries is not None:
            limits = limits.model_copy(update={"max_queries": max_queries})
        self.searcher, self.max_body_bytes, self.limits = searcher, max_body_bytes, limits
        self.batcher = batcher  # one thread calls the searcher: encoders need not be thread-safe

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()


class _Handler(BaseHTTPRequestHandler):
    server: SearchHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid a 40 ms delayed-ACK stall

    def setup(self):
        self.timeout = self.server.read_timeout  # per-read socket timeout: an idle connection is closed
        super().setup()

    def handle_one_request(self):
        self.server.deadlines.arm(self.connection, self.server.request_timeout)
        try:
            super().handle_one_request()
        finally:
            self.server.deadlines.disarm(self.connection)

    def log_message(self, fmt, *args):  # route the stdlib's stderr access log to logging
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, kind: str, message: str) -> None:
        self.server.count("errors")
        self._send(status, {"error": {"type": kind, "message": message}})

    def _timed_out(self) -> bool:
        """True (after a 408) when the request did not arrive whole within request_timeout."""
        if not self.server.deadlines.expired(self.connection):
            return False
        self.close_connection = True
        self._error(408, "timeout", f"the request did not arrive within {self.server.request_timeout:g} s")
        return True

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # any other method: 405 (the stdlib would answer 501)
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self):
        self.close_connection = True  # its body (if any) is not read
        self._error(405, "bad_request", f"method {self.command!r} not allowed; use GET or POST")

    def do_GET(self):
        s = self.server
        if self._timed_out():
            return
        s.deadlines.disarm(self.connection)
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a GET body is not read: do not parse the next request from it
        if self.path == "/healthz":
            health = {"status": "ok", "index_version": s.searcher.index_version, **s.counts, **s.batcher.totals}
            return self._send(200, health)
        if self.path == "/v1/index-version":
            return self._send(
                200, {"index_version": s.searcher.index_version, "kinds": list(getattr(s.searcher, "kinds", []))}
            )
        self._error(
            404,
            "not_found",
            f"no such endpoint {self.path!r}; have GET /healthz, GET /v1/index-version, POST /v1/search",
        )

    def send_error(self, code, message=None, explain=None):
        """The stdlib's own protocol errors; an unsupported HTTP version is a client error here (400, not 505)."""
        if code == 505:
            code, message = 400, f"unsupported HTTP version {self.request_version!r}; use HTTP/1.1 or HTTP/1.0"
        self.server.count("errors")
        super().send_error(code, message, explain)

    def _length(self) -> int | None:
        """The declared body length, or None after a 411 (missing, repeated, not a number, or a chunked body)."""
        length = self.headers.get("Content-Length", "")
        if (
            "Transfer-Encoding" in self.headers
            or len(self.headers.get_all("Content-Length", [])) > 1
            or not (length.isascii() and length.isdigit())
        ):
            self.close_connection = True
            self._error(411, "bad_request", "one Content-Length header (and no Transfer-Encoding) is required")
            return None
        return int(length)

    def _discard(self, length: int) -> None:
        """Read and drop an unused body so the connection stays in step, or close it when that is too much."""
        if length > DRAIN_MAX_BYTES:
            self.close_connection = True
            return
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                self.close_connection = True
                return
            left -= len(chunk)

    def _read_body(self) -> bytes | None:
        length = self._length()
        if length is None:
            return None
        if length > self.server.max_body_bytes:
            self.close_connection = True
            self._discard(length)  # so the client gets to read our 413
            if not self._timed_out():
                self._error(413, "bad_request", f"body of {length} bytes exceeds {self.server.max_body_bytes}")
            return None
        raw = self.rfile.read(length)
        if self._timed_out():
            return None
        if len(raw) < length:
            self.close_connection = True
            self._error(400, "bad_request", f"body ended after {len(raw)} of {length} bytes")
            return None
        return raw

    def do_POST(self):
        s = self.server
        s.count("requests")
        if self._timed_out():
            return
        if self.path != "/v1/search":
            length = self._length()
            if length is not None:
                self._discard(length)
                if not self._timed_out():
                    self._error(404, "not_found", f"no such endpoint {self.path!r}; POST /v1/search")
            return
        with s.batcher.arrival() as arrival:  # the batcher may wait a moment for this request
            try:
                raw = self._read_body()
            except TimeoutError:
                self.close_connection = True
                return self._error(408, "timeout", f"no body data for {s.read_timeout:g} s")
            if raw is None:
                return
            s.deadlines.disarm(self.connection)
            self._search(raw, arrival)

    def _search(self, raw: bytes, arrival) -> None:
        s = self.server
        try:
            queries, k = wire_to_request(json.loads(raw), limits=s.limits)
            results = arrival.search(queries, k)
        except BatcherClosed as e:
            self.close_connection = True
            return self._error(503, "unavailable", str(e))
        except RecursionError:
            return self._error(400, "bad_request", "body is nested too deeply")
        except json.JSONDecodeError as e:
            return self._error(400, "bad_request", f"body is not JSON: {e}")
        except (BadSearchRequest, ValueError, TypeError) as e:
            return self._error(400, "bad_request", str(e))
        except Exception as e:  # noqa: BLE001 - any other failure is a logged 500, the server keeps serving
            log.exception("search failed")
            return self._error(500, "internal", f"{type(e).__name__}: {e}")
        self._send(
            200,
            {"index_version": s.searcher.index_version, "results": [[e.to_dict() for e in hits] for hits in results]},
        )


def start_http(searcher, host: str = "127.0.0.1", port: int = 0, **kw) -> tuple[SearchHTTPServer, str]:
    """Serve in a daemon thread; returns (server, base URL). Stop with server.shutdown(); server.server_close()."""
    server = SearchHTTPServer((host, port), searcher, **kw)
    threading.Thread(target=server.serve_forever, name="search-http", daemon=True).start()
    log.info("search API on %s (index %s)", server.url, searcher.index_version)
    return server, server.url

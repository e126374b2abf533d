"""Connection handling for the search HTTP server: a bounded worker pool, 503 when full, per-request deadlines.

    server = PooledHTTPServer(("127.0.0.1", 0), Handler, workers=32, read_timeout=10, request_timeout=30)

* Each accepted connection is served by one of `workers` threads for as long as it stays open (keep-alive). When
  every worker is busy, a new connection is answered `503 Service Unavailable` with `Retry-After` by one small
  rejecting thread and closed; the server never starts a thread per connection.
* `read_timeout` is the socket timeout of every read and write: a connection that sends nothing (idle keep-alive,
  a half-sent body) for that long is closed and its worker freed.
* `request_timeout` bounds the whole arrival of one request (line, headers and body). A client that trickles a
  byte now and then (slow loris) never trips the read timeout, so a reaper thread shuts the read side of any
  connection past its deadline; the blocked read returns at once and the handler answers 408 (`deadlines`).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer

log = logging.getLogger(__name__)

_BUSY_BODY = b'{"error": {"type": "unavailable", "message": "all workers are busy; retry in 1 second"}}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY)
)


class Deadlines:
    """Per-connection deadlines; `sweep` shuts the read side of overdue sockets (a blocked recv returns b"")."""

    def __init__(self):
        self._lock = threading.Lock()
        self._due: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._expired.discard(sock)
            self._due[sock] = time.monotonic() + seconds

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(sock, None)

    def expired(self, sock: socket.socket) -> bool:
        with self._lock:
            return sock in self._expired

    def forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._due.pop(sock, None)
            self._expired.discard(sock)

    def sweep(self) -> int:
        now = time.monotonic()
        with self._lock:
            overdue = [s for s, due in self._due.items() if due <= now]
            for sock in overdue:
                del self._due[sock]
                self._expired.add(sock)
        for sock in overdue:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:  # already closed by its handler
                pass
        return len(overdue)


class PooledHTTPServer(HTTPServer):
    request_queue_size = 128  # listen backlog

    def __init__(self, addr, handler, workers: int = 32, read_timeout: float = 10.0, request_timeout: float = 30.0):
        if workers < 1 or read_timeout <= 0 or request_timeout <= 0:
            raise ValueError(
                f"workers={workers}, read_timeout={read_timeout}, request_timeout={request_timeout}: "
                "need workers >= 1 and positive timeouts"
            )
        super().__init__(addr, handler)
        self.workers, self.read_timeout, self.request_timeout = workers, read_timeout, request_timeout
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="search-http")
        self.slots = threading.BoundedSemaphore(workers)
        self.deadlines = Deadlines()
        self.counts = {"requests": 0, "errors": 0, "rejected": 0}
        self.counts_lock = threading.Lock()
        self._stop = threading.Event()
        self._busy: queue.Queue = queue.Queue(maxsize=64)
        self._open: set[socket.socket] = set()  # connections being served (closed by server_close)
        for target, name in ((self._reap, "search-http-reaper"), (self._reject, "search-http-busy")):
            threading.Thread(target=target, name=name, daemon=True).start()

    def count(self, what: str) -> None:
        with self.counts_lock:
            self.counts[what] += 1

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.count("rejected")
            try:
                self._busy.put_nowait(request)
            except queue.Full:  # even the rejecting thread is behind: just close
                self.shutdown_request(request)
            return
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request, client_address) -> None:
        with self.counts_lock:
            self._open.add(request)
        try:
            self.finish_request(request, client_address)
        except ConnectionError as e:  # the client went away (reset, broken pipe): nothing to answer
            log.debug("connection from %s dropped: %s", client_address, e)
        except Exception:  # one connection's failure is logged; the worker goes on
            log.exception("connection from %s failed", client_address)
        finally:
            with self.counts_lock:
                self._open.discard(request)
            self.deadlines.forget(request)
            self.shutdown_request(request)
            self.slots.release()

    def _reject(self) -> None:
        while True:
            sock = self._busy.get()
            if sock is None:
                return
            try:
                sock.settimeout(0.2)
                try:
                    sock.recv(65536)  # read what the client sent, so closing does not reset our answer
                except OSError:
                    pass
                sock.sendall(BUSY)
            except OSError:
                pass
            finally:
                self.shutdown_request(sock)

    def _reap(self) -> None:
        while not self._stop.wait(0.1):
            self.deadlines.sweep()

    def server_close(self) -> None:
        super().server_close()
        self._stop.set()
        try:
            self._busy.put_nowait(None)
        except queue.Full:
            pass
        with self.counts_lock:
            still_open = list(self._open)
        for sock in still_open:  # wake workers blocked on keep-alive reads, so the process can exit at once
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.pool.shutdown(wait=False, cancel_futures=True)

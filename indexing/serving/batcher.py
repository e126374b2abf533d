"""Request batching for the search HTTP server: requests that arrive together share one `search_many` call.

    batcher = RequestBatcher(searcher, window_ms=5.0, max_queries=256)
    with batcher.arrival() as arrival:          # a request is being read and decoded
        results = arrival.search(queries, k)    # blocks; returns this request's results or raises its error
    batcher.close()                             # serves what is queued, then stops the thread

One thread calls the searcher by default (encoders need not be thread-safe); `threads=N` runs N search threads,
so N batches are searched at once (the searcher must be thread-safe: `ShardedSearcher` is). One thread at a time
collects the next batch while the others search. The collector takes every queued request, up to `max_queries`
queries (a larger single request is served alone), and waits up to `window_ms` for more, but only while other
requests are still being read or decoded (`arrival()`), or, within `window_ms` of its own last call's answers,
until as many requests have arrived since as that call answered: closed-loop clients (each sends its next query
when it gets its answer) then meet again in one batch instead of splitting into smaller alternating groups. A
lone client never waits: its next request is the one arrival expected. With N threads, clients settle into up to
N groups, one per thread, whose searches overlap each other's network and parsing time.
Requests are grouped by k, one `search_many(all their queries, k)` per group, and each request gets its own slice.
Searching at the largest k and cutting would not be safe: FAISS may keep a different one of several equal-score
hits at a different k. When a grouped call raises, each of its requests is searched alone, so a bad request gets
its own error and its neighbours their results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager

log = logging.getLogger(__name__)


class BatcherClosed(RuntimeError):
    """The server is shutting down; the request was not searched."""


class _Request:
    def __init__(self, queries: list, k: int):
        self.queries, self.k = queries, k
        self.results: list | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def finish(self, results=None, error: BaseException | None = None) -> None:
        self.results, self.error = results, error
        self.done.set()


class _Arrival:
    def __init__(self, batcher: RequestBatcher):
        self.batcher, self.submitted = batcher, False

    def search(self, queries: list, k: int) -> list:
        """This request's results (one list per query), or its own exception raised."""
        request = _Request(list(queries), k)
        self.batcher._enqueue(request, self)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.results


class _Answered:
    """A search thread's last batch: how many requests it answered, when, and the arrival count then."""

    def __init__(self):
        self.requests, self.at, self.arrivals = 0, 0.0, 0


class RequestBatcher:
    def __init__(self, searcher, window_ms: float = 5.0, max_queries: int = 256, thread_init=None, threads: int = 1):
        """`thread_init`: called first on each search thread (per-thread settings such as FAISS's OpenMP threads)."""
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 64:
            raise ValueError(f"search threads must be an integer in [1, 64], got {threads!r}")
        if not 0 <= window_ms <= 1000:
            raise ValueError(f"batch window must be in [0, 1000] ms, got {window_ms!r}")
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise ValueError(f"max batch queries must be an integer >= 1, got {max_queries!r}")
        self.searcher, self.window, self.max_queries = searcher, window_ms / 1000, max_queries
        self.calls: list[int] = []  # queries per search_many call, the newest 1000 (tests, benchmarks)
        self.totals = {"search_calls": 0, "queries_searched": 0}  # since start (GET /healthz)
        self._cv = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._reading = 0  # requests being read/decoded, not yet queued
        self._arrivals = 0  # requests that ever arrived (closed-loop clients: see _next_batch)
        self._collect = threading.Lock()  # held by the one search thread collecting the next batch
        self._closed = False
        self._thread_init = thread_init
        self._threads = [
            threading.Thread(target=self._run, name="search-batcher" + (f"-{i}" if threads > 1 else ""), daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @contextmanager
    def arrival(self):
        """Mark a request as on its way (being read and decoded); `search` on what it yields queues it."""
        arrival = _Arrival(self)
        with self._cv:
            self._reading += 1
            self._arrivals += 1
            self._cv.notify_all()
        try:
            yield arrival
        finally:
            if not arrival.submitted:
                with self._cv:
                    self._reading -= 1
                    self._cv.notify_all()

    def _enqueue(self, request: _Request, arrival: _Arrival) -> None:
        with self._cv:
            if not arrival.submitted:
                arrival.submitted = True
                self._reading -= 1
            if self._closed:
                raise BatcherClosed("the search server is shutting down")
            self._queue.append(request)
            self._cv.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests, serve the queued ones, and end the threads (waits up to `timeout` s)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        end = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in self._threads if t is not threading.current_thread()):
            log.warning("search batcher still busy after %.0f s; leaving it (daemon threads)", timeout)

    def alive(self) -> bool:
        """Whether any search thread is still running."""
        return any(t.is_alive() for t in self._threads)

    def pending(self) -> int:
        """Requests queued and not yet taken by the batching thread."""
        with self._cv:
            return len(self._queue)

    # ---------------------------------------------------------------- the search threads
    def _next_batch(self, last: _Answered) -> list[_Request] | None:
        """The next batch (None once closed and drained); `last`: this thread's last answers (closed-loop wait)."""
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            deadline = time.monotonic() + self.window
            returning_until = last.at + self.window
            while not self._closed and self._queued() < self.max_queries:
                now = time.monotonic()
                reading = self._reading > 0 and now < deadline
                returning = self._arrivals - last.arrivals < last.requests and now < returning_until
                if not (reading or returning):
                    break
                self._cv.wait((deadline if reading else returning_until) - now)
            batch = [self._queue.popleft()]  # at least one request, even one over max_queries
            total = len(batch[0].queries)
            while self._queue and total + len(self._queue[0].queries) <= self.max_queries:
                total += len(self._queue[0].queries)
                batch.append(self._queue.popleft())
            return batch

    def _queued(self) -> int:
        return sum(len(r.queries) for r in self._queue)

    def _run(self) -> None:
        broken = None
        try:
            if self._thread_init is not None:
                self._thread_init()
        except Exception as e:  # noqa: BLE001 - every request is answered with it (a 500), none hangs
            log.exception("search thread setup failed")
            broken = RuntimeError(f"search thread setup failed: {type(e).__name__}: {e}")
        last = _Answered()
        while True:
            with self._collect:
                batch = self._next_batch(last)
            if batch is None:
                return
            if broken is not None:
                for request in batch:
                    request.finish(error=broken)
                continue
            by_k: dict[int, list[_Request]] = {}
            for request in batch:
                by_k.setdefault(request.k, []).append(request)
            for k, group in by_k.items():
                self._serve(group, k)
            with self._cv:  # these clients may send again at once: this thread's next batch waits a window for them
                last.requests, last.at, last.arrivals = len(batch), time.monotonic(), self._arrivals

    def _call(self, queries: list, k) -> list:
        with self._cv:
            self.calls.append(len(queries))
            del self.calls[:-1000]
            self.totals["search_calls"] += 1
            self.totals["queries_searched"] += len(queries)
        results = self.searcher.search_many(queries, k)
        if len(results) != len(queries):
            raise RuntimeError(f"searcher returned {len(results)} result lists for {len(queries)} queries")
        return results

    def _serve(self, group: list[_Request], k) -> None:
        if len(group) > 1:
            try:
                results = self._call([q for r in group for q in r.queries], k)
            except Exception as e:  # noqa: BLE001 - retried one by one below, so each request gets its own error
                log.info("batched search of %d requests failed (%s); searching them one by one", len(group), e)
            else:
                start = 0
                for request in group:
                    request.finish(results[start : start + len(request.queries)])
                    start += len(request.queries)
                return
        for request in group:
            try:
                request.finish(self._call(request.queries, k))
            except Exception as e:  # noqa: BLE001 - handed to the request's handler, which answers 4xx/5xx
                request.finish(error=e)

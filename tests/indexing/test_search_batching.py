"""The HTTP server batches concurrent requests (issue 21, item 7): each client gets exactly the answer the searcher
gives its query alone, concurrent requests share `search_many` calls (one per k), a request that fails inside a
batch gets its own 4xx/5xx while its neighbours succeed, a lone request does not wait for the window, and shutdown
ends the batching thread."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

import httpx
import pytest

from indexing.searcher import ShardedSearcher
from indexing.serving.batcher import BatcherClosed, RequestBatcher
from indexing.serving.http_server import SearchHTTPServer, start_http
from pixsearch_core.retrieval.client import SearchClient
from pixsearch_core.retrieval.codec import request_to_wire
from pixsearch_core.retrieval.types import ImageQuery, TextQuery
from tests.search_fixtures import TOPICS, picture, tiny_index


class Recording:
    """A searcher that records (queries, k) per call; the first call waits for `hold` (so requests pile up), and
    a text query containing "poison" / "crash" makes a call raise ValueError / RuntimeError."""

    def __init__(self, inner, hold: threading.Event | None = None, delay: float = 0.0):
        self.inner, self.hold, self.calls, self.delay = inner, hold, [], delay

    @property
    def index_version(self):
        return self.inner.index_version

    def search_many(self, queries, k):
        self.calls.append((len(queries), k))
        if self.hold is not None and len(self.calls) == 1:
            assert self.hold.wait(20)
        time.sleep(self.delay)  # a slow model: the clients' next requests queue up meanwhile
        texts = [q.text for q in queries if isinstance(q, TextQuery)]
        if any("poison" in t for t in texts):
            raise ValueError("poisoned query")
        if any("crash" in t for t in texts):
            raise RuntimeError("searcher crashed")
        return self.inner.search_many(queries, k)


@pytest.fixture
def inner(tmp_path):
    return ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"))


def _query(i: int):
    return TextQuery(f"{TOPICS[i % len(TOPICS)]} item{i}") if i % 3 else ImageQuery(picture(i % 12))


def _post(url: str, query, k: int) -> httpx.Response:
    return httpx.post(f"{url}/v1/search", json=request_to_wire([query], k), timeout=30)


def _piled_up(server, requests: int, send):
    """Run `send(i)` for each request in threads while the first search call is held until the rest are queued."""
    with cf.ThreadPoolExecutor(requests) as pool:
        futures = [pool.submit(send, 0)]
        deadline = time.monotonic() + 20
        while len(server.searcher.calls) < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        futures += [pool.submit(send, i) for i in range(1, requests)]
        while server.batcher.pending() < requests - 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert server.batcher.pending() == requests - 1, "the requests did not queue behind the held call"
        server.searcher.hold.set()
        return [f.result(timeout=30) for f in futures]


def _closed_loop(url: str, clients: int, queries: int, k: int) -> dict:
    """`clients` threads, each on its own connection sending its share of `_query(0..queries-1)` one at a time
    (the next when answered): {query number: its hits}."""

    def client_loop(c: int):
        with SearchClient.connect(url, timeout=30, retries=0) as client:
            return [(i, client.search(_query(i), k)) for i in range(c, queries, clients)]

    with cf.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, c) for c in range(clients)]
        return dict(r for f in futures for r in f.result(timeout=60))


def _serve(searcher, **kw):
    server, url = start_http(searcher, **kw)
    return server, url


def test_concurrent_clients_get_their_own_results_and_share_calls(inner):
    searcher = Recording(inner, threading.Event())
    expected = {i: inner.search(_query(i), 4) for i in range(24)}  # each query searched alone
    server, url = _serve(searcher)
    try:

        def send(i):
            with SearchClient.connect(url, timeout=30, retries=0) as client:
                return i, client.search(_query(i), 4)

        got = dict(_piled_up(server, 24, send))
    finally:
        server.shutdown()
        server.server_close()
    assert got == expected
    assert searcher.calls[0] == (1, 4) and searcher.calls[1] == (23, 4)  # the 23 queued requests: one call
    assert sum(n for n, _ in searcher.calls) == 24


def test_free_running_clients_are_batched_and_answered_exactly(inner):
    searcher = Recording(inner)
    expected = {i: inner.search(_query(i), 3) for i in range(96)}
    server, url = _serve(searcher)
    try:
        got = _closed_loop(url, 8, 96, 3)
    finally:
        server.shutdown()
        server.server_close()
    assert got == expected
    assert sum(n for n, _ in searcher.calls) == 96 and max(n for n, _ in searcher.calls) > 1


def test_closed_loop_clients_meet_in_one_batch(inner):
    """8 clients that each send their next query when answered: after a call, the batcher waits (within the
    window) for as many arrivals as it answered, so the clients share calls of 8 instead of alternating halves."""
    searcher = Recording(inner, delay=0.03)
    expected = {i: inner.search(_query(i), 3) for i in range(64)}
    server, url = _serve(searcher, batch_window_ms=1000)
    try:
        got = _closed_loop(url, 8, 64, 3)
    finally:
        server.shutdown()
        server.server_close()
    sizes = [n for n, _ in searcher.calls]
    assert got == expected and sum(sizes) == 64
    assert sizes.count(8) >= 4 and len(sizes) <= 13, sizes  # 64 queries in about 8 calls of 8 (not 16 of 1 and 7)


def test_mixed_k_are_grouped_per_k_with_the_right_lengths(inner):
    searcher = Recording(inner, threading.Event())
    ks = [2, 1, 5, 2, 3, 5, 1, 4, 2, 5, 3, 1]
    expected = {i: inner.search(_query(i), k) for i, k in enumerate(ks)}
    server, url = _serve(searcher)
    try:
        got = dict(_piled_up(server, len(ks), lambda i: (i, _post(url, _query(i), ks[i]).json()["results"][0])))
    finally:
        server.shutdown()
        server.server_close()
    for i, k in enumerate(ks):
        assert len(got[i]) == k == len(expected[i])
        assert [h["doc_id"] for h in got[i]] == [e.doc_id for e in expected[i]]
        assert [h["score"] for h in got[i]] == pytest.approx([e.score for e in expected[i]])
    later = sorted(searcher.calls[1:], key=lambda c: c[1])  # after the held first call: one call per k
    assert later == [(ks[1:].count(k), k) for k in sorted(set(ks[1:]))]


def test_a_failing_request_in_a_batch_gets_its_own_error_and_the_others_succeed(inner):
    searcher = Recording(inner, threading.Event())
    queries = {i: _query(i) for i in range(10)}
    queries[4], queries[7] = TextQuery("poison tea"), TextQuery("crash tea")
    expected = {i: inner.search(q, 3) for i, q in queries.items() if i not in (4, 7)}
    server, url = _serve(searcher)
    try:
        got = dict(_piled_up(server, 10, lambda i: (i, _post(url, queries[i], 3))))
        health = httpx.get(f"{url}/healthz", timeout=5).json()
    finally:
        server.shutdown()
        server.server_close()
    assert got[4].status_code == 400 and got[4].json()["error"] == {"type": "bad_request", "message": "poisoned query"}
    assert got[7].status_code == 500 and "searcher crashed" in got[7].json()["error"]["message"]
    for i, want in expected.items():
        assert got[i].status_code == 200
        assert [h["doc_id"] for h in got[i].json()["results"][0]] == [e.doc_id for e in want]
    assert searcher.calls[1] == (9, 3)  # the batch was tried once, then each request alone
    assert sorted(searcher.calls[2:]) == [(1, 3)] * 9 and health["errors"] == 2


class Overlapping(Recording):
    """A thread-safe Recording that counts how many search calls run at once, and on which threads."""

    thread_safe = True

    def __init__(self, inner, delay: float):
        super().__init__(inner, delay=delay)
        self.lock, self.running, self.most, self.threads = threading.Lock(), 0, 0, set()

    def search_many(self, queries, k):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return super().search_many(queries, k)
        finally:
            with self.lock:
                self.running -= 1


def test_search_threads_search_batches_at_once_with_exact_answers(inner):
    """`search_threads=2`: 8 closed-loop clients against a slow searcher are searched two batches at a time (fails
    with one thread: never more than one call at once), each client gets its query's own answer, and each thread
    ran the init first. A searcher not marked thread-safe is refused by name."""
    inits = []
    searcher = Overlapping(inner, delay=0.03)
    expected = {i: inner.search(_query(i), 3) for i in range(48)}
    server, url = _serve(searcher, search_threads=2, search_thread_init=lambda: inits.append(1))
    try:
        got = _closed_loop(url, clients=8, queries=48, k=3)
    finally:
        server.shutdown()
        server.server_close()
    assert got == expected
    assert searcher.most == 2 and searcher.threads == {"search-batcher-0", "search-batcher-1"} and len(inits) == 2
    assert sum(n for n, _ in searcher.calls) == 48
    with pytest.raises(ValueError, match="Recording is not marked thread_safe"):
        SearchHTTPServer(("127.0.0.1", 0), Recording(inner), search_threads=2)
    for bad in (0, 65, 1.5, True):
        with pytest.raises(ValueError, match="search threads must be an integer in"):
            RequestBatcher(inner, threads=bad)


def test_a_lone_request_does_not_wait_for_the_window(inner):
    server, url = _serve(inner, batch_window_ms=1000)
    try:
        with SearchClient.connect(url, timeout=30, retries=0) as client:
            client.search(TextQuery("tea"), 2)
            t0 = time.perf_counter()
            for i in range(5):
                assert client.search(_query(i), 2) == inner.search(_query(i), 2)
            elapsed = time.perf_counter() - t0
    finally:
        server.shutdown()
        server.server_close()
    assert elapsed < 2.5, f"5 lone requests took {elapsed:.2f} s with a 1 s window"


def test_bad_settings_are_named_and_shutdown_ends_the_thread(inner):
    with pytest.raises(ValueError, match=r"batch window must be in \[0, 1000\] ms, got -1"):
        SearchHTTPServer(("127.0.0.1", 0), inner, batch_window_ms=-1)
    with pytest.raises(ValueError, match="max batch queries must be an integer >= 1, got 0"):
        RequestBatcher(inner, max_queries=0)
    server, url = _serve(inner)
    assert _post(url, TextQuery("tea"), 2).status_code == 200
    server.shutdown()
    server.server_close()
    deadline = time.monotonic() + 5
    while server.batcher.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.batcher.alive()
    with pytest.raises(BatcherClosed), server.batcher.arrival() as arrival:
        arrival.search([TextQuery("tea")], 2)


def test_serve_help_names_the_batch_settings(capsys, caplog):
    from jobs.cli import main

    with pytest.raises(SystemExit):
        main(["search", "serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--batch-window-ms" in text and "--max-batch-queries" in text and "a lone request never waits" in text
    assert "--faiss-threads" in text
    assert main(["search", "serve", "--index", "nowhere", "--faiss-threads", "-1"]) == 2
    assert "FAISS threads must be an integer >= 0 (0 = the default), got -1" in caplog.text  # before any load
    assert "--encoder-threads" in text
    assert main(["search", "serve", "--index", "nowhere", "--encoder-threads", "-2"]) == 2
    assert "encoder threads must be an integer >= 0 (0 = the default), got -2" in caplog.text


def test_every_search_runs_on_the_batching_thread_after_its_init(inner):
    threads = []

    class Where(Recording):
        def search_many(self, queries, k):
            threads.append(threading.current_thread().name)
            return super().search_many(queries, k)

    server, url = _serve(Where(inner), search_thread_init=lambda: threads.append("init"))
    try:
        with cf.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: _post(url, _query(i), 2).raise_for_status(), range(12)))
    finally:
        server.shutdown()
        server.server_close()
    assert threads[0] == "init" and set(threads[1:]) == {"search-batcher"} and len(threads) > 1


def test_a_failed_thread_setup_answers_500_instead_of_hanging(inner):
    def init():
        raise OSError("no such setting")

    server, url = _serve(inner, search_thread_init=init)
    try:
        r = _post(url, TextQuery("tea"), 2)
    finally:
        server.shutdown()
        server.server_close()
    assert (
        r.status_code == 500 and "search thread setup failed: OSError: no such setting" in r.json()["error"]["message"]
    )


def test_health_counts_search_calls_and_queries(inner):
    server, url = _serve(inner)
    try:
        with SearchClient.connect(url, timeout=30, retries=0) as client:
            client.search_many([TextQuery("tea"), TextQuery("cat")], 2)
            client.search(TextQuery("owl"), 3)
        health = httpx.get(f"{url}/healthz", timeout=5).json()
    finally:
        server.shutdown()
        server.server_close()
    assert health["search_calls"] == 2 and health["queries_searched"] == 3

"""The HTTP API on 127.0.0.1: a bounded burst of mixed good and bad requests from several clients; the client's
typed errors, timeouts and retries."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json
import time

import httpx
import numpy as np
import pytest

from indexing.searcher import ShardedSearcher
from indexing.serving.http_server import start_http
from pixsearch_core.retrieval.client import BadSearchRequest, SearchClient, SearchTimeout
from pixsearch_core.retrieval.codec import request_to_wire
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery
from tests.search_fixtures import TOPICS, picture, tiny_index


@pytest.fixture
def served(tmp_path):
    searcher = ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"))
    server, url = start_http(searcher, max_body_bytes=200_000)
    yield searcher, url
    server.shutdown()
    server.server_close()


def _good(i: int):
    mask = np.zeros((32, 32), bool)
    mask[i % 20 : i % 20 + 10, 3:20] = True
    return [
        [TextQuery(TOPICS[i % len(TOPICS)])],
        [ImageQuery(picture(i % 12))],
        [RegionQuery(picture(i % 12), mask), TextQuery(f"item{i}")],
    ][i % 3]


def _bad(i: int, url: str):
    img = request_to_wire([ImageQuery(picture(1))], 3)["queries"][0]["image"]
    bodies = [
        {"k": 3, "queries": [{"type": "text", "text": ""}]},
        {"k": 3, "queries": [{"type": "image", "image": base64.b64encode(b"not an image").decode()}]},
        {"k": 3, "queries": [{"type": "region", "image": img, "mask": {"rle": {"size": [5, 5], "counts": [0, 25]}}}]},
        {"k": 0, "queries": [{"type": "text", "text": "tea"}]},
        {"k": 3, "queries": [{"type": "text", "text": "x" * 300_000}]},
    ]  # over max_body_bytes
    body = bodies[i % len(bodies)]
    return httpx.post(
        f"{url}/v1/search", content=json.dumps(body), timeout=20, headers={"Content-Type": "application/json"}
    )


def test_burst_of_good_and_bad_requests_from_several_clients(served):
    searcher, url = served
    expected = {i: searcher.search_many(_good(i), 4) for i in range(0, 100, 2)}  # in-process reference answers

    def worker(w: int):
        out = []
        with SearchClient.connect(url, timeout=20, retries=0) as client:
            for j in range(25):
                i = w * 25 + j
                if i % 2 == 0:
                    out.append(("good", i, client.search_many(_good(i), k=4)))
                else:
                    r = _bad(i // 2, url)
                    out.append(("bad", i, (r.status_code, r.json())))
        return out

    with cf.ThreadPoolExecutor(4) as pool:
        results = [r for f in [pool.submit(worker, w) for w in range(4)] for r in f.result(timeout=120)]
    assert len(results) == 100
    statuses = set()
    for kind, i, got in results:
        if kind == "good":
            assert got == expected[i]
        else:
            status, body = got
            assert 400 <= status < 500 and body["error"]["type"] == "bad_request" and body["error"]["message"]
            statuses.add(status)
    assert statuses == {400, 413}
    health = httpx.get(f"{url}/healthz", timeout=5).json()
    assert health["status"] == "ok" and health["index_version"] == "tiny/v1" and health["errors"] == 50


def test_client_typed_errors_timeout_and_retries(served):
    searcher, url = served
    client = SearchClient.connect(url, timeout=10)
    assert client.index_version == "tiny/v1"
    with pytest.raises(BadSearchRequest, match=r"HTTP 400: k must be an integer in \[1, 1000\]"):
        client.search(TextQuery("tea"), k=5000)

    class Slow:
        index_version = "slow"
        calls = 0

        def search_many(self, queries, k):
            Slow.calls += 1
            time.sleep(0.5)
            return [[] for _ in queries]

    slow = SearchClient.connect(Slow(), timeout=0.1, retries=2, backoff=0.01)
    t0 = time.perf_counter()
    with pytest.raises(SearchTimeout):
        slow.search(TextQuery("tea"))
    assert Slow.calls == 3 and time.perf_counter() - t0 < 2  # 1 try + 2 retries, each bounded by the deadline
    slow.close()
    with pytest.raises(BadSearchRequest, match="k must be"):
        SearchClient.connect(searcher).search(TextQuery("tea"), k=0)


def test_cli_query_in_process_and_over_http(served, tmp_path, capsys):
    from jobs.cli import main

    searcher, url = served
    picture(6).save(tmp_path / "p.png")
    expected = searcher.search(RegionQuery(picture(6), _box_mask(2, 3, 30, 28)), k=2)
    for where in (["--url", url], ["--index", searcher.version_uri, "--cache-dir", str(tmp_path / "c")]):
        capsys.readouterr()
        assert (
            main(["search", "query", *where, "--image", str(tmp_path / "p.png"), "--box", "2,3,30,28", "-k", "2"]) == 0
        )
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert [d["doc_id"] for d in lines] == [e.doc_id for e in expected] and len(lines) == 2
    assert main(["search", "query", "--url", url, "--text", "tea", "-k", "0"]) == 2  # a clear error, exit 2


def _box_mask(x0, y0, x1, y1):
    mask = np.zeros((32, 32), bool)
    mask[y0:y1, x0:x1] = True
    return mask

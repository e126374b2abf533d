"""Burst test of `pixsearch search serve` as a real subprocess on 127.0.0.1 (issue 19's done-when): 8 client threads
send a mix of good, malformed, oversized and slow-loris requests at once. Every good request must get the answer
the in-process searcher gives, every bad one a 4xx or 503, and the server's RSS must come back within 20% of
where it started. The good queries' p99 latency during the burst is printed (README: "Search service")."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from indexing.searcher import ShardedSearcher
from pixsearch_core.retrieval.codec import image_to_b64, request_to_wire
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery
from tests.search_fixtures import TOPICS, picture, tiny_index

THREADS, PER_THREAD = 8, 30
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _good(i: int) -> list:
    mask = np.zeros((32, 32), bool)
    mask[i % 20 : i % 20 + 10, 3:20] = True
    return [
        [TextQuery(TOPICS[i % len(TOPICS)])],
        [ImageQuery(picture(i % 12))],
        [RegionQuery(picture(i % 12), mask), TextQuery(f"item{i}")],
    ][i % 3]


def _png(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (9, 99, 199)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _bad_bodies() -> list[tuple[str, bytes]]:
    img = image_to_b64(picture(2))
    q = lambda *qs: json.dumps({"k": 3, "queries": list(qs)}).encode()
    return [
        ("/v1/search", b"{not json"),
        ("/v1/search", b"[" * 50_000 + b"]" * 50_000),
        ("/v1/search", q({"type": "text", "text": " "})),
        (
            "/v1/search",
            q(
                {
                    "type": "region",
                    "image": _png(2, 2),
                    "mask": {"rle": {"size": [30000, 30000], "counts": [0, 900_000_000]}},
                }
            ),
        ),
        ("/v1/search", q({"type": "image", "image": _png(6000, 1)})),
        ("/v1/search", q({"type": "image", "image": _png(3500, 3500)})),
        ("/v1/search", q({"type": "region", "image": img, "mask": {"png": _png(4000, 4000)}})),
        ("/v1/other", q({"type": "text", "text": "tea"})),
    ]


def _oversized(addr) -> int:
    """A body that claims 100 MB: answered 413 without the server reading it."""
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b'POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{"k": 1')
        return int(s.recv(4096).split()[1])


def _slow_loris(addr) -> int:
    """Headers trickled a byte per 0.3 s: the server answers 408 at its request deadline."""
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(60):
                s.sendall(b"X")
                time.sleep(0.3)
        except OSError:
            pass
        return int(s.recv(4096).split()[1])


def _client_thread(w: int, url: str, addr, expected: dict, bad: list) -> dict:
    out = {"latencies": [], "good": 0, "bad": []}
    with httpx.Client(base_url=url, timeout=30) as client:
        for j in range(PER_THREAD):
            i = w * PER_THREAD + j
            if j % 2 == 0:  # good: the same answers as the in-process searcher
                t0 = time.perf_counter()
                r = client.post("/v1/search", content=json.dumps(request_to_wire(_good(i), 4)))
                out["latencies"].append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                assert r.json()["results"] == expected[i], i
                out["good"] += 1
            elif j % 10 == 1:
                out["bad"].append(_slow_loris(addr))
            elif j % 10 == 3:
                out["bad"].append(_oversized(addr))
            else:  # malformed or over a limit, on the keep-alive connection the good requests also use
                path, body = bad[(i // 2) % len(bad)]
                out["bad"].append(client.post(path, content=body).status_code)
    return out


@pytest.fixture
def served(tmp_path):
    index = tiny_index(tmp_path)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "search",
            "serve",
            "--index",
            index,
            "--port",
            str(port),
            "--cache-dir",
            str(tmp_path / "serve-cache"),
            "--read-timeout",
            "2",
            "--request-timeout",
            "2",
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("search serve did not come up")
    yield index, url, ("127.0.0.1", port), psutil.Process(proc.pid)
    proc.terminate()
    proc.wait(timeout=20)


def test_burst_of_good_bad_oversized_and_slow_clients(served, tmp_path):
    index, url, addr, server = served
    local = ShardedSearcher(index, cache_dir=str(tmp_path / "c"))
    expected = {
        i: [[e.to_dict() for e in hits] for hits in local.search_many(_good(i), 4)]
        for i in range(THREADS * PER_THREAD)
        if i % 2 == 0
    }
    for i in range(0, 24, 2):  # warm up (encoders, caches) before the baseline RSS
        r = httpx.post(f"{url}/v1/search", content=json.dumps(request_to_wire(_good(i), 4)), timeout=120)
        assert r.status_code == 200
    bad_bodies = _bad_bodies()  # built before the burst: the clients' own CPU should not skew the latencies
    rss0 = server.memory_info().rss
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(THREADS) as pool:
        outs = list(pool.map(lambda w: _client_thread(w, url, addr, expected, bad_bodies), range(THREADS)))
    wall = time.perf_counter() - t0
    good = sum(o["good"] for o in outs)
    bad = [s for o in outs for s in o["bad"]]
    assert good == THREADS * PER_THREAD // 2 and len(bad) == THREADS * PER_THREAD // 2
    assert all(400 <= s < 500 or s == 503 for s in bad), sorted(set(bad))
    assert {400, 404, 408, 413} <= set(bad)
    for _ in range(50):  # RSS back within 20% of its start
        rss1 = server.memory_info().rss
        if rss1 <= 1.2 * rss0:
            break
        time.sleep(0.2)
    assert rss1 <= 1.2 * rss0, (rss0, rss1)
    lat = np.array([x for o in outs for x in o["latencies"]])
    health = httpx.get(f"{url}/healthz", timeout=5).json()
    print(
        f"\nburst: {len(lat)} good + {len(bad)} bad requests from {THREADS} threads in {wall:.1f} s; good p50 "
        f"{np.percentile(lat, 50) * 1e3:.1f} ms, p99 {np.percentile(lat, 99) * 1e3:.1f} ms, max "
        f"{lat.max() * 1e3:.1f} ms; RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} MiB; statuses "
        f"{ {s: bad.count(s) for s in sorted(set(bad))} }; health {health}"
    )

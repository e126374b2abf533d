"""The search service under hostile or unlucky clients (issue 19, items 4-6), each attack reproduced on 127.0.0.1:
half-sent bodies and slow loris against a bounded pool (503 when full, 408 past the deadline), memory
amplification (RLE / PNG sizes checked before allocating; pixel and aspect caps), malformed requests (4xx, and
keep-alive connections stay in step)."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
import tracemalloc

import httpx
import numpy as np
import pytest
from PIL import Image

from indexing.searcher import ShardedSearcher
from indexing.serving.http_server import start_http
from pixsearch_core.retrieval.client import BadSearchRequest
from pixsearch_core.retrieval.codec import RequestLimits, image_to_b64, request_to_wire, wire_to_request
from pixsearch_core.retrieval.types import TextQuery
from tests.search_fixtures import picture, tiny_index


@pytest.fixture
def searcher(tmp_path):
    return ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"))


def _serve(searcher, **kw):
    server, url = start_http(searcher, **kw)
    host, port = server.server_address[:2]
    return server, url, (host, port)


def _raw(addr, data: bytes, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(addr, timeout=timeout)
    sock.sendall(data)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTP/1.1 response read from a raw socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{extra}\r\n"
    ).encode() + body


GOOD = json.dumps(request_to_wire([TextQuery("violin strings")], 2)).encode()


def test_half_sent_bodies_are_bounded_by_the_pool_then_timed_out(searcher):
    server, url, addr = _serve(searcher, workers=3, read_timeout=5, request_timeout=1.0)
    threads_before = threading.active_count()
    stuck = [_raw(addr, _post("/v1/search", b"x" * 10)[:-5] + b"", timeout=10) for _ in range(3)]
    time.sleep(0.2)
    extra = [_raw(addr, _post("/v1/search", GOOD)) for _ in range(40)]  # all workers are held: 503 at once
    answers = [_read_response(s) for s in extra]
    assert {a[0] for a in answers} == {503} and all(a[1]["retry-after"] == "1" for a in answers)
    assert threading.active_count() <= threads_before + 3  # no thread per connection
    t0 = time.perf_counter()
    for s in stuck:  # the half-sent bodies are answered 408 once request_timeout has passed, and closed
        status, _, body = _read_response(s)
        assert status == 408 and json.loads(body)["error"]["type"] == "timeout"
        assert s.recv(10) == b""
    assert time.perf_counter() - t0 < 6  # generous: the test machine may be busy
    assert httpx.post(f"{url}/v1/search", content=GOOD, timeout=5).status_code == 200  # workers are free again
    assert httpx.get(f"{url}/healthz", timeout=5).json()["rejected"] == 40
    server.shutdown()
    server.server_close()


def test_slow_loris_gets_408_and_an_idle_connection_is_closed(searcher):
    server, _, addr = _serve(searcher, workers=4, read_timeout=0.5, request_timeout=1.5)
    loris = _raw(addr, b"POST /v1/search HTTP/1.1\r\nHost: x\r\n")
    t0 = time.perf_counter()
    with pytest.raises(OSError):  # a header byte every 0.2 s never trips the read timeout, only the deadline
        for _ in range(40):
            loris.sendall(b"X")
            time.sleep(0.2)
    status, _, _ = _read_response(loris)
    assert status == 408 and 1.4 < time.perf_counter() - t0 < 6
    idle = _raw(addr, b"")
    idle.settimeout(3)
    t0 = time.perf_counter()
    assert idle.recv(10) == b"" and time.perf_counter() - t0 < 3  # closed after read_timeout (0.5 s)
    server.shutdown()
    server.server_close()


def test_malformed_requests_are_4xx_and_keep_alive_stays_in_step(searcher):
    server, url, addr = _serve(searcher)
    sock = _raw(addr, _post("/v1/nope", b'{"big": "' + b"y" * 5000 + b'"}'))
    status, _, _ = _read_response(sock)
    assert status == 404
    sock.sendall(_post("/v1/search", GOOD))  # the same connection: the 404's body was drained, not parsed
    status, _, body = _read_response(sock)
    assert status == 200 and json.loads(body)["results"][0]
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = [
        (_post("/v1/search", deep), 400, "nested too deeply"),
        (_post("/v1/search", b"\xff\xfe not utf-8"), 400, "not JSON"),
        (b"PUT /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 405, "not allowed"),
        (
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            411,
            "Content-Length",
        ),
        (b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n", 411, "Content-Length"),
        (b"POST /v1/search HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345", 411, "one Content-Length"),
    ]
    for raw, want, msg in cases:
        status, _, body = _read_response(_raw(addr, raw))
        assert status == want and msg in json.loads(body)["error"]["message"], (raw[:40], status, body)
    version = _raw(addr, b"GET /healthz HTTP/2.0\r\n\r\n").recv(4096)  # the stdlib would say 505
    assert b"Error code: 400" in version and b"unsupported HTTP version" in version
    assert httpx.get(f"{url}/healthz", timeout=5).json()["status"] == "ok"
    server.shutdown()
    server.server_close()


def _png(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_sizes_are_checked_before_anything_large_is_allocated():
    img = image_to_b64(picture(1))
    rle_bomb = {
        "k": 1,
        "queries": [
            {
                "type": "region",
                "image": _png(2, 2),
                "mask": {"rle": {"size": [30000, 30000], "counts": [0, 900_000_000]}},
            }
        ],
    }
    assert len(json.dumps(rle_bomb)) < 400
    ok = {
        "k": 1,
        "queries": [{"type": "region", "image": _png(2, 2), "mask": {"rle": {"size": [2, 2], "counts": [1, 3]}}}],
    }
    assert wire_to_request(ok)[0][0].mask.sum() == 3  # imports and caches warmed up outside the measurement
    tracemalloc.start()
    with pytest.raises(BadSearchRequest, match=r"RLE size \[30000, 30000\] does not match the image"):
        wire_to_request(rle_bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 << 20  # the 858 MB mask is never allocated
    bad = [
        ({"type": "image", "image": _png(6000, 1)}, "aspect ratio over 20"),
        ({"type": "image", "image": _png(3500, 3500)}, "exceeds 12000000 pixels per image"),
        ({"type": "region", "image": img, "mask": {"png": _png(3000, 3000)}}, "does not match image"),
        (
            {"type": "region", "image": img, "mask": {"rle": {"size": [32, 32], "counts": [1] * 2000}}},
            "2000 counts for 1024 pixels",
        ),
    ]
    for query, msg in bad:
        with pytest.raises(BadSearchRequest, match=msg):
            wire_to_request({"k": 1, "queries": [query]})
    small = RequestLimits(max_request_pixels=3 * 32 * 32 - 1)  # a per-request budget across queries
    with pytest.raises(BadSearchRequest, match=r"queries\[2\].image: the request's images exceed 3071"):
        wire_to_request({"k": 1, "queries": [{"type": "image", "image": img}] * 3}, limits=small)
    eps = base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n").decode()
    with pytest.raises(BadSearchRequest, match="not a decodable image"):  # no format that runs a tool
        wire_to_request({"k": 1, "queries": [{"type": "image", "image": eps}]})


def test_embedder_never_resizes_a_thin_strip_to_gigabytes(monkeypatch):
    from indexing.embedders import to_rgb_array

    sizes = []
    real = Image.Image.resize
    monkeypatch.setattr(
        Image.Image, "resize", lambda self, size, *a, **k: sizes.append(size) or real(self, size, *a, **k)
    )
    strip = Image.fromarray(np.full((1, 6000, 3), 90, np.uint8))
    out = to_rgb_array(strip, 224)
    assert out.shape == (3, 224, 224) and max(max(s) for s in sizes) <= 4 * 256  # was 1,536,000 x 256
    normal = picture(3, size=64)
    sizes.clear()
    to_rgb_array(normal, 224)
    assert sizes == [(256, 256)]  # ordinary images take the unchanged DINOv2 transform

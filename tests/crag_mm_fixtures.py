"""CRAG-MM gold in the published layout (the Hugging Face parquet of crag-mm-2025/crag-mm-*-turn-public v0.1.2),
written with pyarrow, and a local HTTP server for `image_url` pictures."""

from __future__ import annotations

import contextlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.search_fixtures import picture

PORTS = range(18600, 18700)  # this test suite's port range

#: the published schema: `image` is a Hugging Face Image feature (a {bytes, path} struct); turns / answers are
#: dictionaries of columns; the categorical labels are integer codes
SCHEMA = pa.schema(
    [
        ("session_id", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("image_url", pa.string()),
        (
            "turns",
            pa.struct(
                [
                    ("interaction_id", pa.list_(pa.string())),
                    ("domain", pa.list_(pa.int64())),
                    ("query_category", pa.list_(pa.int64())),
                    ("dynamism", pa.list_(pa.int64())),
                    ("query", pa.list_(pa.string())),
                    ("image_quality", pa.list_(pa.int64())),
                ]
            ),
        ),
        ("answers", pa.struct([("interaction_id", pa.list_(pa.string())), ("ans_full", pa.list_(pa.string()))])),
    ]
)


def jpeg(i: int, size: int = 48) -> bytes:
    buf = io.BytesIO()
    picture(i, size).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def session(sid: str, queries: list[str], image: bytes | None = None, image_url: str | None = None) -> dict:
    """One session row; egocentric sessions carry `image` bytes and no image_url (as published)."""
    n = len(queries)
    ids = [f"{sid}-t{k}" for k in range(n)]
    return {
        "session_id": sid,
        "image": {"bytes": image, "path": "image.jpg"} if image is not None else None,
        "image_url": image_url,
        "turns": {
            "interaction_id": ids,
            "domain": [3] * n,
            "query_category": [0] * n,
            "dynamism": [0] * n,
            "query": queries,
            "image_quality": [0] * n,
        },
        "answers": {"interaction_id": ids, "ans_full": [f"answer to {q}" for q in queries]},
    }


def write_shards(root: Path, rows: list[dict], shards: int = 2, split: str = "validation") -> Path:
    """`root/data/<split>-0000i-of-0000n.parquet`, rows dealt round-robin; returns root/data."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        part = rows[i::shards]
        pq.write_table(pa.Table.from_pylist(part, schema=SCHEMA), data / f"{split}-{i:05d}-of-{shards:05d}.parquet")
    return data


@contextlib.contextmanager
def picture_server(routes: dict[str, list[tuple[int, bytes]]]):
    """Serves `routes[path]`: a list of (status, body) answered in turn (the last one repeats). Yields
    (base_url, hits) where hits[path] counts requests."""
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            n = hits.get(self.path, 0)
            hits[self.path] = n + 1
            answers = routes.get(self.path, [(404, b"not found")])
            status, body = answers[min(n, len(answers) - 1)]
            self.send_response(status)
            self.send_header("Content-Type", "image/jpeg" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = None
    for port in PORTS:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
            break
        except OSError:
            continue
    assert server is not None, "no free port in 18600-18699"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()

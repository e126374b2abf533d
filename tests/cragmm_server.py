"""A local HTTP server speaking the CRAG-MM search API's format (pixsearch_core/retrieval/cragmm.py docstring), for
tests: it answers with recorded results in the formats cragmm-search-pipeline 0.5.1 returns, and keeps every
request it got (decoded: text, or the PNG as a PIL image) so a test can check what was sent."""

from __future__ import annotations

import base64
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

# recorded results in the formats of cragmm-search-pipeline 0.5.1's UnifiedSearchPipeline.postprocess
IMAGE_RESULTS = [
    {
        "index": 812,
        "score": 0.91,
        "url": "https://upload.wikimedia.org/a.jpg",
        "entities": [
            {"entity_name": "Golden Gate Bridge", "entity_attributes": {"opened": "1937", "length": "2,737 m"}}
        ],
    },
    {"index": 77, "score": 0.62, "url": "https://upload.wikimedia.org/b.jpg", "entities": []},
]
WEB_RESULTS = [
    {
        "index": "https://en.wikipedia.org/wiki/Tea_chunk_3",
        "score": 0.88,
        "page_name": "Tea - Wikipedia",
        "page_snippet": "Tea is an aromatic beverage.",
        "page_url": "https://en.wikipedia.org/wiki/Tea",
    }
]


class CragMMServer(ThreadingHTTPServer):
    def __init__(self, web: bool = True, fail_first: int = 0):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.web, self.fail_first = web, fail_first
        self.requests: list[dict] = []  # {"k", "text"} or {"k", "image": PIL.Image}
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/search"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 (http.server's name)
        server: CragMMServer = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            if server.fail_first > 0:
                server.fail_first -= 1
                return self._send(503, {"error": "warming up"})
            seen = {"k": body["k"]}
            if "text" in body:
                seen["text"] = body["text"]
            else:
                seen["image"] = Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB")
            server.requests.append(seen)
        if "text" in body and not server.web:
            return self._send(400, {"error": "web search is not enabled"})
        results = WEB_RESULTS if "text" in body else IMAGE_RESULTS
        return self._send(200, results[: body["k"]])

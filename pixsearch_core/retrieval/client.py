"""One search client for every backend: in-process searcher, Ray router, or the HTTP service.

    client = SearchClient.connect("http://127.0.0.1:8080", timeout=10, retries=2)   # HTTP service
    client = SearchClient.connect(ShardedSearcher(uri))                              # in-process
    client = SearchClient.connect(RaySearchRouter(uri, groups=2, replicas=2))        # Ray actors
    client.search_many([TextQuery("..."), RegionQuery(img, mask)], k=5)              # -> list[list[Evidence]]

Each call has a deadline (`timeout` seconds) and up to `retries` further attempts after a timeout or an
unavailable/internal server error, waiting `backoff * 2**attempt` seconds (capped at `max_backoff`) in between.
Errors are typed: `BadSearchRequest` (the request is wrong: never retried), `SearchTimeout`, `SearchUnavailable`,
all subclasses of `SearchError` (defined with the query types in retrieval/types.py).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any

from pixsearch_core.retrieval.types import BadSearchRequest, SearchError, SearchTimeout, SearchUnavailable

log = logging.getLogger(__name__)

__all__ = [
    "BadSearchRequest",
    "LocalBackend",
    "HTTPBackend",
    "SearchClient",
    "SearchError",
    "SearchTimeout",
    "SearchUnavailable",
]


class _Backend:
    def call(self, queries: list, k: int, timeout: float) -> list[list]:
        raise NotImplementedError

    def index_version(self, timeout: float) -> str:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalBackend(_Backend):
    """Any object with `search_many(queries, k)` (ShardedSearcher, RaySearchRouter, a replay cache), run in a
    worker thread so the deadline holds; its ValueError/TypeError become BadSearchRequest."""

    def __init__(self, searcher: Any):
        self.searcher = searcher
        self.pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="search")

    def call(self, queries, k, timeout):
        fut = self.pool.submit(self.searcher.search_many, queries, k)
        try:
            return fut.result(timeout=timeout)
        except cf.TimeoutError:
            raise SearchTimeout(f"in-process search of {len(queries)} queries exceeded {timeout}s") from None
        except SearchError:
            raise
        except (ValueError, TypeError) as e:
            raise BadSearchRequest(str(e)) from e

    def index_version(self, timeout):
        return str(getattr(self.searcher, "index_version", "unknown"))

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)


class HTTPBackend(_Backend):
    """The HTTP service (indexing/serving/http_server.py): POST /v1/search, GET /v1/index-version, GET /healthz."""

    def __init__(self, url: str):
        import httpx

        self.url = url.rstrip("/")
        self.http = httpx.Client()

    def _check(self, resp):
        if resp.status_code < 400:
            return resp.json()
        try:
            msg = resp.json()["error"]["message"]
        except Exception:  # not our JSON error body (a proxy, a crash page)
            msg = resp.text[:500]
        if 400 <= resp.status_code < 500:
            raise BadSearchRequest(f"HTTP {resp.status_code}: {msg}")
        raise SearchUnavailable(f"HTTP {resp.status_code}: {msg}")

    def _do(self, method: str, path: str, timeout: float, **kw):
        import httpx

        try:
            return self._check(self.http.request(method, self.url + path, timeout=timeout, **kw))
        except httpx.TimeoutException:
            raise SearchTimeout(f"{method} {self.url}{path}: no answer within {timeout}s") from None
        except httpx.TransportError as e:
            raise SearchUnavailable(f"{method} {self.url}{path}: {type(e).__name__}: {e}") from None

    def call(self, queries, k, timeout):
        from pixsearch_core.retrieval.codec import evidence_from_dict, request_to_wire

        body = self._do("POST", "/v1/search", timeout, json=request_to_wire(queries, k))
        return [[evidence_from_dict(d) for d in hits] for hits in body["results"]]

    def index_version(self, timeout):
        return self._do("GET", "/v1/index-version", timeout)["index_version"]

    def health(self, timeout: float = 5.0) -> dict:
        return self._do("GET", "/healthz", timeout)

    def close(self):
        self.http.close()


class SearchClient:
    """A `Searcher` over a backend, with deadlines, bounded retries with exponential backoff and typed errors."""

    def __init__(
        self, backend: _Backend, timeout: float = 30.0, retries: int = 2, backoff: float = 0.2, max_backoff: float = 5.0
    ):
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(f"need timeout > 0, retries >= 0, backoff >= 0; got {timeout}, {retries}, {backoff}")
        self.backend, self.timeout, self.retries = backend, timeout, retries
        self.backoff, self.max_backoff = backoff, max_backoff

    @classmethod
    def connect(cls, target: Any, **kw) -> SearchClient:
        """`target`: an http(s):// URL, or any object with `search_many` (in-process searcher, Ray router)."""
        if isinstance(target, str):
            if not target.startswith(("http://", "https://")):
                raise ValueError(f"a string target must be an http:// or https:// URL, got {target!r}")
            return cls(HTTPBackend(target), **kw)
        if not hasattr(target, "search_many"):
            raise TypeError(f"target must be a URL or have search_many(queries, k), got {type(target).__name__}")
        return cls(LocalBackend(target), **kw)

    def _with_retries(self, what: str, fn):
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (SearchTimeout, SearchUnavailable) as e:
                if attempt == self.retries:
                    raise
                wait = min(self.max_backoff, self.backoff * 2**attempt)
                log.warning("%s failed (%s); retry %d/%d in %.2fs", what, e, attempt + 1, self.retries, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def search_many(self, queries: list, k: int = 5) -> list[list]:
        if not queries:
            return []
        return self._with_retries("search", lambda: self.backend.call(list(queries), k, self.timeout))

    def search(self, query, k: int = 5) -> list:
        return self.search_many([query], k)[0]

    @property
    def index_version(self) -> str:
        return self._with_retries("index-version", lambda: self.backend.index_version(self.timeout))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""A replay cache: a `Searcher` wrapper that records answers keyed by (query hash, index version, k).

    searcher = ReplaySearcher(backend, "s3://bucket/replay")     # or a local directory
    searcher.search_many(queries, k=5)   # first run: misses go to the backend in one batch, answers are stored
    searcher.search_many(queries, k=5)   # re-run: every answer comes from the cache, zero backend calls

Keys hash the query's content (text; decoded pixels and mask bits for image/region queries,
pixsearch_core/retrieval/codec.py `query_hash`), the backend's `index_version` and k, so a new index version or
another k never replays stale answers. Entries live at `<root>/<index version>/<key[:2]>/<key>.json`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from pixsearch_core.retrieval.codec import evidence_from_dict, query_hash
from pixsearch_core.retrieval.types import Evidence, Query
from pixsearch_core.storage import ObjectStore, StorageConfig, join

log = logging.getLogger(__name__)


class ReplaySearcher:
    def __init__(self, backend, root: str, storage: StorageConfig | None = None, index_version: str | None = None):
        self.backend, self.root = backend, root
        self.store = ObjectStore(storage)
        self.index_version = index_version or str(backend.index_version)
        self.stats = {"hits": 0, "misses": 0, "backend_calls": 0}

    def key(self, query: Query, k: int) -> str:
        return hashlib.sha256(f"{query_hash(query)}|{self.index_version}|{k}".encode()).hexdigest()

    def _uri(self, key: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.index_version)
        return join(self.root, safe, key[:2], f"{key}.json")

    def _load(self, key: str) -> list[Evidence] | None:
        uri = self._uri(key)
        if not self.store.exists(uri):
            return None
        return [evidence_from_dict(d) for d in json.loads(self.store.get_bytes(uri))["evidence"]]

    def search_many(self, queries: list[Query], k: int = 5) -> list[list[Evidence]]:
        keys = [self.key(q, k) for q in queries]
        out = [self._load(key) for key in keys]
        missing = [i for i, hits in enumerate(out) if hits is None]
        self.stats["hits"] += len(queries) - len(missing)
        self.stats["misses"] += len(missing)
        if missing:
            self.stats["backend_calls"] += 1
            fresh = self.backend.search_many([queries[i] for i in missing], k)
            for i, hits in zip(missing, fresh):
                record = {
                    "key": keys[i],
                    "index_version": self.index_version,
                    "k": k,
                    "evidence": [e.to_dict() for e in hits],
                }
                self.store.put_bytes(self._uri(keys[i]), json.dumps(record).encode())
                out[i] = list(hits)
        log.debug("replay: %d hits, %d misses", len(queries) - len(missing), len(missing))
        return out

    def search(self, query: Query, k: int = 5) -> list[Evidence]:
        return self.search_many([query], k)[0]

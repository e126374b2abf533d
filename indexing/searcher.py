"""`ShardedSearcher`: search a published index (every shard, top-k merged) and return `Evidence`.

    searcher = ShardedSearcher("s3://bucket/indices/demo", storage=StorageConfig(...))   # follows CURRENT
    searcher.search(TextQuery("who piloted the space shuttle"), k=5)      # text index -> passages
    searcher.search_many([ImageQuery(pil_image), ...], k=5)               # image index -> linked documents

Shards are fetched once into a local cache (`<cache_dir>/indices/<name>/<version>/`), each checked against the
manifest's sha256 before use. Queries are grouped by modality, encoded in one batch per modality with the encoder
the manifest names, searched on every shard of that modality's index, and merged by score. Extension points for
other query kinds are `_encode` and `_index_for`. A RegionQuery is searched on the image index with the crop of
its mask's box, as its `crop` (a `RegionCrop`: padding, background, component; pixsearch_core/retrieval/crop.py) says.

`k` must be an int in [1, MAX_K]. Shards are memory-mapped where FAISS allows (`mmap=True`: Flat and IVF files are
read with IO_FLAG_MMAP, so a replica costs page cache, not private memory). `encoders` injects ready encoders per
index kind ({"text": enc, "image": enc}; each has `encode(list) -> (n, dim) float32`), e.g. in tests.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexing import faiss_build
from indexing.config import ImageEncoderConfig, TextEncoderConfig
from indexing.manifest import VerifyError, read_manifest, resolve
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.retrieval.types import Evidence, ImageQuery, Query, RegionQuery, TextQuery
from pixsearch_core.storage import ObjectStore, StorageConfig, join, sha256_file

log = logging.getLogger(__name__)

MAX_K = 1000


def check_k(k) -> int:
    """`k` as an int in [1, MAX_K], or a ValueError naming the bad value and the range."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be an integer in [1, {MAX_K}], got {k!r}")
    return int(k)


def read_faiss(path: str, mmap: bool = True):
    """Read a FAISS index, memory-mapped where the index type supports it (Flat, IVF); else into memory."""
    import faiss

    if mmap:
        try:
            return faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as e:  # index types without mmap support
            log.info("%s: no memory-mapped load (%s); reading it into memory", path, str(e).splitlines()[0][:200])
    return faiss.read_index(path)


def no_prefetch_threads(index) -> None:
    """A memory-mapped IVF index reads its lists through OnDiskInvertedLists, which starts up to 32 prefetch
    threads on every search call: a one-query search of a 25k x 384 IVF256 shard (nprobe 16) took 1.8 ms with
    them, 0.43 ms without. The scanning thread faults the pages in anyway, so turn the prefetching off."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    if hasattr(lists, "prefetch_nthread"):
        lists.prefetch_nthread = 0


#: texts per query-encoder forward pass: queries are short, so a pass of 256 is small, and bf16 passes on a CPU
#: (`search serve --encoder-bf16-min-batch`) kept gaining up to 256 (MiniLM: 691 q/s at 64, 880 at 128, 924 at
#: 256 on the loaded 2-core machine here; fp32 flat at ~340)
QUERY_BATCH = 256


def set_faiss_threads(threads: int) -> None:
    """FAISS's OpenMP threads for searches made on the calling thread (OpenMP keeps this per thread: set it on the
    thread that searches; 0 leaves the default, $OMP_NUM_THREADS or one per core). A search server wants 1 on a
    small machine: with 2, any call of 2 or more queries took at least ~19 ms on the loaded 2-core machine here
    (the OpenMP team waits at its barrier for a thread the OS has not scheduled), against 2 ms with 1."""
    import faiss

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"FAISS threads must be an integer >= 0 (0 = the default), got {threads!r}")
    if threads:
        faiss.omp_set_num_threads(threads)


def set_encoder_threads(threads: int) -> None:
    """torch's intra-op threads, which the query encoders use (0 leaves torch's default, one per core). A search
    server wants 1 on a small loaded machine: MiniLM encoding one query took ~900 ms with 2 threads on the loaded
    2-core machine here, against ~54 ms with 1 (the same barrier waits as FAISS's OpenMP team)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"encoder threads must be an integer >= 0 (0 = the default), got {threads!r}")
    if threads:
        import torch

        torch.set_num_threads(threads)


@dataclass
class _Shard:
    name: str
    index: object  # faiss.Index
    docs: object  # pyarrow.Table, rows sorted by id
    ids: np.ndarray


class ShardedSearcher:
    #: `search_many` may be called from several threads at once (`search serve --search-threads`): FAISS searches
    #: and torch forward passes only read, the encoders load once under a lock and tokenize under one
    thread_safe = True

    def __init__(
        self,
        uri: str,
        storage: StorageConfig | None = None,
        cache_dir: str = "~/.cache/pixsearch",
        crop: RegionCrop | None = None,
        mmap: bool = True,
        encoders: dict[str, object] | None = None,
        shard_names: list[str] | None = None,
    ):
        """`crop`: how a RegionQuery becomes the searched image (default `RegionCrop()`: the box of the mask's
        largest piece grown by 10% per side); `shard_names`: load only these shards (a Ray shard group; None = all)."""
        if crop is not None and not isinstance(crop, RegionCrop):
            raise TypeError(f"crop must be a RegionCrop, got {type(crop).__name__}")
        self.crop = crop or RegionCrop()
        self.mmap = mmap
        self.store = ObjectStore(storage)
        self.version_uri = resolve(self.store, uri)
        self.manifest = read_manifest(self.store, self.version_uri)
        self.cache_dir = cache_dir
        self.local = Path(cache_dir).expanduser() / "indices" / self.manifest["name"] / self.manifest["version"]
        known = {s["name"] for spec in self.manifest["indices"].values() for s in spec["shards"]}
        unknown = sorted(set(shard_names or ()) - known)
        if unknown:
            raise ValueError(f"unknown shards {unknown}; {self.index_version} has {sorted(known)}")
        self.shards = {
            kind: [self._load_shard(kind, s) for s in spec["shards"] if shard_names is None or s["name"] in shard_names]
            for kind, spec in self.manifest["indices"].items()
        }
        self._encoders: dict[str, object] = dict(encoders or {})
        self._encoders_lock = threading.Lock()  # search threads (`search serve --search-threads`) load one copy

    @property
    def index_version(self) -> str:
        """`<name>/<version>` of the published index this searcher answers from (replay-cache key part)."""
        return f"{self.manifest['name']}/{self.manifest['version']}"

    @property
    def kinds(self) -> list[str]:
        return sorted(self.shards)

    # ---------------------------------------------------------------- loading
    def _fetch(self, entry: dict) -> Path:
        """A verified local copy of one manifest object."""
        path = self.local / entry["uri"]
        if path.is_file() and sha256_file(path) == entry["sha256"]:
            return path
        self.store.get_file(join(self.version_uri, entry["uri"]), path)
        if sha256_file(path) != entry["sha256"]:
            path.unlink()
            raise VerifyError(f"{entry['uri']}: downloaded object does not match the manifest's sha256")
        return path

    def _load_shard(self, kind: str, spec: dict) -> _Shard:
        import pyarrow.parquet as pq

        index = read_faiss(str(self._fetch(spec["faiss"])), self.mmap)
        no_prefetch_threads(index)
        faiss_build.set_nprobe(index, self.manifest["indices"][kind].get("nprobe"))
        docs = pq.read_table(self._fetch(spec["docstore"]))
        return _Shard(spec["name"], index, docs, docs["id"].to_numpy())

    def _encoder(self, kind: str):
        if kind in self._encoders:
            return self._encoders[kind]
        with self._encoders_lock:
            return self._load_encoder(kind)

    def _load_encoder(self, kind: str):
        if kind not in self._encoders:
            from indexing.embedders import image_encoder, text_encoder

            spec = self.manifest["indices"][kind]["encoder"]
            if spec["kind"] == "external":  # built from embeddings without an embeddings.json naming the encoder
                raise ValueError(
                    f"the {kind} index of {self.index_version} was built from embeddings of an unnamed "
                    f"encoder ({spec['model']}); pass encoders={{{kind!r}: <encoder>}} to search it"
                )
            if spec["kind"] == "hash":  # indexing/synthetic.py: tests and benchmarks
                from indexing.synthetic import HashEncoder

                self._encoders[kind] = HashEncoder(spec["dim"])
            elif kind == "text":
                cfg = TextEncoderConfig(
                    model=spec["model"], max_seq_length=spec.get("max_seq_length"), batch_size=QUERY_BATCH
                )
                self._encoders[kind] = text_encoder(cfg, self.cache_dir, self.store.config)
            else:
                model = None if spec["kind"] == "dinov2-onnx" else spec["model"]
                cfg = ImageEncoderConfig(kind=spec["kind"], model=model, pooling=spec.get("pooling", "cls"))
                self._encoders[kind] = image_encoder(cfg, self.cache_dir, self.store.config)
        return self._encoders[kind]

    # ---------------------------------------------------------------- search
    @staticmethod
    def _index_for(query: Query) -> str:
        if isinstance(query, TextQuery):
            return "text"
        if isinstance(query, (ImageQuery, RegionQuery)):
            return "image"
        raise TypeError(f"ShardedSearcher handles TextQuery, ImageQuery and RegionQuery, got {type(query).__name__}")

    def _pixels(self, query: Query):
        """The image a visual query is encoded from: the whole image, or the region's crop."""
        if isinstance(query, RegionQuery):
            return self.crop.apply(query.image, query.mask)
        return query.image

    def _encode(self, kind: str, queries: list[Query]) -> np.ndarray:
        enc = self._encoder(kind)
        return enc.encode([q.text for q in queries] if kind == "text" else [self._pixels(q) for q in queries])

    def search(self, query: Query, k: int = 5) -> list[Evidence]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[Query], k: int = 5) -> list[list[Evidence]]:
        """Every query's top-k. Text queries that take more than one encoder pass are pipelined: pass i is
        searched while pass i+1 is encoded (`_search_pipelined`); the rest are encoded, then searched."""
        k = check_k(k)
        out: list[list[Evidence]] = [[] for _ in queries]
        text_rows = [i for i, q in enumerate(queries) if self._index_for(q) == "text"]
        rest = list(range(len(queries)))
        if self._pipelines(len(text_rows)):
            texts = [queries[i].text for i in text_rows]
            for row, hits in zip(text_rows, self._search_pipelined(self._encoder("text"), texts, k)):
                out[row] = hits
            done = set(text_rows)
            rest = [i for i in rest if i not in done]
        for kind, rows, vectors in self.encode_many([queries[i] for i in rest]):
            for row, hits in zip(rows, self.search_vectors(kind, vectors, k)):
                out[rest[row]] = hits
        return out

    def _pipelines(self, n_text: int) -> bool:
        if n_text < 2 or "text" not in self.manifest["indices"]:
            return False
        enc = self._encoder("text")
        return hasattr(enc, "encode_passes") and n_text > getattr(enc, "batch_size", n_text)

    def _search_pipelined(self, enc, texts: list[str], k: int) -> list[list[Evidence]]:
        """Text queries searched pass by pass while the encoder makes the next pass on a worker thread (torch and
        FAISS both release the GIL, so two cores run both). The passes are `encode`'s, so the vectors, and the
        results, are those of encoding everything first; an error on either side is raised here."""
        results: list[list[Evidence]] = [[] for _ in texts]
        passes: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    passes.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for item in enc.encode_passes(texts):
                    if not put(item):
                        return
                put(None)
            except BaseException as e:  # handed to the searching thread, which raises it
                put(e)

        worker = threading.Thread(target=produce, name="pixsearch-encode", daemon=True)
        worker.start()
        try:
            while (item := passes.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                rows, vectors = item
                for row, hits in zip(rows.tolist(), self._search_vectors("text", vectors, k)):
                    results[row] = hits
        finally:
            stop.set()
            worker.join()
        return results

    def encode_many(self, queries: list[Query]) -> list[tuple[str, list[int], np.ndarray]]:
        """Queries grouped by index kind and encoded in one batch each: [(kind, query positions, vectors)]."""
        by_kind: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            by_kind.setdefault(self._index_for(q), []).append(i)
        out = []
        for kind, rows in by_kind.items():
            if kind not in self.manifest["indices"]:
                raise ValueError(f"index {self.index_version} has no {kind} index; it has: {self.kinds}")
            out.append((kind, rows, self._encode(kind, [queries[i] for i in rows])))
        return out

    def search_vectors(self, kind: str, vectors: np.ndarray, k: int) -> list[list[Evidence]]:
        """Top-k over the shards this searcher holds, for already-encoded query vectors."""
        return self._search_vectors(kind, vectors, check_k(k))

    def _search_vectors(self, kind: str, vectors: np.ndarray, k: int) -> list[list[Evidence]]:
        """Top-k of every shard, merged by score (ties broken by global id for determinism). The merge and the
        docstore lookups are done per batch (numpy sort, one `take` per shard), not per hit."""
        shards = self.shards.get(kind, [])
        x = np.ascontiguousarray(vectors, np.float32)
        if not shards or not len(x):
            return [[] for _ in range(len(x))]
        found = [shard.index.search(x, k) for shard in shards]
        scores = np.concatenate([sc for sc, _ in found], axis=1)  # (queries, k * shards)
        ids = np.concatenate([i for _, i in found], axis=1)
        which = np.broadcast_to(np.repeat(np.arange(len(shards)), k), ids.shape)
        order = np.lexsort((ids, np.where(ids >= 0, -scores, np.inf)), axis=1)[:, :k]
        scores, ids, which = (np.take_along_axis(a, order, axis=1) for a in (scores, ids, which))
        records = [[None] * k for _ in range(len(x))]
        for s, shard in enumerate(shards):
            q, j = np.nonzero((which == s) & (ids >= 0))
            if len(q):
                rows = self._records(kind, shard, ids[q, j])
                for qi, ji, rec in zip(q.tolist(), j.tolist(), rows):
                    records[qi][ji] = rec
        score_lists = scores.tolist()
        return [
            [Evidence(score=score, index=kind, **rec) for score, rec in zip(sl, recs) if rec is not None]
            for sl, recs in zip(score_lists, records)
        ]

    def _records(self, kind: str, shard: _Shard, gids: np.ndarray) -> list[dict]:
        """Evidence fields (all but score and index) of these global ids of one shard, in one docstore `take`."""
        rows = shard.docs.take(np.searchsorted(shard.ids, gids))
        names = set(rows.column_names)
        col = {n: rows[n].to_pylist() for n in ("doc_id", "title", "text", "url", "key") if n in names}
        urls = col.get("url", [""] * len(gids))
        out = []
        for r, gid in enumerate(gids.tolist()):
            meta = {"id": gid, "shard": shard.name, "url": urls[r]}
            if kind == "image":
                meta["image_key"] = col["key"][r]
            out.append({"doc_id": col["doc_id"][r], "title": col["title"][r], "text": col["text"][r], "meta": meta})
        return out


def merge_topk(per_group: list[list[Evidence]], k: int) -> list[Evidence]:
    """Merge hit lists of disjoint shard groups: score descending, ties by global id (ShardedSearcher's order)."""
    hits = [e for group in per_group for e in group]
    hits.sort(key=lambda e: (-e.score, e.meta.get("id", 0)))
    return hits[:k]

"""Ray serving: `SearchActor`s hold shard groups (N groups x R replicas); `RaySearchRouter` fans a batch out.

    router = RaySearchRouter(index_uri, groups=2, replicas=2, num_cpus=0.25)
    router.search_many(queries, k=5)        # a Searcher: use it directly or via SearchClient.connect(router)

The router encodes each batch once (queries grouped by modality, on the driver), sends the vectors to one replica
of every group (round-robin over replicas), and merges the groups' top-k exactly as `ShardedSearcher` does
(score descending, global id ascending), so the answer equals a single in-process ShardedSearcher's.
Shards are dealt to groups round-robin by name. Actors take fractional CPUs (whole-CPU actors on a
2-CPU machine starve the other tasks of CPUs). A replica that fails is skipped for the next live replica of its group.
"""

from __future__ import annotations

import itertools
import logging

from indexing.searcher import ShardedSearcher, check_k, merge_topk

log = logging.getLogger(__name__)


class _SearchActorImpl:
    """One shard group of a published index, in one Ray actor."""

    def __init__(self, uri: str, shard_names: list[str], kw: dict):
        self.searcher = ShardedSearcher(uri, shard_names=shard_names, **kw)

    def search_vectors(self, kind, vectors, k):
        return self.searcher.search_vectors(kind, vectors, k)

    def ready(self) -> str:
        return self.searcher.index_version


def shard_groups(manifest: dict, groups: int) -> list[list[str]]:
    names = sorted(s["name"] for spec in manifest["indices"].values() for s in spec["shards"])
    if not 1 <= groups <= len(names):
        raise ValueError(f"groups must be in [1, {len(names)}] (the index has {len(names)} shards), got {groups}")
    return [names[g::groups] for g in range(groups)]


class RaySearchRouter:
    thread_safe = True  # the front searcher is; each Ray call is its own

    def __init__(
        self, uri: str, groups: int = 1, replicas: int = 1, num_cpus: float = 0.25, timeout: float = 60, **searcher_kw
    ):
        import ray

        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.front = ShardedSearcher(uri, shard_names=[], **searcher_kw)  # manifest + encoders, no shards
        self.timeout = timeout
        actor_cls = ray.remote(num_cpus=num_cpus)(_SearchActorImpl)
        self.groups = shard_groups(self.front.manifest, groups)
        kw = {k: v for k, v in searcher_kw.items() if k != "encoders"}
        self.replicas = [[actor_cls.remote(uri, names, kw) for _ in range(replicas)] for names in self.groups]
        ray.get([a.ready.remote() for reps in self.replicas for a in reps], timeout=timeout)
        self._next = [itertools.cycle(range(replicas)) for _ in self.groups]
        log.info("%d shard groups x %d replicas serving %s", len(self.groups), replicas, self.index_version)

    @property
    def index_version(self) -> str:
        return self.front.index_version

    @property
    def kinds(self) -> list[str]:
        return sorted(self.front.manifest["indices"])

    def _group_search(self, g: int, kind: str, vectors, k: int):
        import ray

        reps = self.replicas[g]
        last = None
        for _ in range(len(reps)):
            actor = reps[next(self._next[g])]
            try:
                return ray.get(actor.search_vectors.remote(kind, vectors, k), timeout=self.timeout)
            except ray.exceptions.RayActorError as e:  # a dead replica: try the next one of this group
                last = e
                log.warning("group %d replica failed (%s); trying another", g, e)
        raise RuntimeError(f"every replica of shard group {g} failed: {last}")

    def search_many(self, queries: list, k: int = 5) -> list[list]:
        k = check_k(k)
        out: list[list] = [[] for _ in queries]
        for kind, rows, vectors in self.front.encode_many(queries):
            per_group = [self._group_search(g, kind, vectors, k) for g in range(len(self.groups))]
            for j, row in enumerate(rows):
                out[row] = merge_topk([hits[j] for hits in per_group], k)
        return out

    def search(self, query, k: int = 5) -> list:
        return self.search_many([query], k)[0]

    def close(self) -> None:
        import ray

        for reps in self.replicas:
            for a in reps:
                ray.kill(a)

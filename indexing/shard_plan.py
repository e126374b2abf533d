"""The shard plan: computed once on the driver, it fixes every global id and every shard's name and objects.

Global ids are positions in the deterministic read order (text passages and images are numbered separately,
from 0); shard `k` of a kind holds ids `[k * size, min((k + 1) * size, n))`, so a task writes only its own
shard and a retried task rewrites the same objects. Names are zero-padded: `text-00000`, `image-00003`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

KINDS = ("text", "image")


@dataclass
class ShardSpec:
    kind: str  # "text" | "image"
    index: int
    id_start: int
    id_end: int  # exclusive
    staging_sha256: str = ""

    @property
    def name(self) -> str:
        return shard_name(self.kind, self.index)

    @property
    def count(self) -> int:
        return self.id_end - self.id_start

    # relative paths of the shard's objects inside the version directory
    @property
    def staging(self) -> str:
        return f"staging/{self.name}.parquet"

    @property
    def docstore(self) -> str:
        return f"docs/{self.name}.parquet"

    @property
    def embeddings(self) -> str:
        return f"emb/{self.name}.npy"

    @property
    def faiss(self) -> str:
        return f"faiss/{self.name}.faiss"

    @property
    def rejects(self) -> str:
        return f"rejects/{self.name}.jsonl"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ShardPlan:
    shards: list[ShardSpec] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # documents, passages, images, inputs, rejects

    def of_kind(self, kind: str) -> list[ShardSpec]:
        return [s for s in self.shards if s.kind == kind]

    def to_dict(self) -> dict:
        return {"shards": [s.to_dict() for s in self.shards], "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, data: dict) -> ShardPlan:
        return cls([ShardSpec(**s) for s in data["shards"]], dict(data["counts"]))


def shard_name(kind: str, index: int) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown shard kind {kind!r}; allowed: {KINDS}")
    return f"{kind}-{index:05d}"


def shard_ranges(n: int, per_shard: int) -> list[tuple[int, int]]:
    """[start, end) id ranges covering 0..n in shards of `per_shard` (the last may be smaller)."""
    if per_shard < 1:
        raise ValueError(f"per_shard must be >= 1, got {per_shard}")
    return [(s, min(s + per_shard, n)) for s in range(0, n, per_shard)]

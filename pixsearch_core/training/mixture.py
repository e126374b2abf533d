"""The data mixture: per-stage ratio (the paper's stage-1 : stage-2 = 7 : 9) and per-dataset weights, a
deterministic order given (seed, rank), and O(1)-ish seeking to any position (how a resumed run continues).

    mix = Mixture([Source("refcoco", 1, 1.0, ds1), Source("traj", 2, 1.0, ds2)], ratio={1: 7, 2: 9}, seed=0,
                  rank=rank, world=world)
    mix.probabilities            # P(source) = ratio[stage] / sum(ratio) * weight / sum(weights of that stage)
    for sample in mix.iterate(start=position): ...

Draw j of a rank picks a source from block j // BLOCK of a generator seeded (seed, rank, block), so any position
is reachable without replaying the run. Each source is a stream per rank: its shards are split across ranks
(shard i to rank i % world; with fewer shards than ranks, samples are striped instead); per epoch the rank's
shards come in a seeded order and the samples of each shard in a seeded order, so a shard is read once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

BLOCK = 4096


@dataclass
class Source:
    name: str
    stage: int
    weight: float
    dataset: object  # ShardedDataset-like: shard_sizes, get(shard, index)


def mixture_probabilities(sources: list[Source], ratio: dict[int, float]) -> np.ndarray:
    """P(source) from the stage ratio and the per-dataset weights; stages with ratio 0 are left out."""
    bad = [s for s in ratio if s not in (1, 2)]
    if bad or any(r < 0 for r in ratio.values()):
        raise ValueError(f"stage ratio {ratio}; keys allowed: 1, 2; values >= 0")
    probs = np.zeros(len(sources))
    for stage, r in ratio.items():
        members = [i for i, s in enumerate(sources) if s.stage == stage]
        total = sum(sources[i].weight for i in members)
        if r > 0 and (not members or total <= 0):
            raise ValueError(
                f"stage ratio gives stage {stage} weight {r} but no source of stage {stage} has a "
                f"positive weight; sources: {[(s.name, s.stage, s.weight) for s in sources]}"
            )
        for i in members:
            probs[i] = r * sources[i].weight / total if total > 0 else 0.0
    if probs.sum() <= 0:
        raise ValueError(f"the mixture is empty: ratio {ratio}, sources {[(s.name, s.stage) for s in sources]}")
    return probs / probs.sum()


class _Stream:
    """One source's samples for one rank, epoch after epoch, in a seeded order."""

    def __init__(self, source: Source, seed: int, rank: int, world: int):
        self.source, self.seed = source, seed
        sizes = source.dataset.shard_sizes
        if len(sizes) >= world:
            self.items = {i: np.arange(n) for i, n in enumerate(sizes) if i % world == rank}
        else:
            offsets = np.cumsum([0, *sizes])
            self.items = {i: np.arange(n)[(offsets[i] + np.arange(n)) % world == rank] for i, n in enumerate(sizes)}
        self.items = {i: v for i, v in self.items.items() if len(v)}
        self.size = sum(len(v) for v in self.items.values())
        if self.size == 0:
            raise ValueError(f"source {source.name}: no samples for rank {rank} of {world}")
        self._epoch: tuple[int, np.ndarray] | None = None

    def _order(self, epoch: int) -> np.ndarray:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch, 7919])
            shards = list(self.items)
            rows = []
            for s in (shards[i] for i in rng.permutation(len(shards))):
                idx = self.items[s][np.random.default_rng([self.seed, epoch, s]).permutation(len(self.items[s]))]
                rows.append(np.stack([np.full(len(idx), s), idx], 1))
            self._epoch = (epoch, np.concatenate(rows))
        return self._epoch[1]

    def get(self, k: int):
        shard, index = self._order(k // self.size)[k % self.size]
        return self.source.dataset.get(int(shard), int(index))


class Mixture:
    def __init__(self, sources: list[Source], ratio: dict[int, float], seed: int = 0, rank: int = 0, world: int = 1):
        self.sources, self.seed, self.rank = sources, seed, rank
        self.probabilities = mixture_probabilities(sources, ratio)
        active = self.probabilities > 0
        self.streams = [_Stream(s, seed, rank, world) if a else None for s, a in zip(sources, active)]

    def _block(self, b: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.rank, b])
        return rng.choice(len(self.sources), size=BLOCK, p=self.probabilities)

    def choices(self, start: int, n: int) -> np.ndarray:
        """The source index of draws [start, start + n) of this rank."""
        first, last = start // BLOCK, (start + n - 1) // BLOCK
        drawn = np.concatenate([self._block(b) for b in range(first, last + 1)])
        return drawn[start - first * BLOCK : start - first * BLOCK + n]

    def counts_before(self, position: int) -> np.ndarray:
        """How many draws of each source come before `position`."""
        counts = np.zeros(len(self.sources), dtype=np.int64)
        for b in range(0, position, BLOCK):
            counts += np.bincount(self.choices(b, min(BLOCK, position - b)), minlength=len(self.sources))
        return counts

    def iterate(self, start: int = 0) -> Iterator:
        """Samples from draw `start` on, forever (sources cycle through epochs)."""
        counts = self.counts_before(start)
        position = start
        while True:
            for s in self.choices(position, BLOCK - position % BLOCK):
                yield self.streams[s].get(int(counts[s]))
                counts[s] += 1
                position += 1

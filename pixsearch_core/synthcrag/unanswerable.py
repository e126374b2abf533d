"""Unanswerable SynthCRAG questions: which questions ask for a fact the corpus does not hold.

A stated share of the questions (exactly round(share x questions) in each split, train and test) asks for the year
or the place of first production of an entity whose encyclopedia document leaves that fact out (`Entity.withheld`).
Its gold trajectory searches as usual, reads that document and answers "I don't know" (`IDK`), the phrase the
CRAG-MM metric counts as missing (`metrics.crag.is_missing`): 0 where a wrong answer scores -1. The benchmark's gold
answer stays the true fact (the world knows it, the corpus does not), as in CRAG-MM, where the knowledge source may
lack a question's answer. Every other question about such an entity avoids its withheld fact, so one document never
both holds and lacks an answer; stage-2 trajectories about counterfactual twins withhold the same fact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixsearch_core.synthcrag.world import WITHHOLDABLE, World

#: the gold answer of an unanswerable question, in the form `metrics.crag.is_missing` recognises
IDK = "I don't know"
UNANSWERABLE = "unanswerable"


@dataclass(frozen=True)
class UnanswerablePlan:
    slots: frozenset[tuple[str, int, int]]  # (entity id, scene index, question index) asked unanswerably
    withheld: dict[str, str]  # entity id -> the fact its document leaves out


def plan_unanswerable(world: World, scenes_per_entity: int, questions_per_scene: int, share: float) -> UnanswerablePlan:
    """Pick the unanswerable question slots (per split, exactly round(share x slots)) and the fact each of their
    entities withholds. Deterministic in the world's seed, on its own random stream."""
    if not 0.0 <= share <= 0.5:
        raise ValueError(f"unanswerable_share {share!r}; allowed: 0 to 0.5 (a share of the questions)")
    rng = np.random.default_rng(world.config.seed + 5)
    slots: set[tuple[str, int, int]] = set()
    for split in ("train", "test"):
        cands = [
            (e.id, s, q)
            for e in world.split(split)
            for s in range(scenes_per_entity)
            for q in range(questions_per_scene)
        ]
        k = round(share * len(cands))
        slots |= {cands[int(i)] for i in rng.choice(len(cands), size=k, replace=False)}
    withheld = {eid: WITHHOLDABLE[int(rng.integers(len(WITHHOLDABLE)))] for eid in sorted({s[0] for s in slots})}
    return UnanswerablePlan(frozenset(slots), withheld)

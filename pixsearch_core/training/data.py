"""The training data of one stage: pack missing shards (rank 0; others wait), open them, build the mixture."""

from __future__ import annotations

import logging

from pixsearch_core.storage import ObjectStore, join
from pixsearch_core.training.config import StageConfig, TrainConfig
from pixsearch_core.training.mixture import Mixture, Source
from pixsearch_core.training.readers import read_source
from pixsearch_core.training.shards import MANIFEST, ShardedDataset, pack_shards

log = logging.getLogger(__name__)


def prepare_shards(cfg: TrainConfig, ratio: dict[int, float], store: ObjectStore) -> None:
    """Pack every dataset of the stages in `ratio` (ratio > 0) whose shard manifest does not exist yet."""
    for ds in cfg.resolved_datasets():
        if ratio.get(ds.stage, 0) > 0 and not store.exists(join(ds.shards, MANIFEST)):
            log.info("packing %s (%s reader) from %s into %s", ds.name, ds.reader, ds.path, ds.shards)
            pack_shards(
                read_source(ds.reader, store, ds.path, **ds.options),
                ds.shards,
                store,
                cfg.data.samples_per_shard,
                ds.name,
            )


def build_mixture(
    cfg: TrainConfig, stage: StageConfig, rank: int, world: int, store: ObjectStore
) -> tuple[Mixture, int]:
    """-> (the rank's mixture, the number of samples of the stage's own datasets: one epoch)."""
    ratio = stage.ratio.as_dict()
    sources = [
        Source(ds.name, ds.stage, ds.weight, ShardedDataset.open(ds.shards, store))
        for ds in cfg.resolved_datasets()
        if ratio.get(ds.stage, 0) > 0
    ]
    mixture = Mixture(sources, ratio, seed=cfg.seed, rank=rank, world=world)
    own = max(ratio, key=lambda s: (ratio[s], s))
    epoch = sum(len(s.dataset) for s in sources if s.stage == own)
    log.info(
        "mixture %s; epoch = %d samples of stage-%d data",
        {s.name: round(float(p), 4) for s, p in zip(sources, mixture.probabilities)},
        epoch,
        own,
    )
    return mixture, epoch

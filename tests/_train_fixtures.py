"""Shared helpers of the training tests: a small SynthCRAG world and a fast tiny-model training config."""

from __future__ import annotations

import os

from pixsearch_core.config import load_config
from pixsearch_core.training.config import TrainConfig

CONF = os.path.join(os.path.dirname(__file__), "..", "conf", "train", "tiny-synthcrag.yaml")
DEMO_CONF = os.path.join(os.path.dirname(__file__), "..", "conf", "train", "synthcrag-demo.yaml")
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def write_world(out: str) -> str:
    from pixsearch_core.synthcrag import WorldConfig, generate_world
    from pixsearch_core.synthcrag.write import write_synthcrag

    write_synthcrag(generate_world(WorldConfig(seed=0, n_entities=24, n_makers=4, n_places=4)), out)
    return out


def fast_config(world: str, tmp, *overrides: str, conf: str = CONF) -> TrainConfig:
    """The tiny config (or `conf`) on `world`, shortened for tests (plain template, small images, fp32)."""
    return load_config(
        TrainConfig,
        conf,
        [
            f"data.root={world}",
            f"output={tmp}/store",
            f"run_dir={tmp}/run",
            "data.template=plain",
            "data.image_max_side=48",
            "data.max_length=160",
            *overrides,
        ],
    )


def clear_dist_env() -> None:
    for k in DIST_ENV:
        os.environ.pop(k, None)

"""Executors: stream record batches for a list of examples, in process (`sequential`) or on Ray (`on_ray`).

Both call `runner.process_batch` on batches of `batch_size` examples, so they produce the same records (up to
`VOLATILE_FIELDS`). The Ray path is Ray Data `map_batches` over an actor pool (`ActorPoolStrategy`): each actor is
one model replica that builds its runner and benchmark once; results stream back to the driver as they finish.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from pixsearch_core.benchmarks.base import Example
from pixsearch_core.engines import init_ray, shutdown_ray
from pixsearch_core.evaluation.config import RayConfig
from pixsearch_core.evaluation.sample_runner import (
    BenchmarkSpec,
    RunnerSpec,
    example_from_json,
    example_to_json,
    process_batch,
)

log = logging.getLogger(__name__)


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def sequential(
    runner_spec: RunnerSpec, bench_spec: BenchmarkSpec, examples: list[Example], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    runner, bench = runner_spec.build(), bench_spec.build()
    runner.setup()
    for batch in _batches(examples, batch_size):
        yield process_batch(runner, bench, batch)


class _Replica:
    """One Ray actor: a runner (model + searcher) and the benchmark's scorer, built once."""

    def __init__(self, runner_spec: dict, bench_spec: dict):
        self.runner = RunnerSpec(**runner_spec).build()
        self.bench = BenchmarkSpec(**bench_spec).build()
        self.runner.setup()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        examples = [example_from_json(str(b)) for b in batch["example"]]
        records = process_batch(self.runner, self.bench, examples, replica=self.name)
        return {"record": [json.dumps(r, sort_keys=True) for r in records]}


def on_ray(
    runner_spec: RunnerSpec, bench_spec: BenchmarkSpec, examples: list[Example], cfg: RayConfig
) -> Iterator[list[dict[str, Any]]]:
    import ray
    from ray.data import ActorPoolStrategy

    started = init_ray(cfg)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows one tqdm bar over samples
        items = [{"example": example_to_json(ex)} for ex in examples]
        ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // cfg.batch_size)))
        ds = ds.map_batches(
            _Replica,
            fn_constructor_kwargs={"runner_spec": vars(runner_spec), "bench_spec": vars(bench_spec)},
            compute=ActorPoolStrategy(size=min(cfg.num_replicas, len(items))),
            batch_size=cfg.batch_size,
            num_cpus=cfg.cpus_per_replica,
            num_gpus=cfg.gpus_per_replica or None,
            batch_format="numpy",
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield [json.loads(str(r)) for r in batch["record"]]
    finally:
        shutdown_ray(started)

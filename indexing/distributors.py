"""Distributors: run one task function over shard payloads, in-process or as a Spark job (one partition each).

Both return the results in payload order, so what the driver does next never depends on executor order.
Spark loads each encoder once per executor Python worker (the encoders are cached per process and Spark reuses
its Python workers; on local masters the workers are forked from a daemon that has already imported the encoder
libraries, pixsearch_core/engines/spark_daemon.py), asks for `spark.gpus_per_task` GPUs per task, and logs
progress while the stage runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from pixsearch_core.engines import SparkConfig, spark_session

log = logging.getLogger(__name__)


def run_sequential(fn: Callable[[dict], dict], payloads: list[dict], label: str) -> list[dict]:
    from tqdm import tqdm

    return [fn(p) for p in tqdm(payloads, desc=label, unit="shard", disable=len(payloads) < 2)]


def _progress(sc, label: str, total: int, stop: threading.Event) -> None:
    """Log finished shards of the running stage whenever the count changes (at most every 10 s)."""
    last = -1
    while not stop.wait(10.0):
        tracker = sc.statusTracker()
        infos = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        done = sum(i.numCompletedTasks for i in infos if i)
        if done != last:
            log.info("%s: %d/%d shards done", label, done, total)
            last = done


def run_spark(
    fn: Callable[[dict], dict], payloads: list[dict], label: str, cfg: SparkConfig, preload: tuple[str, ...] = ()
) -> list[dict]:
    if not payloads:
        return []
    spark = spark_session(cfg, preload)
    sc = spark.sparkContext
    sc.setJobDescription(f"pixsearch {label} ({len(payloads)} shards)")
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, args=(sc, label, len(payloads), stop), daemon=True)
    watcher.start()
    try:
        indexed = list(enumerate(payloads))
        rdd = sc.parallelize(indexed, numSlices=len(indexed))
        results = rdd.mapPartitions(lambda part: [(i, fn(p), _code_origin()) for i, p in part]).collect()
    finally:
        stop.set()
    origins = sorted({o for _, _, o in results})
    log.info("%s: executors ran the code at %s", label, ", ".join(origins))
    return [r for _, r, _ in sorted(results, key=lambda x: x[0])]


def _code_origin() -> str:
    """Where an executor imported pixsearch from (this checkout, a shipped zip, or an installed copy)."""
    import indexing

    return str(Path(indexing.__file__).parent.parent)


def distributor(
    engine: str, spark: SparkConfig, preload: tuple[str, ...] = ()
) -> Callable[[Callable[[dict], dict], list[dict], str], list[dict]]:
    """`preload`: modules the tasks import (a new local Spark session's daemon imports them once for all workers)."""
    if engine == "sequential":
        return run_sequential
    if engine == "spark":
        return lambda fn, payloads, label: run_spark(fn, payloads, label, spark, preload)
    raise ValueError(f"unknown index engine {engine!r}; allowed: 'spark', 'sequential'")

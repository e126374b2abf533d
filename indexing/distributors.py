"""Distributors: run one task function over shard payloads, in-process or as a Spark job (one partition each).

Both return the results in payload order, so what the driver does next never depends on executor order.
Spark loads each encoder once per executor Python worker (the encoders are cached per process and Spark reuses
its Python workers), asks for `spark.gpus_per_task` GPUs per task, and logs progress while the stage runs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from indexing.config import SparkConfig

log = logging.getLogger(__name__)


def run_sequential(fn: Callable[[dict], dict], payloads: list[dict], label: str) -> list[dict]:
    from tqdm import tqdm

    return [fn(p) for p in tqdm(payloads, desc=label, unit="shard", disable=len(payloads) < 2)]


def spark_session(cfg: SparkConfig):
    """Get (or create) the SparkSession; local masters get this repo on the workers' PYTHONPATH.

    Launched by spark-submit, the session takes the submitted master and conf; `cfg.conf` is still applied."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if cfg.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        repo = str(Path(__file__).resolve().parents[1])
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if repo not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([repo] + [p for p in paths if p])
    builder = SparkSession.builder
    if not os.environ.get("PYSPARK_GATEWAY_PORT"):  # under spark-submit, its --master and --conf rule
        builder = builder.master(cfg.master).appName(cfg.app_name)
    conf = {"spark.python.worker.reuse": "true", "spark.ui.showConsoleProgress": "false", **cfg.conf}
    if cfg.gpus_per_task > 0:
        conf.setdefault("spark.task.resource.gpu.amount", str(cfg.gpus_per_task))
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


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


def run_spark(fn: Callable[[dict], dict], payloads: list[dict], label: str, cfg: SparkConfig) -> list[dict]:
    if not payloads:
        return []
    spark = spark_session(cfg)
    sc = spark.sparkContext
    sc.setJobDescription(f"pixsearch {label} ({len(payloads)} shards)")
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, args=(sc, label, len(payloads), stop), daemon=True)
    watcher.start()
    try:
        indexed = list(enumerate(payloads))
        rdd = sc.parallelize(indexed, numSlices=len(indexed))
        results = rdd.mapPartitions(lambda part: [(i, fn(p)) for i, p in part]).collect()
    finally:
        stop.set()
    return [r for _, r in sorted(results, key=lambda x: x[0])]


def runner(kind: str, spark: SparkConfig) -> Callable[[Callable[[dict], dict], list[dict], str], list[dict]]:
    if kind == "sequential":
        return run_sequential
    if kind == "spark":
        return lambda fn, payloads, label: run_spark(fn, payloads, label, spark)
    raise ValueError(f"unknown runner {kind!r}; allowed: 'spark', 'sequential'")

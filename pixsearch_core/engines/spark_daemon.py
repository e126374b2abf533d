"""PySpark's Python daemon, with the job's heavy modules imported once before it forks the workers.

Spark starts one daemon per executor (`python -m pyspark.daemon`); the daemon forks a Python worker per task slot.
Each worker otherwise imports torch, transformers and sentence-transformers itself on its first task (about 7
CPU-seconds each, 15-30 s of wall time on a loaded machine), before it can load its encoder. With
`spark.python.daemon.module=pixsearch_core.engines.spark_daemon` the daemon imports the modules named in
`PIXSEARCH_SPARK_PRELOAD` (comma-separated) once, and the workers it forks start with them in memory (shared
copy-on-write). Only modules are imported: no model is loaded and no thread pool started before the fork. The
preloaded objects are then frozen out of the cyclic garbage collector (`gc.freeze`, as Python's docs advise before
fork): PySpark's worker runs `gc.collect()` after every task, which otherwise walks them all (~0.5 s a task on a
loaded 2-core machine) and, by touching them, copies the shared pages into every worker.

`spark_session` sets this up for local masters only: a cluster's executors start their daemon from their own
environment, where this package may not be importable before the job's code zip is added.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os

log = logging.getLogger(__name__)

PRELOAD_ENV = "PIXSEARCH_SPARK_PRELOAD"


def preload(names: str) -> list[str]:
    """Import each comma-separated module; return those that failed (a worker then imports or fails on its own)."""
    failed = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        try:
            importlib.import_module(name)
        except Exception as e:  # the task that needs the module reports the error properly
            failed.append(name)
            log.warning("preloading %s failed: %s: %s", name, type(e).__name__, e)  # stderr: stdout is Spark's
    return failed


if __name__ == "__main__":
    preload(os.environ.get(PRELOAD_ENV, ""))
    gc.collect()
    gc.freeze()
    from pyspark.daemon import manager

    manager()

"""The preloading PySpark daemon: which sessions get it, what it imports, and that workers really fork from it."""

from __future__ import annotations

import sys

import pytest

from pixsearch_core.engines import SparkConfig
from pixsearch_core.engines.spark_daemon import PRELOAD_ENV, preload
from pixsearch_core.engines.spark_engine import _preload_conf

DAEMON = {"spark.python.daemon.module": "pixsearch_core.engines.spark_daemon"}


def test_preload_imports_modules_and_names_the_ones_that_fail(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    assert preload(" colorsys, pixsearch_no_such_module ,,") == ["pixsearch_no_such_module"]
    assert "colorsys" in sys.modules


def test_only_a_new_local_session_gets_the_preloading_daemon(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.setenv(PRELOAD_ENV, "")  # restored after the test
    assert _preload_conf(SparkConfig(master="local[2]"), ("torch", "indexing.tasks")) == DAEMON
    import os

    assert os.environ[PRELOAD_ENV] == "torch,indexing.tasks"  # the JVM it starts passes it to the daemon
    assert _preload_conf(SparkConfig(master="local[2]"), ()) == {}
    # a cluster's executors may not import this package before the job's code zip is added
    assert _preload_conf(SparkConfig(master="spark://head:7077"), ("torch",)) == {}
    own = SparkConfig(master="local[2]", conf={"spark.python.daemon.module": "my.daemon"})
    assert _preload_conf(own, ("torch",)) == {}  # the user's own daemon module is kept
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")  # under spark-submit its --master rules
    assert _preload_conf(SparkConfig(master="local[2]"), ("torch",)) == {}


@pytest.mark.spark
def test_workers_fork_from_the_preloading_daemon(spark):
    def parent(_):
        import gc
        import os

        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            yield f.read().replace(b"\0", b" ").decode(), "torch" in sys.modules, gc.get_freeze_count()

    out = spark.sparkContext.parallelize(range(2), 2).mapPartitions(parent).collect()
    # forked from the preloading daemon, torch already imported there, its objects frozen out of the collector
    assert all(
        "pixsearch_core.engines.spark_daemon" in cmd and torch and frozen > 100_000 for cmd, torch, frozen in out
    ), out

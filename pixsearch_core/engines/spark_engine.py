"""Spark: get the job's SparkSession, with the job's code on every executor.

    spark = spark_session(SparkConfig(master="spark://head:7077"))

A `local*` master runs executors on this machine with this checkout first on their PYTHONPATH. Any other master
(standalone, YARN, Kubernetes) gets a zip of the packages added with addPyFile, so executors import the driver's
code whatever is installed on the nodes. Under spark-submit, its --master and --conf rule; `spark.app_name` names
the application unless spark-submit was given --name.
"""

from __future__ import annotations

import logging
import os
import sys

from pydantic import Field, model_validator

from pixsearch_core.config import Config
from pixsearch_core.engines.code import code_zip, put_code_on_path

log = logging.getLogger(__name__)

_SHIPPED: set = set()  # (application id, zip) pairs already added: addPyFile refuses a path twice


class SparkConfig(Config):
    master: str = Field(
        "local[*]",
        description="local[N], spark://host:7077, yarn, k8s://...; ignored under spark-submit (its --master rules)",
    )
    app_name: str = "pixsearch-index"
    gpus_per_task: float = Field(0, ge=0, description="spark.task.resource.gpu.amount on clusters (0 = CPU)")
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark conf, e.g. spark.executor.memory")

    @model_validator(mode="after")
    def _one_source_for_task_gpus(self):
        given = self.conf.get("spark.task.resource.gpu.amount")
        if given is not None and self.gpus_per_task > 0 and float(given) != self.gpus_per_task:
            raise ValueError(
                f"spark.gpus_per_task={self.gpus_per_task} conflicts with spark.conf "
                f"spark.task.resource.gpu.amount={given}; set one of them"
            )
        return self


def _submitted() -> bool:
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def _app_name_unset() -> bool:
    """Under spark-submit without --name the application is named after the script (index.py)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # join spark-submit's JVM, so that SparkConf() holds what it was given
    name = SparkConf().get("spark.app.name", "")
    return not name or name.endswith(".py")


def _preload_conf(cfg: SparkConfig, preload: tuple[str, ...]) -> dict[str, str]:
    """Spark conf for a daemon that imports `preload` before forking workers (local masters, see spark_daemon)."""
    if not preload or _submitted() or not cfg.master.startswith("local") or "spark.python.daemon.module" in cfg.conf:
        return {}
    from pixsearch_core.engines.spark_daemon import PRELOAD_ENV

    os.environ[PRELOAD_ENV] = ",".join(preload)  # the JVM, and so the daemon it starts, inherits this
    return {"spark.python.daemon.module": "pixsearch_core.engines.spark_daemon"}


def spark_session(cfg: SparkConfig, preload: tuple[str, ...] = ()):
    """Get (or create) the SparkSession; ships the code to executors of non-local masters.

    `preload`: modules every Python worker will need (e.g. torch); a new session on a local master has its Python
    daemon import them once and fork the workers from it, instead of each worker importing them."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if cfg.master.startswith("local") or cfg.master.startswith("spark://127.0.0.1"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    put_code_on_path()  # executors on this machine (local masters, a worker started here) inherit it
    builder = SparkSession.builder
    if not _submitted():
        builder = builder.master(cfg.master).appName(cfg.app_name)
    elif _app_name_unset():
        builder = builder.appName(cfg.app_name)
    conf = {
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",
        **_preload_conf(cfg, preload),
        **cfg.conf,
    }
    if cfg.gpus_per_task > 0:
        conf.setdefault("spark.task.resource.gpu.amount", str(cfg.gpus_per_task))
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    if not sc.master.startswith("local") and (sc.applicationId, code_zip()) not in _SHIPPED:
        sc.addPyFile(str(code_zip()))
        _SHIPPED.add((sc.applicationId, code_zip()))
        log.info(
            "Spark application %r (%s) on %s; executors get %s",
            sc.appName,
            sc.applicationId,
            sc.master,
            code_zip().name,
        )
    return spark

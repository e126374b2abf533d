"""What the pixsearch DAGs share: defaults for the embedded (single-machine) setup, default_args, and the Spark
operator that falls back to `local[*]` when its connection is not defined. Light imports only (no Spark, Ray,
DeepSpeed or torch): the job helpers live in pipelines.steps and are imported inside tasks.

One checkout runs every task: the one the installed `pixsearch_core` comes from (`CODE`). Job scripts handed to
spark-submit, the child processes' PYTHONPATH and the default configs (CODE/conf) all come from it, whatever
folder the DAG files were copied or linked into.

Environment (read when the DAG files are parsed):
    PIXSEARCH_AIRFLOW_ROOT   where the embedded defaults write (default /tmp/pixsearch-airflow)
    PIXSEARCH_AIRFLOW_RETRY_DELAY_S   seconds between a failed task's tries (default 120)
    PIXSEARCH_CONF           the directory holding pixsearch's conf/ (default: CODE/conf)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from pixsearch_core.engines import code_env, code_root

ROOT = os.environ.get("PIXSEARCH_AIRFLOW_ROOT", "/tmp/pixsearch-airflow")
CODE = code_root()
CONF = os.environ.get("PIXSEARCH_CONF", str(CODE / "conf"))

#: the Spark connection the index build uses; without one, spark-submit runs with LOCAL_MASTER
SPARK_CONN_ID = "spark_pixsearch"
LOCAL_MASTER = "local[*]"

DEFAULT_ARGS = {
    "owner": "pixsearch",
    "retries": 1,
    "retry_delay": timedelta(seconds=float(os.environ.get("PIXSEARCH_AIRFLOW_RETRY_DELAY_S", 120))),
    "execution_timeout": timedelta(hours=2),
}

#: the embedded defaults' small SynthCRAG world (a few seconds to write)
WORLD = {"seed": 0, "n_entities": 24, "n_makers": 4, "n_places": 4}


def conf(rel: str) -> str:
    """A config file under PIXSEARCH_CONF, e.g. conf("index/synthcrag.yaml")."""
    return str(Path(CONF) / rel)


def job_script(module: str) -> str:
    """The file of a job module (jobs.index -> CODE/jobs/index.py) for spark-submit."""
    path = CODE.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        raise ModuleNotFoundError(f"{module}: no {path}; install pixsearch where the DAGs are parsed")
    return str(path)


def job_env() -> dict[str, str]:
    """Environment for job child processes: CODE first on PYTHONPATH, local Spark on the loopback."""
    env = code_env({"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    return {
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYTHONPATH": env["PYTHONPATH"],
    }


def _connection_exists(conn_id: str) -> bool:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
        return True
    except AirflowNotFoundException:
        return False


class PixsearchSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that submits to `local[*]` when `conn_id` is not defined (the provider would fall
    back to yarn): a cluster master comes from the connection, the embedded setup needs none."""

    def execute(self, context):
        if shutil.which("spark-submit") is None:  # pyspark's spark-submit sits beside this interpreter
            os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        if not _connection_exists(self._conn_id):
            fallback = "pixsearch_local_spark"
            os.environ[f"AIRFLOW_CONN_{fallback.upper()}"] = json.dumps({"conn_type": "spark", "host": LOCAL_MASTER})
            self.log.info("connection %r is not defined: submitting to %s", self._conn_id, LOCAL_MASTER)
            self._conn_id = fallback
        return super().execute(context)

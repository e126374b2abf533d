"""benchmark_matrix: evaluate one checkpoint on benchmarks x decode modes, one mapped task per cell, then report.

    prepare (world, pin the index version, run id) -> cells -> eval_cell x N (Ray: pixsearch eval run) -> report

Every cell runs against the SAME index version, pinned when the run starts (`index_version`, or the live one),
so a publish in the middle of the matrix cannot mix versions. Idempotent per run id: cell run ids are
`<run_id>-<benchmark>-<mode>`; re-running (or retrying) with the same `run_id` resumes each cell's records and
skips finished samples, and the report is rewritten from the records.

Connections: none (Ray: `ray_address` param, empty = a local Ray per cell). Params: see PARAMS below.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from airflow_dags._common import DEFAULT_ARGS, ROOT, WORLD, conf, job_env

PARAMS = {
    "checkpoint": Param(
        "oracle",
        type="string",
        description="checkpoint URI (<output>/stage2/final), registered model (tiny|mini|13b), "
        "or oracle (gold answers: a smoke test)",
    ),
    "benchmarks": Param(
        {"synthcrag": f"{ROOT}/world"}, type="object", description="benchmark name -> its gold data URI"
    ),
    "modes": Param(["full", "no_search"], type="array", description="decode modes (pixsearch eval run --mode)"),
    "index": Param(
        f"{ROOT}/store/indices/synthcrag", type="string", description="index URI (.../indices/<name>) or none"
    ),
    "index_version": Param("", type="string", description="pin this version; empty = the live one at run start"),
    "config": Param(conf("eval/demo.yaml"), type="string", description="the conf/eval/*.yaml run config"),
    "out": Param(f"{ROOT}/eval", type="string", description="eval output root: runs/ and reports/ under it"),
    "run_id": Param("", type="string", description="matrix run id (idempotency key); empty = the Airflow run id"),
    "ray_address": Param("", type="string", description="Ray cluster (auto, ray://head:10001); empty = local"),
    "engine": Param(
        "",
        type="string",
        description="eval engine per cell: ray | sequential (in-process); empty = the config's `engine`",
    ),
    "overrides": Param([], type="array", description="eval config overrides, e.g. ray.num_replicas=8 limit=100"),
    "make_world": Param(
        True,
        type="boolean",
        description="write the small SynthCRAG world for synthcrag data if missing (embedded demo)",
    ),
}


@dag(
    dag_id="pixsearch_benchmark_matrix",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["pixsearch", "ray", "eval"],
    doc_md=__doc__,
)
def benchmark_matrix():
    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=30))
    def prepare(params=None, run_id=None) -> dict:
        from pipelines import steps as p

        storage = p.job_storage("eval", params["config"], params["overrides"])  # the eval config's store
        if params["make_world"] and "synthcrag" in params["benchmarks"]:
            p.ensure_synthcrag_world(params["benchmarks"]["synthcrag"], **WORLD, storage=storage)
        index = params["index"]
        pinned = index if index in ("", "none") else p.pin_index(index, params["index_version"], storage)
        return {"index": pinned, "run_id": p.safe_id(params["run_id"] or run_id), "storage": storage}

    @task(execution_timeout=timedelta(minutes=5))
    def cells(params=None) -> list[dict]:
        from pipelines import steps as p

        return p.matrix_cells(params["benchmarks"], params["modes"])

    @task(execution_timeout=timedelta(hours=6), retries=2, max_active_tis_per_dagrun=4)
    def eval_cell(cell: dict, index: str, matrix_id: str, params=None) -> dict:
        from pipelines import steps as p

        overrides = list(params["overrides"])
        args = p.eval_args(
            cell,
            config=params["config"],
            model=params["checkpoint"],
            index=index,
            out=params["out"],
            run_id=f"{matrix_id}-{cell['benchmark']}-{cell['mode']}",
            engine=params["engine"],
            overrides=overrides,
        )
        if params["ray_address"]:
            args[2:2] = ["--ray-address", params["ray_address"]]
        summary = p.last_json(p.run_pixsearch(args, env=job_env()))
        return {**cell, "run_uri": summary["run_uri"], "aggregate": summary["aggregate"], "errors": summary["errors"]}

    @task(execution_timeout=timedelta(hours=1))
    def report(results: list[dict], matrix_id: str, storage: dict, params=None) -> dict:
        from pipelines import steps as p

        out = f"{params['out']}/reports/{matrix_id}"
        paths = p.last_json(
            p.run_pixsearch(
                ["eval", "report", *[r["run_uri"] for r in results], "--out", out, "--storage", json.dumps(storage)],
                env=job_env(),
            )
        )
        p.write_json(
            f"{out}/matrix.json",
            {"run_id": matrix_id, "checkpoint": params["checkpoint"], "cells": list(results)},
            storage,
        )
        return {"report": out, "files": paths}

    prep = prepare()
    results = eval_cell.partial(index=prep["index"], matrix_id=prep["run_id"]).expand(cell=cells())
    report(results, prep["run_id"], prep["storage"])


benchmark_matrix()

"""training_pipeline: stage-2 data -> stage 1 -> stage 2 -> gating evaluation -> register if it beats the baseline.

    world (optional) -> stage2_data (sensor) -> stage1 -> stage2 -> gate_eval -> gate (short-circuit) -> register

`stage2_data` waits until the stage-2 trajectories (`<data_root>/<stage2_data>`) exist: the data construction
pipeline writes them. Each stage is `pixsearch train --stage N` (DeepSpeed; a retry resumes from the stage's
LATEST checkpoint; a stage whose export exists is not re-run, so a re-run with the same `run_name` only
repeats the gate). The gating evaluation runs the stage-2 export on a benchmark; `gate` compares `metric` of
its aggregate with `baseline` and, only if strictly better, `register` writes `<registry>/<name>.json`
pointing at the export. Otherwise the DAG run still succeeds and `register` is skipped.

Connections: none (storage credentials come from the workers' environment, as for the jobs).
Params: see PARAMS below (defaults = the tiny model on a small SynthCRAG world, a few steps).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from airflow_dags._common import DEFAULT_ARGS, ROOT, WORLD, conf, job_env

PARAMS = {
    "data_root": Param(f"{ROOT}/world", type="string", description="the training data root (data.root)"),
    "stage2_data": Param("stage2/train.jsonl", type="string", description="file under data_root to wait for"),
    "make_world": Param(True, type="boolean", description="write a small SynthCRAG world at data_root if missing"),
    "config": Param(conf("train/tiny-synthcrag.yaml"), type="string", description="the conf/train/*.yaml config"),
    "output": Param(
        f"{ROOT}/train", type="string", description="root: checkpoints and exports under <output>/<run>/store/stage<N>"
    ),
    "run_name": Param("", type="string", description="training run name; empty = the Airflow run id"),
    "train_overrides": Param(
        ["stage1.max_steps=20", "stage2.max_steps=20"],
        type="array",
        description="train config overrides (several processes: engine=torchrun torchrun.nproc_per_node=N)",
    ),
    "eval_config": Param(conf("eval/demo.yaml"), type="string", description="the gating eval's run config"),
    "benchmark": Param("synthcrag", type="string", description="the gating benchmark"),
    "eval_data": Param(f"{ROOT}/world", type="string", description="its gold data"),
    "eval_mode": Param("no_search", type="string", description="decode mode of the gating eval"),
    "eval_index": Param("none", type="string", description="index for the gating eval (none for no_search)"),
    "eval_overrides": Param(["limit=16"], type="array", description="gating eval config overrides"),
    "eval_engine": Param(
        "", type="string", description="the gating eval's engine: ray | sequential; empty = its config's"
    ),
    "metric": Param("all.accuracy", type="string", description="dotted metric of the eval aggregate"),
    "baseline": Param(0.0, type="number", description="register only if metric > baseline"),
    "registry": Param(f"{ROOT}/registry", type="string", description="where registry records go"),
    "model_name": Param("pixsearch-tiny", type="string", description="registry record name (<registry>/<name>.json)"),
}


def _storage(params) -> dict:
    """The train config's `storage:` section (with train_overrides): every task's store."""
    from pipelines import steps as p

    return p.job_storage("train", params["config"], params["train_overrides"])


@dag(
    dag_id="pixsearch_training_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["pixsearch", "deepspeed", "ray"],
    doc_md=__doc__,
)
def training_pipeline():
    @task(execution_timeout=timedelta(minutes=30))
    def world(params=None, run_id=None) -> str:
        from pipelines import steps as p

        if params["make_world"]:
            p.ensure_synthcrag_world(params["data_root"], **WORLD, storage=_storage(params))
        return f"{params['output']}/{p.safe_id(params['run_name'] or run_id)}"

    @task.sensor(poke_interval=60, timeout=timedelta(hours=24).total_seconds(), mode="reschedule")
    def stage2_data(params=None) -> bool:
        from pipelines import steps as p

        return p.exists(f"{params['data_root']}/{params['stage2_data']}", _storage(params))

    def _train(stage: int, run: str, params) -> str:
        from pipelines import steps as p

        export = f"{run}/store/stage{stage}/final"
        if p.exists(f"{export}/config.json", _storage(params)):  # written last by the export: the stage is done
            return export
        args = [
            "train",
            "--stage",
            str(stage),
            "--config",
            params["config"],
            f"data.root={params['data_root']}",
            f"output={run}/store",
            f"run_dir={run}/run",
            *params["train_overrides"],
        ]
        p.run_pixsearch(args, env=job_env())
        return export

    @task(execution_timeout=timedelta(hours=48), retries=2)
    def stage1(run: str, params=None) -> str:
        return _train(1, run, params)

    @task(execution_timeout=timedelta(hours=48), retries=2)
    def stage2(run: str, params=None) -> str:
        return _train(2, run, params)

    @task(execution_timeout=timedelta(hours=6), retries=2)
    def gate_eval(export: str, run: str, params=None) -> dict:
        from pipelines import steps as p

        cell = {"benchmark": params["benchmark"], "data": params["eval_data"], "mode": params["eval_mode"]}
        run_id = p.safe_id(f"gate-{run.rstrip('/').rsplit('/', 1)[-1]}")
        args = p.eval_args(
            cell,
            config=params["eval_config"],
            model=export,
            index=params["eval_index"],
            out=f"{run}/eval",
            run_id=run_id,
            engine=params["eval_engine"],
            overrides=params["eval_overrides"],
        )
        summary = p.last_json(p.run_pixsearch(args, env=job_env()))
        value = p.metric(summary["aggregate"], params["metric"])
        return {
            "checkpoint": export,
            "metric": params["metric"],
            "value": value,
            "baseline": params["baseline"],
            "eval_run": summary["run_uri"],
            "benchmark": params["benchmark"],
            "mode": params["eval_mode"],
        }

    @task.short_circuit(execution_timeout=timedelta(minutes=5))
    def gate(result: dict) -> bool:
        from pipelines import steps as p

        return p.beats(result["value"], result["baseline"])

    @task(execution_timeout=timedelta(minutes=10), retries=3)
    def register(result: dict, params=None) -> str:
        from pipelines import steps as p

        return p.register_checkpoint(params["registry"], params["model_name"], result, _storage(params))

    run = world()
    s1, s2 = stage1(run), stage2(run)
    run >> stage2_data() >> s1 >> s2
    result = gate_eval(s2, run)
    gate(result) >> register(result)


training_pipeline()

"""stage2_data: build the stage-2 trajectories the training pipeline's sensor waits for.

    build (pixsearch data build-stage2; a retry resumes at the first missing part) -> check (manifest, records)

The default params run the offline SynthCRAG path (rule-based stand-in, no LLM) against the index that
pixsearch_index_rebuild publishes, writing `<data_root>/stage2-built/train.jsonl`; point
pixsearch_training_pipeline's `stage2_data` param at `stage2-built/train.jsonl` to train on it. For the paper's
sources set `config` to conf/data/stage2-paper.yaml and the key variable in the workers' environment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from airflow_dags._common import DEFAULT_ARGS, ROOT, conf, job_env

PARAMS = {
    "config": Param(conf("data/stage2-synthcrag.yaml"), type="string", description="the conf/data/*.yaml config"),
    "data_root": Param(f"{ROOT}/world", type="string", description="the world / training data root"),
    "output": Param("stage2-built", type="string", description="output under data_root (or an absolute URI)"),
    "index": Param(f"{ROOT}/store/indices/synthcrag", type="string", description="index the searches run on"),
    "synthcrag_world": Param(True, type="boolean", description="read the SynthCRAG world at data_root as the source"),
    "overrides": Param([], type="array", description="more config overrides (llm.base_url=..., engine=ray)"),
}


@dag(
    dag_id="pixsearch_stage2_data",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["pixsearch", "ray", "llm"],
    doc_md=__doc__,
)
def stage2_data():
    @task(execution_timeout=timedelta(hours=48), retries=3)
    def build(params=None) -> dict:
        from pipelines import steps as p

        out = (
            params["output"]
            if "://" in params["output"] or params["output"].startswith("/")
            else f"{params['data_root']}/{params['output']}"
        )
        world = [f"sources=[{{reader: synthcrag, path: {params['data_root']}}}]"] if params["synthcrag_world"] else []
        args = [
            "data",
            "build-stage2",
            "--config",
            params["config"],
            f"output={out}",
            f"retrieval.retriever.uri={params['index']}",
            *world,
            *params["overrides"],
        ]
        manifest = p.last_json(p.run_pixsearch(args, env=job_env()))
        return {"output": out, "records": manifest["records"], "funnel": manifest["funnel"]["total"]}

    @task(retries=1)
    def check(result: dict) -> str:
        from pipelines import steps as p

        if result["records"] < 1 or not p.exists(f"{result['output']}/manifest.json"):
            raise ValueError(
                f"stage-2 build at {result['output']} produced no trajectories: funnel "
                f"{result['funnel']}; see its quarantine.jsonl"
            )
        return f"{result['output']}/train.jsonl"

    check(build())


stage2_data()

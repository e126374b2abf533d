"""index_rebuild: build a new index version on Spark, verify it, publish it, keep the newest N versions.

    prepare -> build (SparkSubmitOperator: jobs/index.py build ... publish=false) -> verify -> publish -> prune

Runs weekly, or on demand with a corpus URI (trigger with conf {"corpus": "s3://bucket/wiki/*.jsonl"}). The build
never flips CURRENT itself: `verify` re-checks every object of the new version against its manifest and only then
`publish` moves CURRENT, so a failed build or verification leaves the live index untouched. An unchanged corpus
and config give the same version (the build is resumed or reused), so a re-run is cheap. A changed corpus is built
incrementally: embeddings are kept by content hash under `<output>/embeddings/`, so only new or changed passages and
images are embedded, and the trained FAISS quantizer is reused while the drift test passes (the build's manifest
and `verify`'s result record the embedded / reused counts and the quantizer decision); `full_rebuild` re-embeds
and retrains everything.

Connection: `spark_pixsearch` (type spark; host = the master, e.g. spark://head:7077, yarn, k8s://https://...;
undefined = local[*]). Params: see PARAMS below (defaults = the embedded single-machine setup). Storage: the
`storage:` section of the build config (with `overrides`) is used by every task, not only the build.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from airflow_dags._common import (
    DEFAULT_ARGS,
    ROOT,
    SPARK_CONN_ID,
    WORLD,
    PixsearchSparkSubmitOperator,
    conf,
    job_env,
    job_script,
)

PARAMS = {
    "corpus": Param(
        f"{ROOT}/world/corpus/docs.jsonl",
        type="string",
        description="JSONL corpus file, directory or glob (local or s3://); empty = the config's sources",
    ),
    "make_world": Param(
        True,
        type="boolean",
        description="write a small SynthCRAG world at `world` if missing "
        "(the embedded demo corpus; false in production)",
    ),
    "world": Param(f"{ROOT}/world", type="string", description="where make_world writes the SynthCRAG world"),
    "config": Param(conf("index/synthcrag.yaml"), type="string", description="the conf/index/*.yaml build config"),
    "output": Param(f"{ROOT}/store", type="string", description="storage root: <output>/indices/<name>/<version>"),
    "overrides": Param([], type="array", description="extra dotted key=value overrides of the build config"),
    "full_rebuild": Param(
        False,
        type="boolean",
        description="re-embed everything and retrain the quantizer (default: reuse stored embeddings and quantizer)",
    ),
    "keep": Param(3, type="integer", minimum=1, description="versions to keep (the live one is never deleted)"),
}


@dag(
    dag_id="pixsearch_index_rebuild",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["pixsearch", "spark"],
    doc_md=__doc__,
)
def index_rebuild():
    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=30))
    def prepare(params=None, run_id=None) -> dict:
        from pipelines import steps as p

        storage = p.job_storage("index", params["config"], params["overrides"])  # the build config's store
        if params["make_world"]:
            p.ensure_synthcrag_world(params["world"], **WORLD, storage=storage)
        result = f"{params['output']}/airflow/index_rebuild/{p.safe_id(run_id)}/build.json"
        return {
            "args": p.index_build_args(
                params["config"],
                params["output"],
                params["corpus"],
                result,
                params["overrides"],
                incremental=not params["full_rebuild"],
            ),
            "result": result,
            "storage": storage,
        }

    prep = prepare()
    build = PixsearchSparkSubmitOperator(
        task_id="build",
        application=job_script("jobs.index"),
        application_args=prep["args"],
        conn_id=SPARK_CONN_ID,
        name="pixsearch-index-build",
        env_vars=job_env(),
        execution_timeout=timedelta(hours=12),
        retries=2,
    )

    @task(execution_timeout=timedelta(hours=2))
    def verify(result_uri: str, storage: dict) -> dict:
        from pipelines import steps as p

        return {**p.verify_build(result_uri, storage), "storage": storage}

    @task(execution_timeout=timedelta(minutes=10), retries=3)
    def publish(built: dict) -> str:
        from pipelines import steps as p

        return p.publish_build(built, built["storage"])

    @task(execution_timeout=timedelta(hours=1))
    def prune(built: dict, params=None) -> list[str]:
        from pipelines import steps as p

        return p.prune_index(built["index_uri"], params["keep"], built["storage"])

    built = verify(prep["result"], prep["storage"])
    build >> built
    publish(built) >> prune(built)


index_rebuild()

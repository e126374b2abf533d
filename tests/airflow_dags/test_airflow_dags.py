"""The Airflow DAGs: every DAG parses without import errors or heavy imports, and each runs end to end with
dag.test() on the embedded defaults (local Spark, local Ray, local storage) under a tmp root. Airflow runs in
child processes with their own AIRFLOW_HOME (SQLite), so its DB and config never leak into other tests.
About 4 minutes in all on a 2-core machine (Spark index build ~70 s, DeepSpeed stages ~25 s each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexing.manifest import read_current, verify_manifest
from pixsearch_core.records import read_records
from pixsearch_core.storage import ObjectStore

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "airflow_dags"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """An initialised Airflow home; returns (env, root) for child processes."""
    tmp = tmp_path_factory.mktemp("airflow")
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(Path.home()),
        "AIRFLOW_HOME": str(tmp / "home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "PYTHONPATH": str(REPO),
        "PIXSEARCH_AIRFLOW_ROOT": str(tmp / "root"),
        "PIXSEARCH_AIRFLOW_RETRY_DELAY_S": "1",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, cwd=tmp)
    return env, tmp / "root"


def dag_test(airflow, dag: str, dag_id: str, conf: dict) -> dict:
    env, root = airflow
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_airflow_dag_test.py"), str(DAGS / dag), dag_id, json.dumps(conf)],
        env=env,
        cwd=root.parent,
        capture_output=True,
        text=True,
        timeout=400,
    )
    (root.parent / f"{dag_id}.log").write_text(proc.stdout + proc.stderr)  # kept for debugging
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["state"] == "success", (result, proc.stdout[-5000:])
    return result


PARSE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = [m for m in ("torch", "pyspark", "ray", "deepspeed", "faiss", "transformers") if m in sys.modules]
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": heavy,
                  "dags": {d: {t.task_id: {"up": sorted(t.upstream_task_ids), "retries": t.retries,
                                           "timeout": t.execution_timeout.total_seconds()
                                           if t.execution_timeout else None}
                               for t in dag.tasks} for d, dag in bag.dags.items()}}))
"""


def test_every_dag_parses_light_with_retries_and_timeouts(airflow):
    env, root = airflow
    out = subprocess.run([sys.executable, "-c", PARSE, str(DAGS)], env=env, capture_output=True, text=True)
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {} and parsed["heavy"] == []
    dags = parsed["dags"]
    assert set(dags) == {
        "pixsearch_index_rebuild",
        "pixsearch_benchmark_matrix",
        "pixsearch_training_pipeline",
        "pixsearch_stage2_data",
    }
    for tasks in dags.values():
        for name, t in tasks.items():
            assert t["retries"] >= 1 and t["timeout"], name
    ir = dags["pixsearch_index_rebuild"]
    assert ir["verify"]["up"] == ["build", "prepare"] and ir["publish"]["up"] == ["verify"]
    assert ir["prune"]["up"] == ["publish", "verify"]
    tp = dags["pixsearch_training_pipeline"]
    assert tp["stage1"]["up"] == ["stage2_data", "world"] and "stage1" in tp["stage2"]["up"]
    assert tp["register"]["up"] == ["gate", "gate_eval"]
    cli = subprocess.run([str(BIN / "airflow"), "dags", "list-import-errors"], env=env, capture_output=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr


@pytest.fixture(scope="module")
def rebuilt(airflow):
    """index_rebuild end to end, with an old version already there (to be pruned) and live."""
    env, root = airflow
    old = root / "store" / "indices" / "synthcrag" / "v-old"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"schema_version": 1, "created_at": "2000-01-01T00:00:00Z"}))
    (old.parent / "CURRENT").write_text("v-old\n")
    result = dag_test(
        airflow,
        "index_rebuild.py",
        "pixsearch_index_rebuild",
        {
            "world": str(root / "world"),
            "corpus": str(root / "world/corpus/docs.jsonl"),
            "output": str(root / "store"),
            "keep": 1,
        },
    )
    return result, old.parent


def test_index_rebuild_builds_verifies_publishes_and_prunes(airflow, rebuilt):
    result, index = rebuilt
    env, root = airflow
    assert set(result["tasks"].values()) == {"success"}
    builds = list((root / "store" / "airflow" / "index_rebuild").glob("*/build.json"))
    assert len(builds) == 1
    built = json.loads(builds[0].read_text())
    assert built["published"] is False  # the Spark job did not publish: the DAG did after verifying
    assert read_current(ObjectStore(), str(index)) == built["version"]
    assert sorted(p.name for p in index.iterdir()) == ["CURRENT", built["version"]]  # v-old pruned
    manifest = json.loads((index / built["version"] / "manifest.json").read_text())
    n_docs = sum(1 for _ in (root / "world/corpus/docs.jsonl").open())
    assert manifest["corpus"]["counts"]["documents"] == n_docs
    assert verify_manifest(ObjectStore(), str(index / built["version"])) > 0


def test_benchmark_matrix_runs_every_cell_on_the_pinned_version(airflow, rebuilt):
    env, root = airflow
    result = dag_test(
        airflow,
        "benchmark_matrix.py",
        "pixsearch_benchmark_matrix",
        {
            "benchmarks": {"synthcrag": str(root / "world")},
            "index": str(rebuilt[1]),
            "modes": ["full", "no_search"],
            "out": str(root / "eval"),
            "run_id": "m1",
            "overrides": ["limit=4"],
        },
    )
    assert sorted(result["tasks"]) == ["cells", "eval_cell[0]", "eval_cell[1]", "prepare", "report"]
    pinned = str(rebuilt[1] / read_current(ObjectStore(), str(rebuilt[1])))
    for mode in ("full", "no_search"):
        run = root / "eval" / "runs" / f"m1-synthcrag-{mode}"
        meta = json.loads((run / "run.json").read_text())
        assert meta["index"] == pinned and meta["mode"] == mode and meta["model"] == "oracle"
        records = read_records(ObjectStore(), str(run))
        assert len(records) == 4 and all(r["scores"]["correct"] for r in records)  # oracle: the gold answers
    matrix = json.loads((root / "eval" / "reports" / "m1" / "matrix.json").read_text())
    assert [(c["mode"], c["aggregate"]["all"]["accuracy"]) for c in matrix["cells"]] == [
        ("full", 1.0),
        ("no_search", 1.0),
    ]
    assert (root / "eval" / "reports" / "m1" / "report.md").is_file()


def test_training_pipeline_registers_only_a_checkpoint_that_beats_the_baseline(airflow):
    env, root = airflow
    conf = {
        "data_root": str(root / "world"),
        "eval_data": str(root / "world"),
        "output": str(root / "train"),
        "run_name": "t1",
        "registry": str(root / "registry"),
        "baseline": -1,
        "model_name": "good",
        "train_overrides": ["stage1.max_steps=2", "stage2.max_steps=2", "save_every=100"],
        "eval_overrides": ["limit=4", "decode.max_new_tokens=16"],
        "eval_engine": "sequential",
    }  # Ray: the matrix
    result = dag_test(airflow, "training_pipeline.py", "pixsearch_training_pipeline", conf)
    assert set(result["tasks"].values()) == {"success"}
    record = json.loads((root / "registry" / "good.json").read_text())
    assert record["checkpoint"] == str(root / "train/t1/store/stage2/final")
    assert (Path(record["checkpoint"]) / "trainable.safetensors").is_file()
    records = read_records(ObjectStore(), record["eval_run"])
    assert len(records) == 4
    assert record["value"] == pytest.approx(sum(bool(r["scores"]["correct"]) for r in records) / 4)
    # the same run against an unbeatable baseline: stages reused, gate closes, nothing registered
    result = dag_test(
        airflow, "training_pipeline.py", "pixsearch_training_pipeline", {**conf, "baseline": 2, "model_name": "bad"}
    )
    assert result["tasks"]["gate"] == "success" and result["tasks"]["register"] == "skipped"
    assert not (root / "registry" / "bad.json").exists()


def test_stage2_data_builds_what_the_training_sensor_waits_for(airflow, tmp_path):
    """The stage-2 data DAG against a real local chat-completions server (the test's scripted model)."""
    from tests.search_fixtures import tiny_index
    from tests.stage2_fakes import FakeLLM, write_okvqa

    llm = FakeLLM()
    try:
        okvqa = write_okvqa(tmp_path / "okvqa")
        cfg = tmp_path / "stage2.yaml"
        cfg.write_text(
            json.dumps(
                {
                    "output": "unused",
                    "prompts": str(REPO / "conf" / "data" / "prompts" / "stage2"),
                    "sources": [{"reader": "okvqa", "path": str(okvqa), "images": str(okvqa / "images")}],
                    "llm": {"kind": "openai", "base_url": llm.url, "model": "fake"},
                    "retrieval": {"retriever": {"kind": "index", "uri": "unused", "k": 2}, "max_passage_tokens": 64},
                    "n_candidates": 3,
                }
            )
        )
        conf = {
            "config": str(cfg),
            "data_root": str(tmp_path / "data"),
            "output": "stage2-built",
            "index": tiny_index(tmp_path),
            "synthcrag_world": False,
        }
        result = dag_test(airflow, "stage2_data.py", "pixsearch_stage2_data", conf)
    finally:
        llm.close()
    assert result["tasks"]["check"] == "success"
    lines = (tmp_path / "data" / "stage2-built" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 4 and llm.requests > 0

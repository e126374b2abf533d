"""Lineage: a real chain (index build -> two training stages -> eval run from the stage-2 export -> report) and
`pixsearch lineage` printing it down to the corpus fingerprint; reports refuse runs on different data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pixsearch_core import lineage
from pixsearch_core.config import load_config
from pixsearch_core.evaluation.config import EvalRunConfig
from pixsearch_core.evaluation.driver import RunRequest, run_eval
from pixsearch_core.evaluation.report import MixedRunsError, write_report
from pixsearch_core.storage import ObjectStore, join
from tests._train_fixtures import clear_dist_env, fast_config, write_world
from tests.eval_run_helpers import write_crag_gold

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _cli(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(ROOT)}
    res = subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_code_version_names_this_checkout():
    v = lineage.code_version()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert v["commit"] == head and isinstance(v["dirty"], bool) and v["package"]


def test_digest_of_a_folder_follows_its_bytes(tmp_path):
    store = ObjectStore()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one")
    first = lineage.digest(store, str(tmp_path / "d"))
    (tmp_path / "d" / "a.txt").write_text("two")
    assert lineage.digest(store, str(tmp_path / "d")) != first
    assert lineage.digest(store, str(tmp_path / "nothing")) is None


def test_report_refuses_runs_on_different_data(tmp_path):
    store = ObjectStore()
    gold_a, gold_b = write_crag_gold(tmp_path / "a.jsonl", 4), write_crag_gold(tmp_path / "b.jsonl", 5)
    cfg = EvalRunConfig(output=str(tmp_path / "out"))
    runs = [
        run_eval(cfg, RunRequest("crag_mm", str(g), "oracle", "none", "full", f"r{i}", sequential=True))["run_uri"]
        for i, g in enumerate((gold_a, gold_b))
    ]
    with pytest.raises(MixedRunsError, match="differ in benchmark data") as err:
        write_report(runs, str(tmp_path / "report"), store)
    assert runs[0] in str(err.value) and runs[1] in str(err.value)
    paths = write_report(runs, str(tmp_path / "report"), store, allow_mixed=True)
    assert "### Lineage" in open(paths["tables"][0]).read()
    # the CLI says the same in one line and exits non-zero
    res = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "eval", "report", *runs, "--out", str(tmp_path / "r2")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.abspath(ROOT)},
    )
    assert res.returncode != 0 and "differ in benchmark data" in res.stderr


def test_resume_with_changed_data_is_refused(tmp_path):
    gold = write_crag_gold(tmp_path / "g.jsonl", 4)
    cfg = EvalRunConfig(output=str(tmp_path / "out"))
    run_eval(cfg, RunRequest("crag_mm", str(gold), "oracle", "none", "full", "r", sequential=True))
    write_crag_gold(gold, 6)
    with pytest.raises(ValueError, match="benchmark data changed"):
        run_eval(cfg, RunRequest("crag_mm", str(gold), "oracle", "none", "full", "r", sequential=True))


def test_full_chain_report_to_corpus(tmp_path, train_env):
    from indexing.build import build_index
    from indexing.config import IndexBuildConfig
    from pixsearch_core.training.trainer import train

    world = write_world(str(tmp_path / "world"))
    store = ObjectStore()
    index_cfg = load_config(
        IndexBuildConfig,
        os.path.join(ROOT, "conf", "index", "synthcrag.yaml"),
        [
            f"output={tmp_path}/store",
            "engine=sequential",
            f"cache_dir={tmp_path}/cache",
            f"sources=[{{kind: jsonl, path: {world}/corpus/docs.jsonl}}]",
        ],
    )
    built = build_index(index_cfg)
    index_uri = join(str(tmp_path / "store"), "indices", "synthcrag")
    cfg = fast_config(world, tmp_path, "stage1.max_steps=2", "stage2.max_steps=2", "save_every=2")
    train(cfg, 1)
    clear_dist_env()
    export = train(cfg, 2)["export"]
    trained = lineage.read(store, export)
    assert trained["stage"] == 2 and trained["step"] == 2
    assert trained["init_checkpoint"] == join(str(tmp_path / "store"), "stage1", "final")
    assert all(d["digest"] for d in trained["data"]), trained["data"]  # every dataset's shard manifest

    eval_cfg = load_config(
        EvalRunConfig,
        os.path.join(ROOT, "conf", "eval", "demo.yaml"),
        [f"output={tmp_path}/runs", "limit=2", "decode.max_new_tokens=8", "model.device=cpu"],
    )
    run = run_eval(eval_cfg, RunRequest("synthcrag", world, export, index_uri, "full", "chain", sequential=True))
    run_lin = lineage.read(store, run["run_uri"])
    assert run_lin["index_version"] == built["manifest"]["version"]
    assert run_lin["checkpoint_digest"] == lineage.digest(store, join(export, "trainable.safetensors"))
    write_report([run["run_uri"]], str(tmp_path / "report"), store)

    text = _cli("lineage", str(tmp_path / "report"))
    fingerprint = json.loads(store.get_bytes(join(built["version_uri"], "manifest.json")))["corpus"]["fingerprint"]
    for expected in (
        "report",
        run["run_uri"],
        f"checkpoint {export}: stage 2",
        "stage 1 step 2",
        f"index {index_uri} version {built['manifest']['version']}",
        f"corpus fingerprint {fingerprint}",
        run_lin["data_digest"][:12],
    ):
        assert expected in text, (expected, text)
    tree = json.loads(_cli("lineage", str(tmp_path / "report"), "--json"))
    assert tree["runs"][0]["checkpoint"]["init"]["stage"] == 1

"""pixsearch_core.engines: one `engine:` key per job config (old spellings deprecated but working), the code the
workers get (zip, version), where Ray goes (address, RAY_ADDRESS, local), storage settings that reach the DAG
steps, and storage errors as one line. Fast: no engine is started here (tests/test_cluster.py starts them)."""

from __future__ import annotations

import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from indexing.config import IndexBuildConfig
from jobs import cli
from pipelines import steps as p
from pixsearch_core.config import ConfigError, load_config
from pixsearch_core.engines import RayConfig, code_root, code_version, code_zip, ray_address
from pixsearch_core.evaluation.config import EvalRunConfig
from pixsearch_core.training.config import TrainConfig
from tests.eval_run_helpers import write_crag_gold

ROOT = Path(__file__).resolve().parents[2]


def test_every_job_config_names_its_engine_with_one_key():
    assert load_config(IndexBuildConfig, ROOT / "conf/index/demo.yaml").engine == "spark"
    assert load_config(EvalRunConfig, ROOT / "conf/eval/demo.yaml").engine == "ray"
    train = load_config(
        TrainConfig, ROOT / "conf/train/tiny-synthcrag.yaml", ["engine=torchrun", "torchrun.nproc_per_node=3"]
    )
    assert (train.engine, train.torchrun.nproc_per_node) == ("torchrun", 3)
    with pytest.raises(ConfigError, match="engine"):
        load_config(EvalRunConfig, ROOT / "conf/eval/demo.yaml", ["engine=spark"])


def test_old_runner_key_still_works_with_a_deprecation_warning(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = load_config(IndexBuildConfig, ROOT / "conf/index/demo.yaml", ["runner=sequential"])
    assert cfg.engine == "sequential"
    assert "DEPRECATED" in caplog.text and "runner" in caplog.text and "engine: sequential" in caplog.text
    assert "replaces `engine: spark`" in caplog.text  # the shipped config says engine: spark; the old key wins


def test_eval_sequential_flag_and_train_nproc_map_to_engine_overrides(caplog, tmp_path):
    args = cli.build_parser().parse_args(["train", "--stage", "1", "--config", "c.yaml", "--nproc", "2"])
    from jobs.train import _engine_overrides

    with caplog.at_level(logging.WARNING):
        assert _engine_overrides(args) == ["engine=torchrun", "torchrun.nproc_per_node=2"]
    assert "DEPRECATED: train --nproc 2" in caplog.text
    gold = write_crag_gold(tmp_path / "validation.jsonl", n=2)  # --sequential still runs, in-process
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        code = cli.main(
            [
                "eval",
                "run",
                "--sequential",
                "--benchmark",
                "crag_mm",
                "--data",
                str(gold),
                "--model",
                "oracle",
                "--index",
                "none",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert code == 0 and "engine=sequential" in caplog.text


def test_code_zip_holds_the_packages_and_version_names_the_commit():
    with zipfile.ZipFile(code_zip()) as z:
        names = set(z.namelist())
    assert {"pixsearch_core/engines/__init__.py", "indexing/build.py", "jobs/cli.py"} <= names
    assert not any("__pycache__" in n for n in names)
    version = code_version()
    assert version["package"]
    if (code_root() / ".git").exists():  # a checkout (CI, a clone): the commit it runs
        head = subprocess.run(
            ["git", "-C", str(code_root()), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert version["commit"] == head and isinstance(version["dirty"], bool)


def test_ray_address_comes_from_config_then_RAY_ADDRESS(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(RayConfig()) is None  # a private local Ray
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert ray_address(RayConfig()) == "auto"
    assert ray_address(RayConfig(address="ray://head:10001")) == "ray://head:10001"


def test_no_module_forces_ray_auth_off():
    hits = subprocess.run(
        ["grep", "-rln", "RAY_AUTH_MODE", "pixsearch_core", "indexing", "jobs", "pipelines", "airflow_dags"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert hits == ""


@pytest.mark.s3
def test_dag_steps_use_the_storage_of_the_job_config(s3_server, tmp_path):
    """An endpoint given only in the job config (no AWS_ENDPOINT_URL) reaches every step's store."""
    from pixsearch_core.storage import ObjectStore, StorageConfig

    ObjectStore(StorageConfig(endpoint_url=s3_server)).make_bucket("s3://steps")
    conf = tmp_path / "index.yaml"
    conf.write_text(f"storage: {{endpoint_url: '{s3_server}', addressing_style: path}}\n")
    storage = p.job_storage("index", str(conf))
    assert storage["endpoint_url"] == s3_server and storage["addressing_style"] == "path"
    p.write_json("s3://steps/a/build.json", {"x": 1}, storage)
    assert p.exists("s3://steps/a/build.json", storage) and p.read_json("s3://steps/a/build.json", storage) == {"x": 1}
    p.register_checkpoint("s3://steps/registry", "m", {"checkpoint": "c"}, storage)
    assert p.read_json("s3://steps/registry/m.json", storage)["checkpoint"] == "c"


@pytest.mark.s3
def test_a_missing_bucket_is_one_error_line(s3_server, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    base = [sys.executable, "-m", "jobs.cli"]
    args = ["store", "cp", str(ROOT / "README.md"), "s3://no-such-bucket/x", "--endpoint-url", s3_server]
    proc = subprocess.run(base + args, env=env, capture_output=True, text=True, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "ERROR pixsearch:" in lines[0] and "no-such-bucket" in lines[0] and "NoSuchBucket" in lines[0]
    verbose = subprocess.run(base + ["--verbose"] + args, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


@pytest.mark.ray
def test_a_local_ray_listens_on_the_loopback_only(ray_session):
    """No address: a private Ray bound to 127.0.0.1 (not the host's address), Ray's token auth not switched off."""
    import os

    assert ray_session.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert os.environ.get("RAY_AUTH_MODE") != "disabled"

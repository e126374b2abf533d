"""Real engines started outside the jobs, as README's "Cluster deployment" section starts them: a local S3 server
(moto_server), a Spark standalone master + worker, a Ray head (`ray start`) and the `airflow` CLI with a fresh
AIRFLOW_HOME. The commands are read from README's `<!-- cluster-test: NAME -->` blocks and run with bash, so the
README is what is tested; every result is compared with a local run. Marked `cluster` (`make test-cluster`);
3.7-5.5 minutes on a shared 2-core machine. Ports: PIXSEARCH_CLUSTER_PORT_BASE (default 18300) + 0..99."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pixsearch_core.records import read_records
from pixsearch_core.storage import ObjectStore, StorageConfig

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASE = int(os.environ.get("PIXSEARCH_CLUSTER_PORT_BASE", "18300"))
PORTS = {
    "S3_PORT": 1,
    "SPARK_PORT": 2,
    "SPARK_UI_PORT": 3,
    "SPARK_WORKER_PORT": 4,
    "SPARK_WORKER_UI_PORT": 5,
    "RAY_PORT": 10,
    "RAY_CLIENT_PORT": 11,
    "RAY_AGENT_PORT": 12,
    "SERVE_PORT": 20,
    "RAY_MIN_WORKER_PORT": 40,
    "RAY_MAX_WORKER_PORT": 99,
}
PORTS = {k: str(BASE + v) for k, v in PORTS.items()}
VOLATILE = {"timings", "replica"}


def readme_blocks() -> dict[str, str]:
    text = (REPO / "README.md").read_text()
    return dict(re.findall(r"<!-- cluster-test: (\w+) -->\n```bash\n(.*?)```", text, flags=re.S))


def _installed_root(env: dict) -> Path | None:
    """Where the environment's own `import pixsearch_core` resolves (the package install), without PYTHONPATH."""
    code = "import pixsearch_core, pathlib; print(pathlib.Path(pixsearch_core.__file__).resolve().parents[1])"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 else None


def _wait_port(port: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Cluster:
    """Runs README blocks in one directory; each block sees the `export`s of the blocks run before it."""

    def __init__(self, root: Path):
        self.root, self.blocks, self.exports = root, readme_blocks(), []
        self.local_eval: dict = {}
        self.env = {
            **os.environ,
            **PORTS,
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "RAY_TMPDIR": f"/tmp/rayc-{uuid.uuid4().hex[:8]}",
        }
        for k in ("RAY_ADDRESS", "AWS_ENDPOINT_URL", "AIRFLOW_HOME", "PYTHONPATH"):
            self.env.pop(k, None)
        if _installed_root(self.env) != REPO:  # a second checkout beside the installed one (not as deployed)
            self.env["PYTHONPATH"] = str(REPO)
        (root / "conf").symlink_to(REPO / "conf")

    def run(self, name: str, timeout: float = 600) -> subprocess.CompletedProcess:
        block = self.blocks[name]
        script = "set -euo pipefail\n" + "\n".join(self.exports) + "\n" + block
        proc = subprocess.run(
            ["bash", "-c", script], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in self.root.glob("*.log"))
        assert proc.returncode == 0, f"block {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}{logs}"
        self.exports += [line for line in block.splitlines() if line.startswith("export ")]
        return proc

    def storage(self) -> ObjectStore:
        return ObjectStore(
            StorageConfig(
                endpoint_url=f"http://127.0.0.1:{PORTS['S3_PORT']}", addressing_style="path", region="us-east-1"
            )
        )

    def pixsearch(self, *args: str, extra_env: dict | None = None, timeout: float = 600) -> str:
        env = {**self.env, **KEYS, **(extra_env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc.stdout

    def teardown(self) -> None:
        for name in ("spark-worker", "spark-master", "s3"):
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text()), signal.SIGTERM)
                except ProcessLookupError:
                    pass
        _kill_ray(self.env["RAY_TMPDIR"])


def _kill_ray(temp_dir: str) -> None:
    """Stop only the Ray processes of this test's head (their command lines name its temp dir), not others'."""
    for _ in range(3):
        found = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if temp_dir.encode() in cmd:
                found = True
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not found:
            return
        time.sleep(1)


KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    saved = {k: os.environ.get(k) for k in KEYS}
    os.environ.update(KEYS)  # this process reads the S3 server too (the same test keys the README exports)
    try:
        c.run("s3")
        _wait_port(PORTS["S3_PORT"])
        c.run("bucket")
        c.run("spark")
        _wait_port(PORTS["SPARK_PORT"])
        _wait_port(PORTS["SPARK_WORKER_PORT"])
        c.run("ray", timeout=180)
        yield c
    finally:
        c.teardown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _shards(manifest: dict) -> dict:
    return {
        k: [(s["name"], s["count"], s["id_start"], s["id_end"], s["docstore"]["sha256"]) for s in v["shards"]]
        for k, v in manifest["indices"].items()
    }


def _manifest(store: ObjectStore, index: str) -> dict:
    from indexing.manifest import read_manifest, resolve

    return read_manifest(store, resolve(store, index))


def test_index_build_on_spark_standalone_to_s3_equals_a_local_build(cluster):
    cluster.run("index")
    log = (cluster.root / "index-build.log").read_text()
    origins = re.findall(r"executors ran the code at (.*)", log)
    assert origins and all("pixsearch-code-" in o for o in origins), origins  # the shipped zip, not an install
    remote = _manifest(cluster.storage(), "s3://pixsearch/indices/synthcrag")
    assert remote["stats"]["engine"] == "spark" and remote["code"]["package"]
    cluster.pixsearch(
        "index",
        "build",
        "--config",
        "conf/index/synthcrag.yaml",
        "engine=sequential",
        "sources=[{kind: jsonl, path: world/corpus/docs.jsonl}]",
        "output=local",
    )
    local = _manifest(ObjectStore(), str(cluster.root / "local/indices/synthcrag"))
    assert remote["version"] == local["version"]  # the engine and the store do not change what is built
    assert _shards(remote) == _shards(local) and remote["corpus"]["counts"] == local["corpus"]["counts"]


def _records(store: ObjectStore, run_uri: str) -> list[dict]:
    rows = [{k: v for k, v in r.items() if k not in VOLATILE} for r in read_records(store, run_uri)]
    return sorted(rows, key=lambda r: r["sample_id"])


def test_eval_run_joins_ray_by_RAY_ADDRESS_and_equals_a_local_run(cluster):
    proc = cluster.run("eval")
    assert f"joined the Ray cluster at 127.0.0.1:{PORTS['RAY_PORT']}" in proc.stderr, proc.stderr[-2000:]
    on_ray = json.loads(proc.stdout.strip().splitlines()[-1])
    out = cluster.pixsearch(
        "eval",
        "run",
        "--config",
        "conf/eval/demo.yaml",
        "--benchmark",
        "synthcrag",
        "--data",
        "world",
        "--model",
        "oracle",
        "--index",
        "s3://pixsearch/indices/synthcrag",
        "--run-id",
        "local",
        "--out",
        str(cluster.root / "evals"),
        "engine=sequential",
        f"storage.endpoint_url=http://127.0.0.1:{PORTS['S3_PORT']}",
        "storage.addressing_style=path",
    )
    local = json.loads(out.strip().splitlines()[-1])
    assert on_ray["aggregate"] == local["aggregate"] and on_ray["total"] == local["total"] > 0
    cluster.local_eval = local
    remote_rows = _records(cluster.storage(), on_ray["run_uri"])
    assert remote_rows == _records(ObjectStore(), local["run_uri"])


def test_search_serve_on_ray_answers_and_stops_cleanly_on_sigterm(cluster):
    env = {**cluster.env, **KEYS, "RAY_ADDRESS": f"127.0.0.1:{PORTS['RAY_PORT']}", "RAY_AUTH_MODE": "token"}
    s3 = f"http://127.0.0.1:{PORTS['S3_PORT']}"
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.cli",
            "search",
            "serve",
            "--index",
            "s3://pixsearch/indices/synthcrag",
            "--endpoint-url",
            s3,
            "--ray",
            "--port",
            PORTS["SERVE_PORT"],
            "--cache-dir",
            str(cluster.root / "cache"),
        ],
        cwd=cluster.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_port(PORTS["SERVE_PORT"], timeout=180)
        hits = cluster.pixsearch(
            "search", "query", "--url", f"http://127.0.0.1:{PORTS['SERVE_PORT']}", "--text", "who made it", "-k", "2"
        )
        assert len(hits.strip().splitlines()) == 2
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err[-3000:]
    assert "SIGTERM received" not in err and "Traceback" not in err and "stopping" in err


def test_airflow_dags_import_as_deployed_and_run_against_the_cluster(cluster):
    listed = cluster.run("airflow", timeout=300).stdout
    for dag in ("pixsearch_index_rebuild", "pixsearch_benchmark_matrix", "pixsearch_training_pipeline"):
        assert dag in listed
    runs = cluster.run("dags", timeout=1500).stdout
    assert "success" in runs
    env = {**cluster.env, "AIRFLOW_HOME": str(cluster.root / "airflow-home")}
    for dag in ("pixsearch_index_rebuild", "pixsearch_benchmark_matrix", "pixsearch_training_pipeline"):
        out = subprocess.run(
            [str(BIN / "airflow"), "dags", "list-runs", dag, "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            cwd=cluster.root,
        )
        rows = next(line for line in reversed(out.stdout.splitlines()) if line.startswith("["))  # after warnings
        states = [r["state"] for r in json.loads(rows)]
        assert states == ["success"], (dag, states, (cluster.root / f"dag-{dag.split('_')[1]}.log"))
    store = cluster.storage()  # storage settings came only from the DAG's job-config overrides
    dag_index = _manifest(store, "s3://pixsearch/airflow/indices/synthcrag")
    local = _manifest(ObjectStore(), str(cluster.root / "local/indices/synthcrag"))
    assert _shards(dag_index) == _shards(local)
    matrix = json.loads(store.get_bytes("s3://pixsearch/airflow/eval/reports/matrix/matrix.json"))
    assert matrix["cells"][0]["aggregate"] == cluster.local_eval["aggregate"]  # the same oracle run, via the DAG
    registered = json.loads(store.get_bytes("s3://pixsearch/airflow/registry/pixsearch-tiny.json"))
    assert registered["checkpoint"].endswith("/stage2/final")


APP = """
import sys
from pixsearch_core.engines import SparkConfig, spark_session
spark = spark_session(SparkConfig(master="local[1]", app_name="from-config"))
print("APP", spark.sparkContext.appName)
spark.stop()
"""


@pytest.mark.parametrize("name, expected", [(None, "from-config"), ("from-submit", "from-submit")])
def test_spark_submit_names_the_application_from_config_unless_given_name(tmp_path, name, expected):
    script = tmp_path / "app.py"
    script.write_text(APP)
    cmd = [str(BIN / "spark-submit"), "--master", "local[1]", *(["--name", name] if name else []), str(script)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"APP {expected}" in proc.stdout

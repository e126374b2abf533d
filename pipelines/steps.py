"""Helpers the Airflow DAGs (airflow_dags/) call: command lines for the `pixsearch` jobs, running them, reading
their results, the gating rule and the checkpoint registry. No Airflow, Spark, Ray or DeepSpeed imports here: the
DAG files stay orchestration only and this module stays testable without a scheduler.

    out = run_pixsearch(["eval", "run", "--config", ...])      # a child process; raises JobFailed on exit != 0
    summary = last_json(out)                                    # the job's one-line JSON summary

Storage: every helper that touches the object store takes `storage`, the `storage:` section of the job config
the task runs (`job_storage("index", config, overrides)`, a plain dict so that it travels through XCom), so an
S3 endpoint or addressing style set in that config reaches every step, not only the job.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import subprocess
import sys
import time
from typing import Any

from pixsearch_core.storage import ObjectStore, StorageConfig, join

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """A `pixsearch` child process exited non-zero; names the command, exit code and the end of its stderr."""


def pixsearch_cmd(args: list[str]) -> list[str]:
    """`pixsearch ARGS` as an argv run by this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "jobs.cli", *[str(a) for a in args]]


def run_pixsearch(args: list[str], timeout: float | None = None, env: dict[str, str] | None = None) -> str:
    """Run `pixsearch ARGS`; its stderr (logs) goes to this process's stderr, its stdout is returned."""
    cmd = pixsearch_cmd(args)
    log.info("running: pixsearch %s", " ".join(cmd[3:]))
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise JobFailed(f"pixsearch {' '.join(cmd[3:])} exited {proc.returncode}; see the log above")
    log.info("pixsearch %s finished in %.0fs", cmd[3], time.monotonic() - t0)
    return proc.stdout


def last_json(stdout: str) -> dict[str, Any]:
    """The last non-empty line of a job's stdout, parsed as JSON (eval run/report print one summary line)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the job printed nothing on stdout; expected a JSON summary line")
    return json.loads(lines[-1])


def safe_id(text: str) -> str:
    """An Airflow run id (manual__2026-01-01T00:00:00+00:00) as a path- and run-id-safe name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


# ---------------------------------------------------------------- storage
def job_storage(kind: str, config: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The `storage:` section of a job config (conf/<kind>/*.yaml + dotted overrides), validated, as a dict."""
    from jobs.config import schema_for
    from pixsearch_core.config import load_config

    return load_config(schema_for(kind), config, list(overrides)).storage.model_dump(mode="json")


def store_for(storage: dict[str, Any] | StorageConfig | None) -> ObjectStore:
    """An ObjectStore with a job's storage settings (None = the defaults: local paths, AWS)."""
    if storage is None or isinstance(storage, StorageConfig):
        return ObjectStore(storage)
    return ObjectStore(StorageConfig.model_validate(storage))


# ---------------------------------------------------------------- data
def ensure_synthcrag_world(
    root: str,
    seed: int = 0,
    n_entities: int = 24,
    n_makers: int = 4,
    n_places: int = 4,
    scenes_per_entity: int = 1,
    questions_per_scene: int = 1,
    storage=None,
) -> str:
    """Write a small SynthCRAG world at `root` unless one of the current format is there (world.json); returns
    root. A world of an older format (`synthcrag.write.FORMAT`) is stale and rewritten."""
    from pixsearch_core.synthcrag import WorldConfig, generate_world
    from pixsearch_core.synthcrag.write import FORMAT, write_synthcrag

    store = store_for(storage)
    if store.exists(join(root, "world.json")):
        found = json.loads(store.get_bytes(join(root, "world.json"))).get("format")
        if found == FORMAT:
            log.info("SynthCRAG world already at %s", root)
            return root
        log.warning("SynthCRAG world at %s has format %s, not %s: stale, rewriting it", root, found, FORMAT)

    world = generate_world(WorldConfig(seed=seed, n_entities=n_entities, n_makers=n_makers, n_places=n_places))
    counts = write_synthcrag(world, root, store, scenes_per_entity, questions_per_scene)
    log.info("wrote a SynthCRAG world at %s: %s", root, counts)
    return root


def exists(uri: str, storage=None) -> bool:
    return store_for(storage).exists(uri)


# ---------------------------------------------------------------- index
def index_build_args(
    config: str, output: str, corpus: str, result_uri: str, overrides: list[str], incremental: bool = True
) -> list[str]:
    """Arguments of `jobs/index.py` for a build that verifies but does not publish (the DAG publishes).
    `incremental` (the default) reuses the embeddings and the trained quantizer kept under `<output>/embeddings`
    from earlier builds; False re-embeds and retrains everything."""
    args = ["build", "--config", config, "--result", result_uri, f"output={output}", "publish=false"]
    if not incremental:
        args += ["embeddings.reuse=false", "faiss.reuse_quantizer=false"]
    if corpus:
        args.append(f"sources=[{{kind: jsonl, path: '{corpus}'}}]")
    return args + list(overrides)


def read_json(uri: str, storage=None) -> dict[str, Any]:
    return json.loads(store_for(storage).get_bytes(uri))


def write_json(uri: str, data: dict[str, Any], storage=None) -> str:
    store_for(storage).put_bytes(uri, json.dumps(data, indent=2, sort_keys=True).encode())
    return uri


def verify_build(result_uri: str, storage=None) -> dict[str, Any]:
    """Check every object of the version a build wrote (its --result JSON) against the manifest; returns it."""
    from indexing.manifest import read_current, read_manifest, verify_manifest

    built = read_json(result_uri, storage)
    store = store_for(storage)
    n = verify_manifest(store, built["version_uri"])
    live = read_current(store, built["index_uri"])
    reuse = {
        kind: {**idx.get("embeddings", {}), "quantizer": idx.get("quantizer", {}).get("quantizer")}
        for kind, idx in read_manifest(store, built["version_uri"])["indices"].items()
    }
    log.info("verified %d objects of %s (live: %s); embeddings and quantizer: %s", n, built["version_uri"], live, reuse)
    return {**built, "objects": n, "previous": live, "reuse": reuse}


def publish_build(built: dict[str, Any], storage=None) -> str:
    """Flip CURRENT to a verified build's version; returns the version URI."""
    from indexing.manifest import publish

    publish(store_for(storage), built["index_uri"], built["version"])
    return built["version_uri"]


def prune_index(index_uri: str, keep: int, storage=None) -> list[str]:
    from indexing.versions import prune_versions

    return prune_versions(store_for(storage), index_uri, keep)


def pin_index(index: str, version: str = "", storage=None) -> str:
    """A version URI for `index`: `<index>/<version>` if a version is given, else the live one (CURRENT). `none`
    and a search service URL (the `--index` shorthand of pixsearch_core/retrieval/backends.py) have no versions
    to pin and come back as they are."""
    from indexing.manifest import read_manifest, resolve
    from pixsearch_core.retrieval.backends import shorthand

    if shorthand(index)["kind"] != "index":
        if version:
            raise ValueError(f"index_version {version!r} given, but {index!r} is not an index URI to pin")
        return index
    store = store_for(storage)
    uri = join(index, version) if version else resolve(store, index)
    read_manifest(store, uri)  # fails loudly on a missing or foreign version
    return uri


# ---------------------------------------------------------------- eval
def matrix_cells(benchmarks: dict[str, str], modes: list[str]) -> list[dict[str, str]]:
    """One cell per (benchmark, mode): [{benchmark, data, mode}] in a stable order."""
    if not benchmarks or not modes:
        raise ValueError(f"the matrix needs at least one benchmark and one mode (got {benchmarks!r}, {modes!r})")
    return [{"benchmark": b, "data": benchmarks[b], "mode": m} for b, m in itertools.product(benchmarks, modes)]


def eval_args(
    cell: dict[str, str],
    *,
    config: str,
    model: str,
    index: str | None,
    out: str,
    run_id: str,
    engine: str = "",
    overrides: list[str] | None = None,
    retriever: str | None = None,
) -> list[str]:
    """`eval run` arguments of one matrix cell. The backend: `index` (the shorthand: an index URI, a search service
    URL or none) or `retriever` (a kind whose settings are retriever.* overrides), exactly one of them; `engine`
    (ray | sequential; empty = the config's) becomes an override."""
    if (index is None) == (retriever is None):
        raise ValueError(f"give exactly one of index ({index!r}) and retriever ({retriever!r})")
    which = ["--index", index] if index is not None else ["--retriever", retriever]
    args = [
        "eval",
        "run",
        "--config",
        config,
        "--benchmark",
        cell["benchmark"],
        "--data",
        cell["data"],
        "--model",
        model,
        *which,
        "--mode",
        cell["mode"],
        "--out",
        out,
        "--run-id",
        run_id,
    ]
    return args + ([f"engine={engine}"] if engine else []) + list(overrides or [])


def metric(aggregate: dict[str, Any], path: str) -> float:
    """A dotted metric (all.accuracy) of an eval aggregate; names the available keys when it is missing."""
    node: Any = aggregate
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = sorted(node) if isinstance(node, dict) else []
            raise KeyError(f"metric {path!r}: no {part!r} in the eval aggregate; available: {keys}")
        node = node[part]
    return float(node)


# ---------------------------------------------------------------- registry
def beats(value: float, baseline: float) -> bool:
    """The gate: strictly better than the baseline (higher is better)."""
    return value > baseline


def register_checkpoint(registry: str, name: str, record: dict[str, Any], storage=None) -> str:
    """Write `<registry>/<name>.json` (the checkpoint's URI, its gating metric and where it came from)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ValueError(f"registry name {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    uri = join(registry, f"{name}.json")
    write_json(uri, {**record, "registered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, storage)
    log.info("registered %s -> %s", uri, record.get("checkpoint"))
    return uri

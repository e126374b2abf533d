"""`run_eval`: the library half of `pixsearch eval run`.

    summary = run_eval(cfg, RunRequest(benchmark="synthcrag", data="out/synthcrag", model="tiny",
                                       index="out/index/demo", mode="full"))

Loads the benchmark's examples, takes the run's lease (`lease.py`: one live driver per run id; a second one is
refused with `LeaseHeld`, a dead one's run is taken over once its lease expires), opens `<output>/runs/<run_id>/`
(run.json: benchmark, data, mode, model, index version, config hash), skips ids that already have an answered
record or `max_attempts` failed ones (resume), runs the rest sequentially or on Ray, and writes each batch's
records through `RecordWriter` as they arrive (tqdm with ETA on the driver). A re-run with different settings
under the same run id is refused by RecordWriter.

The index version is pinned once per run: `CURRENT` is read when the run starts (or taken from run.json when it
resumes) and every replica opens that version's directory, so a publish during the run cannot mix versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from pixsearch_core.evaluation.config import EvalRunConfig, mode_options
from pixsearch_core.evaluation.lease import RunLease
from pixsearch_core.evaluation.sample_runner import BenchmarkSpec, RunnerSpec
from pixsearch_core.records import RecordWriter, read_run_meta, run_dir, scan_records
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

ORACLE = "oracle"  # --model oracle: answers with the gold answer (a pipeline smoke test, no model needed)


@dataclass
class RunRequest:
    benchmark: str
    data: str
    model: str
    index: str
    mode: str = "full"
    run_id: str | None = None
    sequential: bool = False
    runner: RunnerSpec | None = None  # overrides the runner chosen from `model` (tests, custom runners)


def index_version(store: ObjectStore, index: str) -> str:
    """The live version of an index: `<index>/CURRENT` if present, else the manifest's hash, else the URI."""
    if index in ("", "none"):
        return "none"
    for name in ("CURRENT",):
        uri = join(index, name)
        if store.exists(uri):
            return store.get_bytes(uri).decode().strip()
    uri = join(index, "manifest.json")
    if store.exists(uri):
        return "manifest-" + hashlib.sha256(store.get_bytes(uri)).hexdigest()[:12]
    return index


def identity_hash(cfg: EvalRunConfig) -> str:
    """The config hash of what changes results: not the Ray layout, output root, limit, flush size, retry count or
    lease ttl (so a run may be resumed wider, elsewhere, extended past an earlier --limit, or retried more)."""
    base = cfg.model_copy(update={"ray": cfg.ray.__class__(), "output": "", "limit": None, "flush_every": 16})
    blob = json.dumps(base.model_dump(mode="json", exclude={"max_attempts", "lease_ttl_s"}), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pinned_index(store: ObjectStore, index: str, run_uri: str) -> tuple[str, str]:
    """(index version label, the URI every replica opens): the version recorded in run.json when the run is
    resumed, else the live one now; `<index>/<version>` when the index has a CURRENT, else `index` itself."""
    if store.exists(join(run_uri, "run.json")):
        version = read_run_meta(store, run_uri).get("index_version") or index_version(store, index)
    else:
        version = index_version(store, index)
    if index not in ("", "none") and store.exists(join(index, "CURRENT")):
        return version, join(index, version)
    return version, index


def default_run_id(req: RunRequest, cfg: EvalRunConfig) -> str:
    model = req.model.rstrip("/").rsplit("/", 1)[-1]
    return f"{req.benchmark}-{model}-{req.mode}-{identity_hash(cfg)[:8]}"


def runner_spec(req: RunRequest, cfg: EvalRunConfig, index_uri: str | None = None) -> RunnerSpec:
    """The runner replicas build; `index_uri` is the pinned version they search (default: `req.index`)."""
    if req.runner is not None:
        return req.runner
    if req.model == ORACLE:
        return RunnerSpec("pixsearch_core.evaluation.scripted_runner:ScriptedRunner", {})
    return RunnerSpec("pixsearch_core.evaluation.model_runner:DecodingRunner", {
        "model": req.model, "index": index_uri or req.index, "decode": cfg.decode_options(req.mode),
        "model_size": cfg.model.size, "model_overrides": cfg.model.overrides, "device": cfg.model.device,
        "storage": cfg.storage.model_dump(), "prompt_template": cfg.prompt_template,
        "region": cfg.region.model_dump()})


def run_meta(req: RunRequest, cfg: EvalRunConfig, version: str, spec: RunnerSpec) -> dict[str, Any]:
    """What identifies a run (a resumed run must match it)."""
    return {"benchmark": req.benchmark, "data": req.data, "split": cfg.split, "mode": req.mode,
            "decode": cfg.decode_options(req.mode), "model": req.model, "index": req.index,
            "index_version": version, "config_hash": identity_hash(cfg),
            "runner": spec.target}


def _examples(req: RunRequest, cfg: EvalRunConfig, bench_spec: BenchmarkSpec) -> list:
    bench = bench_spec.build()
    examples = list(bench.load(req.data, cfg.split))
    if cfg.limit:
        examples = examples[:cfg.limit]
    if not examples:
        raise ValueError(f"no {req.benchmark} examples in {req.data} (split {cfg.split or bench.default_split!r})")
    return examples


def run_eval(cfg: EvalRunConfig, req: RunRequest) -> dict[str, Any]:
    """Run (or resume) an evaluation; returns {run_uri, total, skipped, written, errors, retried, records,
    damaged_parts, index_version, aggregate}. Raises LeaseHeld when another live driver has the run."""
    mode_options(req.mode)  # validate before any work
    store = ObjectStore(cfg.storage)
    bench_spec = BenchmarkSpec(req.benchmark, dict(cfg.benchmark_options))
    examples = _examples(req, cfg, bench_spec)
    runner_spec(req, cfg).resolve()  # a bad runner target fails before the run directory exists
    run_uri = run_dir(cfg.output, req.run_id or default_run_id(req, cfg))
    with RunLease(store, run_uri, cfg.lease_ttl_s) as lease:
        version, index_uri = pinned_index(store, req.index, run_uri)
        spec = runner_spec(req, cfg, index_uri)
        with RecordWriter(store, run_uri, meta=run_meta(req, cfg, version, spec), flush_every=cfg.flush_every,
                          max_attempts=cfg.max_attempts, guard=lease.check) as w:
            todo = [ex for ex in examples if not w.is_done(ex.id)]
            written, errors = _run_todo(req, cfg, bench_spec, spec, todo, w)
        scan = scan_records(store, run_uri)
    retried = sum(ex.id in scan.errors for ex in todo)
    scores = [r["scores"] for r in scan.records if r.get("status") == "ok"]
    aggregate = bench_spec.build().aggregate(scores) if scores else {}
    return {"run_uri": run_uri, "total": len(examples), "skipped": len(examples) - len(todo), "written": written,
            "errors": errors, "retried": retried, "records": len(scan.records), "damaged_parts": scan.damaged,
            "index_version": version, "aggregate": aggregate}


def _run_todo(req: RunRequest, cfg: EvalRunConfig, bench_spec: BenchmarkSpec, spec: RunnerSpec, todo: list,
              w: RecordWriter) -> tuple[int, int]:
    """Run the samples still to do, writing their records as batches arrive; (records written, errors)."""
    log.info("run %s: %d to run (%s)", w.run_uri, len(todo), "sequential" if req.sequential else "ray")
    written = errors = 0
    if not todo:
        return written, errors
    from pixsearch_core.evaluation import executors as execute

    stream = (execute.sequential(spec, bench_spec, todo, cfg.ray.batch_size) if req.sequential
              else execute.on_ray(spec, bench_spec, todo, cfg.ray))
    with tqdm(total=len(todo), desc=f"eval {req.benchmark} {req.mode}", unit="sample") as bar:
        for records in stream:
            written += w.write_many(records)
            errors += sum(r["status"] == "error" for r in records)
            bar.update(len(records))
    return written, errors

"""`run_eval`: the library half of `pixsearch eval run`.

    summary = run_eval(cfg, RunRequest(benchmark="synthcrag", data="out/synthcrag", model="tiny",
                                       index="out/index/demo", mode="full"))

Loads the benchmark's examples, opens `<output>/runs/<run_id>/` (run.json: benchmark, data, mode, model, index
version, config hash), skips ids that already have a record (resume), runs the rest sequentially or on Ray, and
writes each batch's records through `RecordWriter` as they arrive (tqdm with ETA on the driver). A re-run with
different settings under the same run id is refused by RecordWriter.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from pixsearch_core.evaluation.config import EvalRunConfig, mode_options
from pixsearch_core.evaluation.sample_runner import BenchmarkSpec, RunnerSpec
from pixsearch_core.records import RecordWriter, read_records, run_dir
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
    sequential: bool = False  # deprecated: the config's `engine: sequential`
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
    """The config hash of what changes results: not the Ray layout, output root, limit or flush size (so a run
    may be resumed wider, elsewhere, or extended past an earlier --limit)."""
    return cfg.model_copy(update={"ray": cfg.ray.__class__(), "engine": "ray", "output": "", "limit": None,
                                  "flush_every": 16}).config_hash()


def default_run_id(req: RunRequest, cfg: EvalRunConfig) -> str:
    model = req.model.rstrip("/").rsplit("/", 1)[-1]
    return f"{req.benchmark}-{model}-{req.mode}-{identity_hash(cfg)[:8]}"


def runner_spec(req: RunRequest, cfg: EvalRunConfig) -> RunnerSpec:
    if req.runner is not None:
        return req.runner
    if req.model == ORACLE:
        return RunnerSpec("pixsearch_core.evaluation.scripted_runner:ScriptedRunner", {})
    return RunnerSpec("pixsearch_core.evaluation.model_runner:DecodingRunner", {
        "model": req.model, "index": req.index, "decode": cfg.decode_options(req.mode),
        "model_size": cfg.model.size, "model_overrides": cfg.model.overrides, "device": cfg.model.device,
        "storage": cfg.storage.model_dump(), "prompt_template": cfg.prompt_template,
        "region": cfg.region.model_dump()})


def run_meta(req: RunRequest, cfg: EvalRunConfig, store: ObjectStore, spec: RunnerSpec) -> dict[str, Any]:
    """What identifies a run (a resumed run must match it)."""
    return {"benchmark": req.benchmark, "data": req.data, "split": cfg.split, "mode": req.mode,
            "decode": cfg.decode_options(req.mode), "model": req.model, "index": req.index,
            "index_version": index_version(store, req.index), "config_hash": identity_hash(cfg),
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
    """Run (or resume) an evaluation; returns {run_uri, total, skipped, written, errors, aggregate}."""
    mode_options(req.mode)  # validate before any work
    store = ObjectStore(cfg.storage)
    bench_spec = BenchmarkSpec(req.benchmark, dict(cfg.benchmark_options), cfg.storage.model_dump(mode="json"))
    examples = _examples(req, cfg, bench_spec)
    spec = runner_spec(req, cfg)
    spec.resolve()
    run_uri = run_dir(cfg.output, req.run_id or default_run_id(req, cfg))
    sequential = req.sequential or cfg.engine == "sequential"
    with RecordWriter(store, run_uri, meta=run_meta(req, cfg, store, spec), flush_every=cfg.flush_every) as w:
        todo = [ex for ex in examples if not w.is_done(ex.id)]
        log.info("run %s: %d examples, %d already done, %d to run (%s)", run_uri, len(examples),
                 len(examples) - len(todo), len(todo), "sequential" if sequential else "ray")
        written = errors = 0
        if todo:
            from pixsearch_core.evaluation import executors as execute

            stream = (execute.sequential(spec, bench_spec, todo, cfg.ray.batch_size) if sequential
                      else execute.on_ray(spec, bench_spec, todo, cfg.ray))
            with tqdm(total=len(todo), desc=f"eval {req.benchmark} {req.mode}", unit="sample") as bar:
                for records in stream:
                    written += w.write_many(records)
                    errors += sum(r["status"] == "error" for r in records)
                    bar.update(len(records))
    records = read_records(store, run_uri)
    scores = [r["scores"] for r in records if r["status"] == "ok"]
    aggregate = bench_spec.build().aggregate(scores) if scores else {}
    return {"run_uri": run_uri, "total": len(examples), "skipped": len(examples) - len(todo), "written": written,
            "errors": errors, "records": len(records), "aggregate": aggregate}

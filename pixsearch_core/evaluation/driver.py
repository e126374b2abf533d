"""`run_eval`: the library half of `pixsearch eval run`.

    summary = run_eval(cfg, RunRequest(benchmark="synthcrag", data="out/synthcrag", model="tiny",
                                       index="out/index/demo", mode="full"))

`index` (the `--index URI|none|URL` shorthand) and `retriever` (`--retriever KIND`) fill the config's retriever
section; `mode` None lets the config's decode section decide (pixsearch_core/evaluation/config.py: precedence).
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
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pixsearch_core import lineage
from pixsearch_core.config import ConfigError, validate_config
from pixsearch_core.evaluation.config import EvalRunConfig
from pixsearch_core.evaluation.lease import RunLease
from pixsearch_core.evaluation.sample_runner import ORACLE, BenchmarkSpec, RunnerSpec
from pixsearch_core.records import RecordWriter, read_run_meta, run_dir, scan_records
from pixsearch_core.registry import names
from pixsearch_core.retrieval.backends import RetrieverConfig, retriever_version, shorthand
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


@dataclass
class RunRequest:
    benchmark: str
    data: str
    model: str
    index: str | None = None  # --index shorthand: an index URI, an http(s):// service URL or none
    mode: str | None = None  # --mode; None = the config's decode section decides
    run_id: str | None = None
    sequential: bool = False  # deprecated: the config's `engine: sequential`
    runner: RunnerSpec | None = None  # overrides the runner chosen from `model` (tests, custom runners)
    retriever: str | None = None  # --retriever KIND (its settings: the config's retriever section)


def _is_mask_benchmark(name: str) -> bool:
    from pixsearch_core.registry import get

    try:
        return get("benchmark", name).prediction_kind == "mask"
    except (KeyError, ValueError):
        return False  # an unknown benchmark is reported where it is loaded


def resolve(cfg: EvalRunConfig, req: RunRequest) -> EvalRunConfig:
    """`cfg` with the command line's retriever choice and model name checked against it and filled in."""
    problems, chosen = [], cfg.retriever
    flag = {"kind": req.retriever} if req.retriever else shorthand(req.index) if req.index is not None else None
    flag_name = f"--retriever {req.retriever}" if req.retriever else f"--index {req.index}"
    if flag is not None:
        clash = [
            f"{k}={getattr(chosen, k)!r}"
            for k, v in flag.items()
            if k in chosen.model_fields_set and getattr(chosen, k) != v
        ]
        if clash:
            problems.append(
                f"{flag_name} disagrees with the config's retriever.{', retriever.'.join(clash)}; "
                "give the retriever once"
            )
        else:
            chosen = validate_config(
                RetrieverConfig,
                {**chosen.model_dump(exclude_unset=True), **flag},
                f"the config's retriever section with {flag_name}",
            )
    if chosen.kind is None and _is_mask_benchmark(req.benchmark):
        chosen = RetrieverConfig(kind="none")  # segmentation benchmarks search nothing
    if chosen.kind is None:
        problems.append("no retriever: pass --index URI|none or --retriever KIND, or set retriever.kind")
    size = cfg.model.size
    if req.model in names("model") and "size" in cfg.model.model_fields_set and size != req.model:
        problems.append(f"--model {req.model} disagrees with the config's model.size={size!r}; give the model once")
    if not _is_mask_benchmark(req.benchmark) and req.model not in names("model"):
        trained = _trained_restate_question(req.model)
        if trained is not None and trained != cfg.decode.restate_question:
            problems.append(
                f"the model at {req.model} was trained with data.restate_question={trained} (its lineage.json) but "
                f"decode.restate_question={cfg.decode.restate_question}; set decode.restate_question={str(trained).lower()}"
            )
    if problems:
        raise ConfigError("eval run: command line vs config", problems)
    return cfg.model_copy(update={"retriever": chosen})


def _trained_restate_question(model_uri: str) -> bool | None:
    """`data.restate_question` of the training run that exported `model_uri` (prompts.restate), from the export's
    lineage.json; None when there is no such record (a registry model, an export from elsewhere)."""
    try:
        record = lineage.read(ObjectStore(), model_uri)
    except Exception:  # an unreadable location is the model loader's error to report, with its own message
        return None
    value = record
    for key in ("config", "data", "restate_question"):  # any other shape: no record to check against
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, bool) else None


def identity_hash(cfg: EvalRunConfig) -> str:
    """The config hash of what changes results: not the engine or Ray layout, output root, limit, flush size, retry
    count, lease ttl or picture cache (so a run may be resumed wider, elsewhere, extended past an earlier --limit,
    or retried more), nor the retriever's local cache directory, timeout or retries."""
    where = cfg.retriever.model_copy(update={"cache_dir": "", "timeout": 30.0, "retries": 2})  # not what it finds
    base = cfg.model_copy(
        update={
            "ray": cfg.ray.__class__(),
            "engine": "ray",
            "output": "",
            "limit": None,
            "flush_every": 16,
            "retriever": where,
            "images": cfg.images.__class__(),
        }
    )
    blob = json.dumps(base.model_dump(mode="json", exclude={"max_attempts", "lease_ttl_s"}), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pinned_retriever(store: ObjectStore, r: RetrieverConfig, run_uri: str) -> tuple[str, RetrieverConfig]:
    """(index version label, the retriever every replica opens): the version recorded in run.json when the run is
    resumed, else the live one now; an index with a CURRENT is opened at `<index>/<version>`."""
    if store.exists(join(run_uri, "run.json")):
        version = read_run_meta(store, run_uri).get("index_version") or retriever_version(r, store)
    else:
        version = retriever_version(r, store)
    if r.kind == "index" and r.uri and store.exists(join(r.uri, "CURRENT")):
        return version, r.model_copy(update={"uri": join(r.uri, version)})
    return version, r


def default_run_id(req: RunRequest, cfg: EvalRunConfig) -> str:
    model = req.model.rstrip("/").rsplit("/", 1)[-1]
    return f"{req.benchmark}-{model}-{cfg.mode(req.mode)}-{identity_hash(cfg)[:8]}"


def runner_spec(req: RunRequest, cfg: EvalRunConfig, retriever: RetrieverConfig | None = None) -> RunnerSpec:
    """The runner replicas build; `retriever` is the pinned one they search (default: the config's)."""
    if req.runner is not None:
        return req.runner
    if req.model == ORACLE:
        return RunnerSpec("pixsearch_core.evaluation.scripted_runner:ScriptedRunner", {})
    return RunnerSpec(
        "pixsearch_core.evaluation.model_runner:DecodingRunner",
        {
            "model": req.model,
            "retriever": (retriever or cfg.retriever).model_dump(mode="json", exclude_unset=True),
            "decode": cfg.decode_options(req.mode),
            "model_size": cfg.model.size,
            "model_overrides": cfg.model.build_overrides(),
            "device": cfg.model.device,
            "storage": cfg.storage.model_dump(),
            "template": cfg.template,
            "pictures": {**cfg.images.model_dump(), "cache": cfg.picture_cache()},
        },
    )


def benchmark_spec(req: RunRequest, cfg: EvalRunConfig) -> BenchmarkSpec:
    """The benchmark with its options; benchmarks that carry pictures (`takes_image_cache`) get the cache prefix."""
    from pixsearch_core.registry import get

    options = dict(cfg.benchmark_options)
    if getattr(get("benchmark", req.benchmark), "takes_image_cache", False):
        options.setdefault("image_cache", cfg.picture_cache())
    return BenchmarkSpec(req.benchmark, options, cfg.storage.model_dump(mode="json"))


def run_meta(req: RunRequest, cfg: EvalRunConfig, version: str, spec: RunnerSpec) -> dict[str, Any]:
    """What identifies a run (a resumed run must match it)."""
    r = cfg.retriever
    return {
        "benchmark": req.benchmark,
        "data": req.data,
        "split": cfg.split,
        "mode": cfg.mode(req.mode),
        "decode": cfg.decode_options(req.mode),
        "model": req.model,
        "index": r.uri or r.kind,
        "retriever": r.kind,
        "index_version": version,
        "config_hash": identity_hash(cfg),
        "runner": spec.target,
    }


def judge_identity(cfg: EvalRunConfig) -> dict[str, Any]:
    """Who decided right and wrong: the benchmark's judge settings (model, prompt digest) or exact match."""
    judge = cfg.benchmark_options.get("judge")
    if not judge:
        return {"kind": "official scorer (no LLM judge)"}
    if isinstance(judge, dict):
        prompt = judge.get("prompt_file")
        digest = hashlib.sha256(Path(prompt).read_bytes()).hexdigest() if prompt else None
        return {"kind": "llm", "model": judge.get("model"), "base_url": judge.get("base_url"), "prompt_sha256": digest}
    return {"kind": str(judge)}


def _examples(req: RunRequest, cfg: EvalRunConfig, bench) -> list:
    examples = list(bench.load(req.data, cfg.split))
    if cfg.limit:
        examples = examples[: cfg.limit]
    if not examples:
        raise ValueError(f"no {req.benchmark} examples in {req.data} (split {cfg.split or bench.default_split!r})")
    return examples


def run_eval(cfg: EvalRunConfig, req: RunRequest) -> dict[str, Any]:
    """Run (or resume) an evaluation; returns {run_uri, total, skipped, written, errors, retried, records,
    damaged_parts, index_version, aggregate}. Raises LeaseHeld when another live driver has the run. Mask
    benchmarks (RefCOCO*, ADE20K, COCO-Stuff) run the model's segmentation (`evaluation.segmentation`)."""
    from pixsearch_core.evaluation import segmentation as seg

    store = ObjectStore(cfg.storage)
    bench_spec = benchmark_spec(req, cfg)
    bench = bench_spec.build()
    masks = seg.is_mask_benchmark(bench)
    if masks:  # searches nothing: no retriever, no decode mode
        seg.check_request(req, bench)
        cfg = cfg.model_copy(update={"retriever": RetrieverConfig(kind="none")})
        req.index = None
    cfg = resolve(cfg, req)
    cfg.decode_options(req.mode)  # an unknown or conflicting mode fails before any work
    examples = _examples(req, cfg, bench)
    run_uri = run_dir(cfg.output, req.run_id or default_run_id(req, cfg))
    seg_spec = None
    if masks:
        examples, seg_spec = seg.setup_run(bench, examples, req, cfg, store, run_uri)
        seg_spec.resolve()
    else:
        runner_spec(req, cfg).resolve()  # a bad runner target fails before the run directory exists
    with RunLease(store, run_uri, cfg.lease_ttl_s) as lease:
        version, retriever = pinned_retriever(store, cfg.retriever, run_uri)
        spec = seg_spec or runner_spec(req, cfg, retriever)
        meta = run_meta(req, cfg, version, spec)
        if masks:  # the report aggregates with the same options (e.g. miou_mode)
            meta["benchmark_options"] = dict(cfg.benchmark_options)
        with RecordWriter(
            store, run_uri, meta=meta, flush_every=cfg.flush_every, max_attempts=cfg.max_attempts, guard=lease.check
        ) as w:
            lineage.record_run(
                store,
                run_uri,
                lineage.run_lineage(
                    store,
                    model=req.model,
                    index=meta["index"],
                    index_version=version,
                    data=req.data,
                    decode=meta["decode"],
                    judge=judge_identity(cfg),
                ),
            )
            todo = [ex for ex in examples if not w.is_done(ex.id)]
            score = (lambda stream: seg.score_batches(stream, todo, bench, store)) if masks else None
            written, errors = _run_todo(req, cfg, bench_spec, spec, todo, w, score)
        scan = scan_records(store, run_uri)
    retried = sum(ex.id in scan.errors for ex in todo)
    scores = [r["scores"] for r in scan.records if r.get("status") == "ok"]
    aggregate = bench.aggregate(scores) if scores else {}
    return {
        "run_uri": run_uri,
        "total": len(examples),
        "skipped": len(examples) - len(todo),
        "written": written,
        "errors": errors,
        "retried": retried,
        "records": len(scan.records),
        "damaged_parts": scan.damaged,
        "index_version": version,
        "aggregate": aggregate,
    }


def _run_todo(
    req: RunRequest,
    cfg: EvalRunConfig,
    bench_spec: BenchmarkSpec,
    spec: RunnerSpec,
    todo: list,
    w: RecordWriter,
    score=None,
) -> tuple[int, int]:
    """Run the samples still to do, writing their records as batches arrive; (records written, errors)."""
    sequential = req.sequential or cfg.engine == "sequential"
    log.info("run %s: %d to run (%s)", w.run_uri, len(todo), "sequential" if sequential else "ray")
    written = errors = 0
    if not todo:
        return written, errors
    from pixsearch_core.evaluation import executors as execute

    stream = (
        execute.sequential(spec, bench_spec, todo, cfg.ray.batch_size)
        if sequential
        else execute.on_ray(spec, bench_spec, todo, cfg.ray)
    )
    if score is not None:  # segmentation: scored on the driver from the prediction PNGs
        stream = score(stream)
    with tqdm(total=len(todo), desc=f"eval {req.benchmark} {cfg.mode(req.mode)}", unit="sample") as bar:
        for records in stream:
            written += w.write_many(records)
            errors += sum(r["status"] == "error" for r in records)
            bar.update(len(records))
    return written, errors

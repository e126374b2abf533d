"""The per-sample work of an eval run, shared by the Ray path and the sequential path.

A `SampleRunner` is model-agnostic: `setup()` loads whatever is heavy (model, searcher) once per replica, and
`run_batch(examples) -> outputs` answers a batch, one dict per example in order:

    {"answer": str, "searches": [{"hop", "modality", "text", "box", "mask_rle", "evidence_ids", "latency_s"}],
     "mask_rle": {...} | None, "trajectory": {...} | None, "timings": {...}}   # or {"error": "..."}

`process_batch` wraps a runner: a batch that raises is re-run one example at a time, so one failing sample becomes
a `status="error"` record (with the error text) and never takes its neighbours down; a sample one of whose
searches the backend failed to answer (`"error": "search_failed"`) is an error record too, never a scored answer
built on "no results" (an outage must not read as lower accuracy); every answered sample is scored with the
benchmark's own `score`. Runners cross process boundaries as a `RunnerSpec` (import path +
JSON-able kwargs) and examples as JSON, so a replica builds its own runner and benchmark.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pixsearch_core.benchmarks.base import Benchmark, Example

log = logging.getLogger(__name__)

ORACLE = "oracle"  # --model oracle: answers with the gold answer (a pipeline smoke test, no model needed)

#: record fields that legitimately differ between two runs of the same samples (Ray vs sequential, reruns)
VOLATILE_FIELDS = ("timings", "replica")


class SampleRunner(Protocol):
    def setup(self) -> None: ...

    def run_batch(self, examples: list[Example]) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RunnerSpec:
    """How to build a runner anywhere: `target` is "module:Class", `kwargs` JSON-able constructor arguments."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> type:
        """The runner class (checked on the driver before any replica starts)."""
        module, _, name = self.target.partition(":")
        if not name:
            raise ValueError(f"runner target {self.target!r} must be 'module:Class'")
        cls = getattr(importlib.import_module(module), name, None)
        if cls is None:
            raise ValueError(f"runner target {self.target!r}: module {module!r} has no {name!r}")
        return cls

    def build(self) -> SampleRunner:
        return self.resolve()(**self.kwargs)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    storage: dict[str, Any] | None = None  # the run's StorageConfig fields: where gold data and masks are read

    def build(self) -> Benchmark:
        from pixsearch_core.registry import get
        from pixsearch_core.storage import ObjectStore, StorageConfig

        store = ObjectStore(StorageConfig.model_validate(self.storage or {}))
        return get("benchmark", self.name)(store=store, **self.options)


def example_to_json(ex: Example) -> str:
    d = asdict(ex)
    if d["mask"] is not None and not isinstance(d["mask"], str):
        d["mask"] = None  # only mask references (URIs) travel; arrays stay with the reader
    return json.dumps(d, sort_keys=True, default=str)


def example_from_json(blob: str) -> Example:
    return Example(**json.loads(blob))


def _base_record(ex: Example) -> dict[str, Any]:
    return {
        "sample_id": ex.id,
        "question": ex.question,
        "gold": list(ex.answers),
        "image": ex.image,
        "gold_mask": ex.mask if isinstance(ex.mask, str) else None,
        "egocentric": ex.metadata.get("egocentric"),
        "question_type": ex.metadata.get("question_type"),
        "gold_query_types": ex.metadata.get("query_types"),
        # the target's document where the benchmark knows it (SynthCRAG); other benchmarks' records lack the key
        **({"gold_doc_id": ex.metadata["gold_doc_id"]} if ex.metadata.get("gold_doc_id") else {}),
    }


def _error_record(ex: Example, error: str) -> dict[str, Any]:
    return {
        **_base_record(ex),
        "status": "error",
        "error": error,
        "answer": None,
        "scores": None,
        "n_searches": 0,
        "searches": [],
        "mask_rle": None,
        "trajectory": None,
    }


def _answered_record(ex: Example, out: dict[str, Any], bench: Benchmark) -> dict[str, Any]:
    answer = out.get("answer")
    if not isinstance(answer, str):
        raise TypeError(f"runner output for {ex.id!r} has no string 'answer' (got {type(answer).__name__})")
    if bench.prediction_kind == "mask":  # scored on the driver from the PNG written (evaluation.segmentation)
        if not isinstance(out.get("prediction"), str):
            raise TypeError(f"runner output for {ex.id!r} has no 'prediction' (the URI of its mask PNG)")
        scores = None
    else:
        scores = bench.score(ex, answer)
    searches = list(out.get("searches") or [])
    extra = {k: out[k] for k in ("prediction", "seg") if k in out}
    return {
        **_base_record(ex),
        "status": "ok",
        "error": None,
        "answer": answer,
        "scores": scores,
        "n_searches": len(searches),
        "searches": searches,
        "mask_rle": out.get("mask_rle"),
        "trajectory": out.get("trajectory"),
        **extra,
    }


def search_failure(out: dict[str, Any]) -> str | None:
    """Why the sample's evidence is not trustworthy: a search the backend failed to answer (the decoder went on
    with an empty information block), or None. Such a sample is an error, not a wrong answer."""
    searches = list(out.get("searches") or [])
    failed = [s for s in searches if isinstance(s, dict) and s.get("error") == "search_failed"]
    if not failed:
        return None
    issues = (out.get("trajectory") or {}).get("issues") or []
    detail = next(
        (i.get("detail") for i in issues if isinstance(i, dict) and i.get("kind") == "search_failed"),
        "no detail recorded",
    )
    return (
        f"search backend failed on {len(failed)} of {len(searches)} searches (first at hop "
        f"{failed[0].get('hop')}): {detail}"
    )


def _one(ex: Example, out: dict[str, Any], bench: Benchmark) -> dict[str, Any]:
    if out.get("error"):
        return _error_record(ex, str(out["error"]))
    failure = search_failure(out)
    if failure:
        log.warning("sample %s: %s", ex.id, failure)
        return _error_record(ex, failure)
    try:
        return _answered_record(ex, out, bench)
    except Exception as e:  # a bad output or a scorer failure: this sample only
        log.warning("sample %s: %s", ex.id, e)
        return _error_record(ex, f"{type(e).__name__}: {e}")


def _run_guarded(runner: SampleRunner, examples: list[Example]) -> list[dict[str, Any]]:
    """run_batch; if it raises, each example alone, turning a failure into {"error": ...} for that one."""
    try:
        outs = runner.run_batch(examples)
        if len(outs) != len(examples):
            raise RuntimeError(f"run_batch returned {len(outs)} outputs for {len(examples)} examples")
        return outs
    except Exception as e:
        if len(examples) == 1:
            log.warning("sample %s failed: %s", examples[0].id, e)
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            return [{"error": tb}]
        log.info("batch of %d failed (%s); retrying one at a time", len(examples), e)
        return [_run_guarded(runner, [ex])[0] for ex in examples]


def process_batch(
    runner: SampleRunner, bench: Benchmark, examples: list[Example], replica: str = "local"
) -> list[dict[str, Any]]:
    """Records for a batch: answered and scored, or status="error"; wall time per sample in `timings`."""
    t0 = time.perf_counter()
    outs = _run_guarded(runner, examples)
    wall = (time.perf_counter() - t0) / max(len(examples), 1)
    records = []
    for ex, out in zip(examples, outs):
        rec = _one(ex, out, bench)
        rec["timings"] = {**(out.get("timings") or {}), "batch_wall_per_sample_s": wall}
        rec["replica"] = replica
        records.append(rec)
    return records

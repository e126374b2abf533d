"""The driver half of a segmentation run (paper Tables 2-3): RefCOCO/+/g and ADE20K / COCO-Stuff from the model's masks.

`run_eval` hands mask benchmarks (`prediction_kind == "mask"`) to the functions here:

- `prepare`: each example's image as a full URI (REFER: `<images>/<file_name>`; ADE20K: `<root>/images/<split>/
  <stem>.jpg`; COCO-Stuff: `<images>/<stem>.jpg`), the first one checked so a wrong layout fails before any work;
- `runner_spec`: a `SegmentationRunner` (evaluation/segmentation_runner.py) that prompts the model as the stage-1
  data do and writes one PNG per example under `<run>/predictions/` in the layout `pixsearch eval score` reads;
- `score_batches`: scores each record on the driver from the PNG the replica wrote, with the benchmark's own scorer
  and the driver's gold examples: exactly what `pixsearch eval score --predictions <run>/predictions` computes.

Error records (a sample whose image cannot be read, ...) are left out of the run's aggregate as in text runs;
`eval score` scores a missing PNG as an empty prediction, so the two agree when the run has no errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import Field

from pixsearch_core.benchmarks.base import Benchmark, Example
from pixsearch_core.config import Config
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

RUNNER = "pixsearch_core.evaluation.segmentation_runner:SegmentationRunner"
REFER = ("refcoco", "refcoco+", "refcocog", "synthcrag_refer")
SEMSEG = ("ade20k", "coco_stuff")
#: where REFER images are looked for under --data when `segmentation.images` is not set (LISA's refer_seg layout)
REFER_IMAGE_DIRS = ("images/mscoco/images/train2014", "images/train2014", "train2014", "images")
STUFF_IMAGE_DIRS = ("images/val2017", "val2017_images", "images")


class SegEvalConfig(Config):
    """How a segmentation benchmark is prompted and turned into prediction PNGs (`segmentation:` in conf/eval)."""

    images: str | None = Field(
        None,
        description="image directory (REFER: COCO train2014; COCO-Stuff: COCO val2017);"
        " null = look under --data (ADE20K: images/<split> of the dataset)",
    )
    class_names: str | None = Field(
        None,
        description="class list file (ADE20K objectInfo150.txt, COCO-Stuff "
        "labels.txt); null = <root>/objectInfo150.txt or <data>/labels.txt",
    )
    classes: Literal["present", "all"] = Field(
        "present",
        description="semantic segmentation: prompt the classes present in the gold map (PLUM/LISA's "
        "validation protocol) or every class of the list",
    )
    span: Literal["tagger", "phrase"] = Field(
        "tagger",
        description="which tokens make the mask query: the span tagger's last span inside the answer "
        "(the inference path) or the phrase's tokens as the stage-1 B/I/O labels mark them (teacher-forced)",
    )
    template: str = Field(
        "vicuna_v1", description="the chat template the model was trained with (training.collate.TEMPLATES)"
    )
    max_length: int = Field(512, ge=16, description="prompt tokens (as training's data.max_length)")
    threshold: float = Field(0.0, description="mask logit threshold (LISA: > 0)")
    prompts_per_batch: int = Field(16, ge=1, description="class prompts of one image decoded together")


def is_mask_benchmark(bench: Benchmark) -> bool:
    return bench.prediction_kind == "mask"


def _image_uri(bench: Benchmark, ex: Example, images: str) -> str:
    if getattr(bench, "images_resolved", False):
        return ex.image
    if bench.name in REFER:
        return ex.image if ex.image and ("://" in ex.image or ex.image.startswith("/")) else join(images, ex.image)
    return join(images, f"{ex.id}.jpg")


def _image_dirs(bench: Benchmark, data: str, split: str) -> list[str]:
    if bench.name in REFER:
        rels: tuple[str, ...] = REFER_IMAGE_DIRS
    elif bench.name == "ade20k":
        from pixsearch_core.benchmarks.ade20k import SPLITS

        rels = tuple(f"{r}images/{SPLITS[split]}" for r in ("", "ADEChallengeData2016/"))
    else:
        rels = STUFF_IMAGE_DIRS
    return [join(data, r) for r in rels]


def class_names_uri(bench: Benchmark, store: ObjectStore, data: str, cfg: SegEvalConfig) -> str:
    if cfg.class_names:
        return cfg.class_names
    tried = (
        [join(data, "objectInfo150.txt"), join(data, "ADEChallengeData2016", "objectInfo150.txt")]
        if bench.name == "ade20k"
        else [join(data, "labels.txt")]
    )
    for uri in tried:
        if store.exists(uri):
            return uri
    raise FileNotFoundError(f"{bench.name}: no class list at {', '.join(tried)}; set segmentation.class_names=<file>")


def prepare(
    bench: Benchmark, examples: list[Example], data: str, split: str | None, cfg: SegEvalConfig, store: ObjectStore
) -> list[Example]:
    """Examples with `image` set to a full URI. The image folder is `segmentation.images` or the first candidate
    under `data` holding the first example's image; raises naming the places tried."""
    if not examples:
        return examples
    dirs = [cfg.images] if cfg.images else _image_dirs(bench, data, split or bench.default_split)
    tried = [_image_uri(bench, examples[0], d) for d in dirs]
    found = next((d for d, uri in zip(dirs, tried) if store.exists(uri)), None)
    if found is None:
        raise FileNotFoundError(
            f"{bench.name}: the image of example {examples[0].id} is not at "
            f"{', '.join(tried)}; set segmentation.images=<dir holding the images>"
        )
    for ex in examples:
        ex.image = _image_uri(bench, ex, found)
    return examples


def runner_kwargs(
    bench: Benchmark, data: str, cfg_seg: SegEvalConfig, store: ObjectStore, predictions: str
) -> dict[str, Any]:
    """The SegmentationRunner's task-specific arguments (the model ones come from the run config)."""
    kw: dict[str, Any] = {
        "benchmark": bench.name,
        "predictions": predictions,
        "span": cfg_seg.span,
        "template": cfg_seg.template,
        "max_length": cfg_seg.max_length,
        "threshold": cfg_seg.threshold,
        "prompts_per_batch": cfg_seg.prompts_per_batch,
    }
    if bench.name in SEMSEG:
        from pixsearch_core.benchmarks.semseg_classes import train_id_names

        names = train_id_names(bench.name, store, class_names_uri(bench, store, data, cfg_seg))
        kw.update(class_names={str(k): v for k, v in sorted(names.items())}, classes=cfg_seg.classes)
    elif bench.name not in REFER:
        raise ValueError(
            f"no segmentation runner for mask benchmark {bench.name!r}; allowed: {', '.join(REFER + SEMSEG)}"
        )
    return kw


def _jsonable(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in scores.items()}


def _score_one(rec: dict[str, Any], ex: Example, bench: Benchmark, store: ObjectStore) -> dict[str, Any]:
    from pixsearch_core.benchmarks.evaluate import _load_mask
    from pixsearch_core.masks import mask_to_rle

    pred = _load_mask(store, rec["prediction"])
    rec["scores"] = _jsonable(bench.score(ex, pred))
    if bench.name in REFER:  # the gold mask for the report's overlays (as the scorer saw it: non-zero = object)
        gold = ex.mask() if callable(ex.mask) else ex.mask
        rec["gold_rle"] = mask_to_rle(np.asarray(gold) > 0)
    else:
        rec["gold_labels"] = ex.metadata.get("annotation")
    return rec


def score_batches(
    stream: Iterator[list[dict[str, Any]]], examples: list[Example], bench: Benchmark, store: ObjectStore
) -> Iterator[list[dict[str, Any]]]:
    """Score each ok record from its prediction PNG (see the module docstring); a failure there becomes an error
    record naming the PNG, never a crash of the run."""
    by_id = {ex.id: ex for ex in examples}
    for records in stream:
        for rec in records:
            if rec.get("status") != "ok":
                continue
            try:
                _score_one(rec, by_id[rec["sample_id"]], bench, store)
            except Exception as e:
                log.warning("sample %s: scoring %s failed: %s", rec["sample_id"], rec.get("prediction"), e)
                rec.update(
                    status="error", scores=None, error=f"scoring {rec.get('prediction')}: {type(e).__name__}: {e}"
                )
        yield records


def check_request(req, bench: Benchmark):
    """A segmentation run searches nothing and has no decode modes: an --index is ignored (logged: a benchmark
    matrix passes one index to every cell), the mode must be 'full' (the default); --model oracle is a
    text-benchmark smoke test."""
    from pixsearch_core.evaluation.sample_runner import ORACLE

    if req.index not in (None, "", "none"):
        log.warning("%s is a segmentation benchmark and searches nothing: --index %s is ignored", bench.name, req.index)
    if req.mode not in (None, "full"):
        raise ValueError(
            f"{bench.name} is a segmentation benchmark: decode mode {req.mode!r} does not apply; drop --mode"
        )
    if req.model == ORACLE and req.runner is None:
        raise ValueError(f"--model {ORACLE} answers text benchmarks only; give a model for {bench.name}")
    req.index = "none"
    return req


def setup_run(bench: Benchmark, examples: list[Example], req, cfg, store: ObjectStore, run_uri: str):
    """-> (examples with image URIs, the runner spec): the SegmentationRunner with the run's model settings,
    writing its PNGs under `<run_uri>/predictions` (or `req.runner` when a test gives one)."""
    from pixsearch_core.evaluation.sample_runner import RunnerSpec

    examples = prepare(bench, examples, req.data, cfg.split, cfg.segmentation, store)
    if req.runner is not None:
        return examples, req.runner
    kwargs = {
        "model": req.model,
        "model_size": cfg.model.size,
        "model_overrides": cfg.model.build_overrides(),
        "device": cfg.model.device,
        "storage": cfg.storage.model_dump(),
        **runner_kwargs(bench, req.data, cfg.segmentation, store, join(run_uri, "predictions")),
    }
    return examples, RunnerSpec(RUNNER, kwargs)

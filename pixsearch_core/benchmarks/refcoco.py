"""RefCOCO / RefCOCO+ / RefCOCOg referring segmentation in the REFER layout (docs/metrics.md §8), scored as LISA does.

Gold: `<root>/<dataset>/instances.json` and `<root>/<dataset>/refs(<split_by>).p` (or a dataset directory that
holds them). Splits: "val", "testA", "testB", "test", "train"; the REFER partition defaults to unc (refcoco,
refcoco+) or umd (refcocog); write "google/val" to pick another. REFER's split filters are kept ("testA" matches
refs whose split contains "A", "test" any split containing "test").

One example per referring sentence; its id (the prediction id) is the REFER `sent_id`; its gold mask is the sum
of the referred annotation's decoded polygons (uint8: overlaps give 2, which the metric ignores, as LISA's does).
Predictions: a binary PNG per sentence, `<sent_id>.png` (non-zero = object) at the image's size. A missing
prediction is an empty mask. Scores: gIoU / cIoU as fractions.
"""

from __future__ import annotations

import json

import numpy as np

from pixsearch_core.benchmarks.base import BadRecordError, Benchmark, Example, require
from pixsearch_core.masks import decode_coco_segmentation
from pixsearch_core.metrics.segmentation import refer_aggregate, refer_expression_score
from pixsearch_core.registry import register
from pixsearch_core.safe_pickle import safe_loads
from pixsearch_core.storage import join

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


def _split_matches(split: str, ref_split: str) -> bool:
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


class ReferScored(Benchmark):
    """Referring segmentation scored as LISA does (gIoU / cIoU); subclasses load their examples."""

    prediction_kind = "mask"

    def score(self, example, prediction):
        gt = example.mask() if callable(example.mask) else example.mask
        pred = np.zeros(gt.shape, dtype=np.uint8) if prediction is None else (np.asarray(prediction) > 0)
        if pred.shape != gt.shape:
            raise BadRecordError(
                f"{self.name} prediction for id {example.id!r} has shape {pred.shape}, the gold mask {gt.shape}"
            )
        return refer_expression_score(pred.astype(np.uint8), gt)

    def aggregate(self, scores):
        return refer_aggregate(scores)


class _Refer(ReferScored):
    id_field = "sent_id"

    def _root(self, path: str) -> str:
        return path if self.store.exists(join(path, "instances.json")) else join(path, self.name)

    def load(self, path, split=None):
        split = split or self.default_split
        split_by, _, split = split.rpartition("/")
        split_by = split_by or DEFAULT_SPLIT_BY[self.name]
        root = self._root(path)
        refs_uri = join(root, f"refs({split_by}).p")
        refs = safe_loads(self.store.get_bytes(refs_uri), encoding="latin1")  # py2 pickle; containers only
        instances = json.loads(self.store.get_bytes(join(root, "instances.json")))
        anns = {a["id"]: a for a in require(instances, "annotations", f"{root}/instances.json", list)}
        images = {im["id"]: im for im in require(instances, "images", f"{root}/instances.json", list)}
        for ref in refs:
            where = f"{refs_uri} ref {ref.get('ref_id')}"
            if not _split_matches(split, require(ref, "split", where, str)):
                continue
            ann = anns.get(require(ref, "ann_id", where))
            image = images.get(require(ref, "image_id", where))
            if ann is None or image is None:
                raise BadRecordError(
                    f"{where}: ann_id {ref['ann_id']} or image_id {ref['image_id']} is not in instances.json"
                )
            h, w = require(image, "height", where, int), require(image, "width", where, int)
            for sent in require(ref, "sentences", where, list):
                seg = require(ann, "segmentation", f"{where} annotation {ann.get('id')}")
                yield Example(
                    id=str(require(sent, "sent_id", where)),
                    question=require(sent, "sent", where, str).strip().lower(),
                    image=image.get("file_name"),
                    mask=lambda seg=seg, h=h, w=w: decode_coco_segmentation(seg, h, w),
                    metadata={"ref_id": ref.get("ref_id"), "image_id": ref["image_id"], "size": (h, w)},
                )


@register("benchmark", "refcoco")
class RefCOCO(_Refer):
    name = "refcoco"


@register("benchmark", "refcoco+")
class RefCOCOPlus(_Refer):
    name = "refcoco+"


@register("benchmark", "refcocog")
class RefCOCOg(_Refer):
    name = "refcocog"

"""ADE20K SceneParsing (`ADEChallengeData2016`, docs/metrics.md §9): gold `annotations/{training,validation}/*.png`
(0 = other, 1..150 = classes), reduced as mmseg's `reduce_zero_label` (0 -> 255 ignored, k -> k-1), 150 classes.
Split "validation" (alias "val") by default, or "training". Prediction id: the file stem (`ADE_val_00000001`);
predictions are PNG label maps of train ids 0..149 (see `_semseg`)."""

from __future__ import annotations

from pixsearch_core.benchmarks._semseg import SemSegBenchmark
from pixsearch_core.metrics.segmentation import ade20k_reduce_zero_label
from pixsearch_core.registry import register
from pixsearch_core.storage import join

SPLITS = {"validation": "validation", "val": "validation", "training": "training", "train": "training"}


@register("benchmark", "ade20k")
class ADE20K(SemSegBenchmark):
    name = "ade20k"
    id_field = "file stem"
    default_split = "validation"
    num_classes = 150
    to_train_ids = staticmethod(ade20k_reduce_zero_label)

    def load(self, path, split=None):
        split = split or self.default_split
        if split not in SPLITS:
            raise ValueError(f"ade20k split {split!r} unknown; allowed: {', '.join(SPLITS)}")
        for root in (path, join(path, "ADEChallengeData2016")):
            folder = join(root, "annotations", SPLITS[split])
            uris = [u for u in self.store.list(folder) if u.endswith(".png")]
            if uris:
                break
        else:
            raise FileNotFoundError(
                f"no ADE20K annotations under {path}/annotations/{SPLITS[split]} "
                f"or {path}/ADEChallengeData2016/annotations/{SPLITS[split]}"
            )
        return (self._example(u) for u in uris)

"""COCO-Stuff-164k (`stuffthingmaps_trainval2017`, docs/metrics.md §9): gold `{val2017,train2017}/*.png` holding
COCO-Stuff id - 1 (0..181, 255 unlabeled), mapped to mmseg's 171 train ids (`clsID_to_trID`). Split "val"
(default) or "train". Prediction id: the file stem (`000000000139`); predictions are PNG label maps of train ids
0..170 (see `_semseg`)."""

from __future__ import annotations

from pixsearch_core.benchmarks._semseg import SemSegBenchmark
from pixsearch_core.metrics.segmentation import coco_stuff_train_ids
from pixsearch_core.registry import register
from pixsearch_core.storage import join

SPLITS = {"val": "val2017", "train": "train2017"}


@register("benchmark", "coco_stuff")
class COCOStuff(SemSegBenchmark):
    name = "coco_stuff"
    id_field = "file stem"
    num_classes = 171
    to_train_ids = staticmethod(coco_stuff_train_ids)

    def load(self, path, split=None):
        split = split or self.default_split
        if split not in SPLITS:
            raise ValueError(f"coco_stuff split {split!r} unknown; allowed: {', '.join(SPLITS)}")
        folder = join(path, SPLITS[split])
        uris = [u for u in self.store.list(folder) if u.endswith(".png")]
        if not uris:
            raise FileNotFoundError(f"no COCO-Stuff label maps under {folder}")
        return (self._example(u) for u in uris)

"""ADE20K and COCO-Stuff semantic segmentation as stage-1 samples: per image, up to `max_classes` classes present
(a deterministic choice per image) are asked for by name, each with its binary mask."""

from __future__ import annotations

import numpy as np

from pixsearch_core.benchmarks.semseg_classes import ade20k_names, coco_stuff_names
from pixsearch_core.storage import join
from pixsearch_core.training.readers.common import RECORD_ERRORS, Rejected, pick, read_label_map, segmentation_sample


def _ade_classes(store, root: str, classes: str | None) -> dict[int, str]:
    """label value k (1..150) -> class name, from objectInfo150.txt (see benchmarks.semseg_classes)."""
    return ade20k_names(store, classes or join(root, "objectInfo150.txt"))


def _stuff_classes(store, classes: str | None) -> dict[int, str]:
    """cocostuff labels.txt -> {label map value (id - 1): name} (see benchmarks.semseg_classes)."""
    if classes is None:
        raise ValueError("coco_stuff: options.classes (the cocostuff labels.txt) is required")
    return coco_stuff_names(store, classes)


def _layout(reader: str, store, path: str, images: str | None, classes: str | None):
    if reader == "ade20k":
        root = path if store.exists(join(path, "objectInfo150.txt")) or classes else join(path, "ADEChallengeData2016")
        ann = join(root, "annotations", "training")
        return ann, images or join(root, "images", "training"), _ade_classes(store, root, classes), ".jpg"
    if images is None:
        raise ValueError("coco_stuff: options.images (the COCO train2017 image directory) is required")
    return join(path, "train2017"), images, _stuff_classes(store, classes), ".jpg"


def read(
    reader: str,
    store,
    path: str,
    images: str | None = None,
    classes: str | None = None,
    max_classes: int = 3,
    min_pixels: int = 64,
):
    ann_dir, img_dir, names, ext = _layout(reader, store, path, images, classes)
    for uri in (u for u in store.list(ann_dir) if u.endswith(".png")):
        stem = uri.rsplit("/", 1)[-1][:-4]
        sid = f"{reader}-{stem}"
        try:
            labels = read_label_map(store, uri)
        except RECORD_ERRORS as e:  # a corrupt annotation PNG
            yield Rejected(sid, f"annotation: {type(e).__name__}: {e}")
            continue
        values, counts = np.unique(labels, return_counts=True)
        present = [int(v) for v, c in zip(values, counts) if int(v) in names and c >= min_pixels]
        if not present:
            yield Rejected(sid, "no named class with enough pixels")
            continue
        chosen = pick(present, max_classes, sid)
        try:
            image = store.get_bytes(join(img_dir, stem + ext))
        except RECORD_ERRORS as e:
            yield Rejected(sid, f"image: {e}")
            continue
        yield segmentation_sample(
            sid, reader, image, [f"the {names[v]}" for v in chosen], [(labels == v).astype(np.uint8) for v in chosen]
        )

"""RefCOCO / RefCOCO+ / RefCOCOg in the REFER layout (train split), through the benchmark's own loader: one sample
per referring sentence, its mask the referred annotation's polygons."""

from __future__ import annotations

from pixsearch_core.registry import get
from pixsearch_core.training.readers.common import RECORD_ERRORS, Rejected, resolve, segmentation_sample


def read(reader: str, store, path: str, images: str | None = None, split: str = "train"):
    if images is None:
        raise ValueError(f"{reader}: options.images (the COCO train2014 image directory) is required")
    bench = get("benchmark", reader)(store=store)
    for ex in bench.load(path, split):
        sid = f"{reader}-{ex.id}"
        try:
            mask = (ex.mask() > 0).astype("uint8")
            image = store.get_bytes(resolve(images, ex.image))
        except RECORD_ERRORS as e:
            yield Rejected(sid, f"{type(e).__name__}: {e}")
            continue
        if not mask.any():
            yield Rejected(sid, "empty mask")
            continue
        yield segmentation_sample(sid, reader, image, [ex.question], [mask])

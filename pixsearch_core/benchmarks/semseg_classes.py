"""Class names of the semantic-segmentation benchmarks, from the files the datasets ship, keyed by label value.

- ADE20K: `ADEChallengeData2016/objectInfo150.txt`, tab separated `Idx Ratio Train Val Name` (names such as
  "building, edifice"; the first synonym is used). Label value k (1..150) is class k; its train id is k - 1.
- COCO-Stuff: the cocostuff `labels.txt`, lines `id: name` with 0 = unlabeled; the label maps hold id - 1 and
  the 171 valid values map to train ids 0..170 (`metrics.segmentation.coco_stuff_train_ids`).

`train_id_names` gives what evaluation prompts with: {train id: name}, the ids the prediction PNGs hold.
"""

from __future__ import annotations

import numpy as np

from pixsearch_core.metrics.segmentation import IGNORE, coco_stuff_train_ids
from pixsearch_core.storage import ObjectStore


def ade20k_names(store: ObjectStore, uri: str) -> dict[int, str]:
    """objectInfo150.txt -> {label value 1..150: first synonym}."""
    out = {}
    for line in store.get_bytes(uri).decode().splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 5 and cols[0].strip().isdigit():
            out[int(cols[0])] = cols[4].split(",")[0].strip()
    if not out:
        raise ValueError(
            f"{uri}: no classes found; expected objectInfo150.txt (tab separated: Idx Ratio Train Val Name)"
        )
    return out


def coco_stuff_names(store: ObjectStore, uri: str) -> dict[int, str]:
    """labels.txt (`id: name`, 0 unlabeled) -> {label map value (id - 1): name}."""
    out = {}
    for line in store.get_bytes(uri).decode().splitlines():
        key, sep, name = line.partition(":")
        if sep and key.strip().isdigit() and int(key) > 0:
            out[int(key) - 1] = name.strip()
    if not out:
        raise ValueError(f"{uri}: no classes found; expected the cocostuff labels.txt ('1: person' lines)")
    return out


def train_id_names(benchmark: str, store: ObjectStore, uri: str) -> dict[int, str]:
    """{train id: name} for `benchmark` ("ade20k" | "coco_stuff") from its class file at `uri`."""
    if benchmark == "ade20k":
        return {k - 1: v for k, v in ade20k_names(store, uri).items() if 1 <= k <= 150}
    if benchmark == "coco_stuff":
        names = coco_stuff_names(store, uri)
        ids = coco_stuff_train_ids(np.array(sorted(names)))
        return {int(t): names[v] for v, t in zip(sorted(names), ids) if t != IGNORE}
    raise ValueError(f"no class list for benchmark {benchmark!r}; allowed: ade20k, coco_stuff")

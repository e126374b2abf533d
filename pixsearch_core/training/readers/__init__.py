"""Readers of the training sources, each in its public layout, into `Sample`s (pixsearch_core.prompts.sample).

    for item in read_source("ade20k", store, "/data/ADEChallengeData2016"):   # Sample or Rejected
        ...

| reader        | stage | layout |
|---------------|-------|--------|
| refcoco, refcoco+, refcocog | 1 | REFER: `<path>/<dataset>/refs(<split_by>).p` + `instances.json`; images `options.images` (COCO train2014) |
| ade20k        | 1 | `ADEChallengeData2016/{images,annotations}/training/*`; class names from `objectInfo150.txt` |
| coco_stuff    | 1 | `stuffthingmaps_trainval2017/train2017/*.png`; images `options.images`; names `options.classes` (cocostuff `labels.txt`) |
| paco_lvis, pascal_part, partimagenet | 1 | COCO-format part JSON (LISA's `vlpart/...` files); images `options.images` |
| llava_instruct | 1 | LLaVA-Instruct-665k JSON (`llava_v1_5_mix665k.json`); images `options.images` |
| refer_jsonl   | 1 | JSONL of `image, expression, mask` (the SynthCRAG writer's `stage1/train.jsonl`) |
| trajectories  | 2 | JSONL of `id, image, question, response, query_types[, entity_span, mask]` (`stage2/train.jsonl`) |

A record that cannot be used is yielded as `Rejected(id, reason)`; the shard packer writes those to a quarantine
file. Relative image paths resolve against `options.images` (or the SynthCRAG world root when the file lies in a
world, else the source's own directory: `pixsearch_core.synthcrag.paths`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from pixsearch_core.training.readers.common import Rejected

_MODULES = {
    "refcoco": "refer",
    "refcoco+": "refer",
    "refcocog": "refer",
    "ade20k": "semseg",
    "coco_stuff": "semseg",
    "paco_lvis": "parts",
    "pascal_part": "parts",
    "partimagenet": "parts",
    "llava_instruct": "chat",
    "refer_jsonl": "chat",
    "trajectories": "chat",
}
READERS: tuple[str, ...] = tuple(_MODULES)


def read_source(reader: str, store, path: str, **options) -> Iterator:
    """Samples (and Rejected records) of one source."""
    if reader not in _MODULES:
        raise ValueError(f"unknown training reader {reader!r}; allowed: {', '.join(READERS)}")
    module = importlib.import_module(f"pixsearch_core.training.readers.{_MODULES[reader]}")
    return module.read(reader, store, path, **options)


__all__ = ["READERS", "Rejected", "read_source"]

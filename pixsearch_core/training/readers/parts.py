"""Part segmentation in COCO-format JSON (PACO-LVIS, PASCAL-Part, PartImageNet as LISA's `vlpart/` files):
per image, up to `max_parts` annotations of distinct categories; 'dog:head' is asked for as 'the head of the dog'."""

from __future__ import annotations

import json
from collections import defaultdict

from pixsearch_core.masks import decode_coco_segmentation
from pixsearch_core.training.readers.common import RECORD_ERRORS, Rejected, pick, resolve, segmentation_sample


def part_phrase(name: str) -> str:
    """'dog:head' -> 'the head of the dog'; 'Quadruped Head' -> 'the quadruped head'."""
    obj, sep, part = name.replace("_", " ").partition(":")
    return f"the {part.strip()} of the {obj.strip()}".lower() if sep else f"the {name.strip()}".lower()


def read(reader: str, store, path: str, images: str | None = None, max_parts: int = 3):
    if images is None:
        raise ValueError(f"{reader}: options.images (the image directory of {path}) is required")
    data = json.loads(store.get_bytes(path))
    cats = {c["id"]: c["name"] for c in data["categories"]}
    by_image = defaultdict(list)
    for ann in data["annotations"]:
        if not ann.get("iscrowd") and ann.get("segmentation"):
            by_image[ann["image_id"]].append(ann)
    for im in data["images"]:
        sid = f"{reader}-{im['id']}"
        anns, seen = [], set()
        for a in by_image.get(im["id"], []):
            if a["category_id"] in cats and a["category_id"] not in seen:
                seen.add(a["category_id"])
                anns.append(a)
        if not anns:
            yield Rejected(sid, "no part annotation")
            continue
        chosen = pick(anns, max_parts, sid)
        try:
            image = store.get_bytes(resolve(images, im.get("file_name")))
            masks = [
                (decode_coco_segmentation(a["segmentation"], im["height"], im["width"]) > 0).astype("uint8")
                for a in chosen
            ]
            yield segmentation_sample(sid, reader, image, [part_phrase(cats[a["category_id"]]) for a in chosen], masks)
        except RECORD_ERRORS as e:
            yield Rejected(sid, f"{type(e).__name__}: {e}")

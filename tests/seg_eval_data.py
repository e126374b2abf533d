"""Tiny segmentation benchmarks in their official layouts, for the segmentation eval tests.

- `write_refer(root)`: `<root>/refcoco/{instances.json, refs(unc).p}` (REFER: COCO-style images / annotations with
  polygons; a python-2-protocol pickle of refs with sentences) and the images in LISA's layout
  `<root>/images/mscoco/images/train2014/COCO_train2014_%012d.jpg`.
- `write_ade20k(root)`: `<root>/ADEChallengeData2016/{objectInfo150.txt, images/validation/ADE_val_%08d.jpg,
  annotations/validation/ADE_val_%08d.png}` (label values 0 = other, 1..150).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((40, 56), (48, 32), (36, 36))  # (H, W) of the three images


def _image(path: Path, h: int, w: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def write_refer(root: Path) -> dict[str, list[str]]:
    """Three images, four refs, seven sentences: val and testA refs. Returns {split: [sent ids]}."""
    images, anns, refs = [], [], []
    sent, splits = 100, {"val": [], "testA": []}
    for i, (h, w) in enumerate(SIZES, start=1):
        name = f"COCO_train2014_{i:012d}.jpg"
        _image(root / "images" / "mscoco" / "images" / "train2014" / name, h, w, i)
        images.append({"id": i, "file_name": name, "height": h, "width": w})
        for k in range(2 if i == 1 else 1):
            aid = 10 * i + k
            x0, y0 = 3 + 10 * k, 4 + 5 * k
            anns.append(
                {
                    "id": aid,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x0, y0, 12, 14],
                    "segmentation": [[x0, y0, x0 + 12, y0, x0 + 12, y0 + 14, x0, y0 + 14]],
                }
            )
            split = "val" if (i + k) % 2 else "testA"
            sents = [
                {"sent_id": sent + j, "sent": f"The {['left', 'right'][k]} thing {j} ", "raw": "", "tokens": []}
                for j in range(2 if k == 0 else 1)
            ]
            splits[split] += [str(s["sent_id"]) for s in sents]
            sent += len(sents)
            refs.append(
                {
                    "ref_id": aid,
                    "ann_id": aid,
                    "image_id": i,
                    "category_id": 1,
                    "split": split,
                    "file_name": name,
                    "sent_ids": [s["sent_id"] for s in sents],
                    "sentences": sents,
                }
            )
    d = root / "refcoco"
    d.mkdir(parents=True, exist_ok=True)
    (d / "instances.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]})
    )
    (d / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    return splits


def write_ade20k(root: Path, n: int = 3) -> Path:
    """n validation images with 2-4 classes each (label values among 1, 2, 5, 150; 0 = other)."""
    base = root / "ADEChallengeData2016"
    rows = ["Idx\tRatio\tTrain\tVal\tName"] + [
        f"{k}\t0.01\t10\t1\t{ {1: 'wall', 2: 'building, edifice', 5: 'tree'}.get(k, f'class {k}, alias') }"
        for k in range(1, 151)
    ]
    base.mkdir(parents=True, exist_ok=True)
    (base / "objectInfo150.txt").write_text("\n".join(rows) + "\n")
    for i, (h, w) in enumerate(SIZES[:n], start=1):
        stem = f"ADE_val_{i:08d}"
        _image(base / "images" / "validation" / f"{stem}.jpg", h, w, 10 + i)
        label = np.zeros((h, w), np.uint8)
        label[: h // 2] = 1
        label[h // 2 :, : w // 2] = 2 if i != 2 else 150
        label[h // 2 :, w // 2 :] = 5 if i != 3 else 0
        ann = base / "annotations" / "validation" / f"{stem}.png"
        ann.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(label).save(ann)
    return root

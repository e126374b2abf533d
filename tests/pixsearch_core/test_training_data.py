"""Training data: readers of the public layouts, shards, the mixture sampler and the collator."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from pixsearch_core.prompts.sample import Sample, decode, encode
from pixsearch_core.storage import ObjectStore
from pixsearch_core.training.mixture import Mixture, Source, mixture_probabilities
from pixsearch_core.training.readers import Rejected, read_source
from pixsearch_core.training.shards import ShardedDataset, pack_shards


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _items(reader, path, **opts):
    return list(read_source(reader, ObjectStore(), str(path), **opts))


def test_ade20k_layout(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    (root / "annotations" / "training").mkdir(parents=True)
    (root / "images" / "training").mkdir(parents=True)
    (root / "objectInfo150.txt").write_text(
        "Idx\tRatio\tTrain\tVal\tName\n1\t0.15\t1\t1\twall\n3\t0.1\t1\t1\tfloor, flooring\n"
    )
    labels = np.zeros((12, 20), np.uint8)
    labels[:6] = 1
    labels[8:, 5:15] = 3
    (root / "annotations" / "training" / "ADE_train_1.png").write_bytes(_png(labels))
    Image.new("RGB", (20, 12)).save(root / "images" / "training" / "ADE_train_1.jpg")
    [s] = _items("ade20k", tmp_path, min_pixels=1)
    assert s.stage == 1 and s.image is not None
    answer = s.conversation[1]["content"]
    assert [answer[a:b] for _, a, b in s.spans] == ["the wall", "the floor"]
    assert np.array_equal(s.masks[0], labels == 1) and np.array_equal(s.masks[1], labels == 3)


def test_refcoco_layout(tmp_path):
    d = tmp_path / "refcoco"
    d.mkdir()
    refs = [
        {"ref_id": 1, "ann_id": 5, "image_id": 9, "split": "train", "sentences": [{"sent_id": 77, "sent": "Left Cup"}]},
        {"ref_id": 2, "ann_id": 5, "image_id": 9, "split": "val", "sentences": [{"sent_id": 78, "sent": "x"}]},
    ]
    (d / "refs(unc).p").write_bytes(pickle.dumps(refs))
    (d / "instances.json").write_text(
        json.dumps(
            {
                "images": [{"id": 9, "height": 20, "width": 30, "file_name": "COCO_train2014_9.jpg"}],
                "annotations": [{"id": 5, "segmentation": [[4, 4, 14, 4, 14, 12, 4, 12]]}],
            }
        )
    )
    (tmp_path / "img").mkdir()
    Image.new("RGB", (30, 20)).save(tmp_path / "img" / "COCO_train2014_9.jpg")
    [s] = _items("refcoco", tmp_path, images=str(tmp_path / "img"))
    assert s.id == "refcoco-77" and "left cup" in s.conversation[1]["content"]
    ys, xs = np.nonzero(s.masks[0])
    assert s.masks.shape == (1, 20, 30) and 4 <= xs.min() <= 5 and 13 <= xs.max() <= 14 and 4 <= ys.min() <= 5


def test_parts_and_llava_layouts(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "img" / "a.jpg")
    (tmp_path / "paco.json").write_text(
        json.dumps(
            {
                "images": [
                    {"id": 1, "file_name": "a.jpg", "height": 16, "width": 16},
                    {"id": 2, "file_name": "b.jpg", "height": 8, "width": 8},
                ],
                "categories": [{"id": 3, "name": "dog:head"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "segmentation": [[0, 0, 8, 0, 8, 8, 0, 8]]}],
            }
        )
    )
    items = _items("paco_lvis", tmp_path / "paco.json", images=str(tmp_path / "img"))
    assert isinstance(items[1], Rejected) and "no part" in items[1].reason  # quarantined with a reason
    s = items[0]
    a, b = s.spans[0][1:]
    assert s.conversation[1]["content"][a:b] == "the head of the dog" and s.masks[0][:7, :7].all()
    (tmp_path / "llava.json").write_text(
        json.dumps(
            [
                {
                    "id": "x1",
                    "image": "a.jpg",
                    "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A dog."}],
                },
                {"id": "x2", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
            ]
        )
    )
    img, txt = _items("llava_instruct", tmp_path / "llava.json", images=str(tmp_path / "img"))
    assert (
        img.image is not None and txt.image is None and txt.conversation[1] == {"role": "assistant", "content": "Hello"}
    )


def test_shards_roundtrip_and_quarantine(world, tmp_path):
    items = _items("trajectories", f"{world}/stage2/train.jsonl") + [Rejected("bad-1", "broken")]
    manifest = pack_shards(items, str(tmp_path / "sh"), ObjectStore(), per_shard=16, name="t")
    samples = [i for i in items if isinstance(i, Sample)]
    assert manifest["samples"] == len(samples) and manifest["rejected"] == 1
    assert "broken" in (tmp_path / "sh" / "quarantine.jsonl").read_text()
    ds = ShardedDataset.open(str(tmp_path / "sh"))
    back = [ds.get(s, i) for s, n in enumerate(ds.shard_sizes) for i in range(n)]
    assert [b.id for b in back] == [s.id for s in samples]
    assert back[0].conversation == samples[0].conversation and np.array_equal(back[0].masks, samples[0].masks)
    with_region = [s for s in samples if "<region>" in s.conversation[1]["content"]]
    assert with_region and all(len(s.spans) == 1 for s in with_region)
    assert (
        decode({k: v.encode() if isinstance(v, str) else v for k, v in encode(samples[1]).items()}).id == samples[1].id
    )


class _Fake:
    def __init__(self, name, sizes):
        self.name, self.shard_sizes = name, sizes

    def get(self, shard, index):
        return (self.name, shard, index)


def test_mixture_ratio_weights_determinism_and_seek():
    sources = [
        Source("a", 1, 1.0, _Fake("a", [5, 5])),
        Source("b", 1, 3.0, _Fake("b", [4])),
        Source("c", 2, 1.0, _Fake("c", [6, 6, 6])),
    ]
    p = mixture_probabilities(sources, {1: 7, 2: 9})
    assert np.allclose(p, [7 / 16 * 1 / 4, 7 / 16 * 3 / 4, 9 / 16])  # hand-worked
    mix = Mixture(sources, {1: 7, 2: 9}, seed=3)
    draws = mix.choices(0, 20000)
    assert np.allclose(np.bincount(draws) / 20000, p, atol=0.015)
    it = mix.iterate()
    first = [next(it) for _ in range(5000)]
    assert first == [x for _, x in zip(range(5000), Mixture(sources, {1: 7, 2: 9}, seed=3).iterate())]
    assert first != [x for _, x in zip(range(5000), Mixture(sources, {1: 7, 2: 9}, seed=4).iterate())]
    tail = mix.iterate(start=4321)
    assert [next(tail) for _ in range(679)] == first[4321:]
    c_items = [x for x in first if x[0] == "c"]
    assert sorted(c_items[:18]) == sorted(("c", s, i) for s in range(3) for i in range(6))  # one epoch each
    ranks = [Mixture(sources, {1: 7, 2: 9}, seed=3, rank=r, world=2) for r in range(2)]
    seen = [{x for _, x in zip(range(3000), m.iterate()) if x[0] == "c"} for m in ranks]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 18  # ranks split the shards
    with pytest.raises(ValueError, match="stage 2"):
        mixture_probabilities(sources[:2], {1: 7, 2: 9})


def test_coco_stuff_layout_maps_label_values_to_names(tmp_path):
    (tmp_path / "maps" / "train2017").mkdir(parents=True)
    (tmp_path / "img").mkdir()
    labels = np.full((10, 10), 255, np.uint8)
    labels[:5] = 0  # id 1: person (maps hold id - 1)
    labels[5:] = 156  # id 157: sky-other
    (tmp_path / "maps" / "train2017" / "000000000009.png").write_bytes(_png(labels))
    Image.new("RGB", (10, 10)).save(tmp_path / "img" / "000000000009.jpg")
    (tmp_path / "labels.txt").write_text("0: unlabeled\n1: person\n2: bicycle\n157: sky-other\n")
    [s] = _items(
        "coco_stuff",
        tmp_path / "maps",
        images=str(tmp_path / "img"),
        classes=str(tmp_path / "labels.txt"),
        min_pixels=1,
    )
    answer = s.conversation[1]["content"]
    assert [answer[a:b] for _, a, b in s.spans] == ["the person", "the sky-other"]
    assert np.array_equal(s.masks[0], labels == 0) and np.array_equal(s.masks[1], labels == 156)

"""The PixSearch model (tiny, random) through its adapter: image encoded once, region searches, cache equivalence.

Skipped where the modeling package is not present (the `decoder` branch alone carries only tokens.py)."""

import numpy as np
import pytest
import torch

pytest.importorskip("pixsearch_core.modeling.pixsearch")

from decoding_fakes import MemorySearcher  # noqa: E402

from pixsearch_core.decoding import DecodeOptions, DecodeRequest, SearchInterleavedDecoder  # noqa: E402
from pixsearch_core.decoding.forcing import SearchSchedule  # noqa: E402
from pixsearch_core.decoding.pixsearch_adapter import PixSearchAdapter  # noqa: E402


@pytest.fixture(scope="module")
def model():
    from pixsearch_core.registry import get

    torch.manual_seed(0)
    return get("model", "tiny")().float().eval()


def requests():
    rng = np.random.default_rng(0)
    return [
        DecodeRequest(f"s{i}", p, rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8))
        for i, p in enumerate(["Q: what breed is the dog? A:", "Q: who painted it? A: the", "Q: where? A:"])
    ]


def decode(model, **opts):
    adapter = PixSearchAdapter(model)
    schedule = SearchSchedule(
        adapter.ids, every=3, payload=3, searches=3, answer=3, modalities=("region", "image", "text")
    )
    dec = SearchInterleavedDecoder(
        adapter, MemorySearcher(), DecodeOptions(max_new_tokens=40, top_k=2, **opts), logits_processor=schedule
    )
    return dec.decode(requests())


def test_cached_equals_reencoded_and_image_encoded_once(model, monkeypatch):
    calls = []
    original = model.image_features
    monkeypatch.setattr(model, "image_features", lambda images: calls.append(len(images)) or original(images))
    cached = decode(model)
    assert calls == [3]  # one batched image encoding, never again across the 3 hops
    reencoded = decode(model, kv_cache=False)
    assert len(calls) > 2
    for c, r in zip(cached, reencoded):
        assert c.tokens == r.tokens
        assert [s.requested for s in c.searches] == ["region", "image", "text"]
        region = c.searches[0]
        if region.modality == "region":  # the random span tagger found an entity: a real mask went out
            assert region.mask_rle is not None and region.crop_box is not None
        else:
            assert {i.kind for i in c.issues} & {"region_no_entity", "region_empty_mask"}

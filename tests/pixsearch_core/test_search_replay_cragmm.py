"""Replay cache (second run: zero backend calls, equal Evidence) and the CRAG-MM search API mapping."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from indexing.searcher import ShardedSearcher
from pixsearch_core.retrieval.cragmm import CragMMSearcher
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.retrieval.replay import ReplaySearcher
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery
from tests.cragmm_server import IMAGE_RESULTS, WEB_RESULTS
from tests.search_fixtures import picture, tiny_index


class CountingSearcher:
    def __init__(self, inner):
        self.inner, self.calls, self.index_version = inner, 0, inner.index_version

    def search_many(self, queries, k):
        self.calls += 1
        return self.inner.search_many(queries, k)


def test_replay_second_run_makes_no_backend_calls(tmp_path):
    backend = CountingSearcher(ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c")))
    mask = np.zeros((32, 32), bool)
    mask[2:20, 5:25] = True
    queries = [TextQuery("tea leaves"), ImageQuery(picture(2)), RegionQuery(picture(4), mask)]
    first = ReplaySearcher(backend, str(tmp_path / "replay")).search_many(queries, k=3)
    assert backend.calls == 1
    # a fresh process-like cache object, equal-but-new query objects (pixels as arrays this time)
    again = [TextQuery("tea leaves"), ImageQuery(np.asarray(picture(2))), RegionQuery(np.asarray(picture(4)), mask)]
    replay = ReplaySearcher(backend, str(tmp_path / "replay"))
    second = replay.search_many(again, k=3)
    assert backend.calls == 1 and replay.stats == {"hits": 3, "misses": 0, "backend_calls": 0}
    assert second == first
    other_mask = mask.copy()
    other_mask[30, 30] = True  # another mask, another k: both miss
    replay.search_many([RegionQuery(picture(4), other_mask), TextQuery("tea leaves")], k=2)
    assert backend.calls == 2 and replay.stats["misses"] == 2
    other_version = ReplaySearcher(backend, str(tmp_path / "replay"), index_version="tiny/v2")
    other_version.search_many(queries[:1], k=3)
    assert other_version.stats["misses"] == 1


class RecordedPipeline:
    def __init__(self):
        self.calls = []

    def __call__(self, x, k=5):
        self.calls.append((x, k))
        return WEB_RESULTS if isinstance(x, str) else IMAGE_RESULTS


def test_cragmm_results_map_to_evidence():
    pipe = RecordedPipeline()
    searcher = CragMMSearcher(pipe, crop=RegionCrop(padding=0.0))
    canvas = np.zeros((40, 50, 3), np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:30] = True
    web, img, region = searcher.search_many(
        [TextQuery("what is tea"), ImageQuery(picture(1)), RegionQuery(canvas, mask)], k=5
    )
    assert web[0].doc_id == "https://en.wikipedia.org/wiki/Tea" and web[0].title == "Tea - Wikipedia"
    assert web[0].text == "Tea is an aromatic beverage." and web[0].index == "web" and web[0].score == 0.88
    assert img[0].doc_id == "Golden Gate Bridge" and img[0].index == "image"
    assert img[0].text == "Golden Gate Bridge: opened: 1937; length: 2,737 m"
    assert img[0].meta["url"] == "https://upload.wikimedia.org/a.jpg" and img[0].meta["result_index"] == 812
    assert img[1].doc_id == "https://upload.wikimedia.org/b.jpg" and img[1].title == ""
    sent = pipe.calls[2][0]
    assert isinstance(sent, Image.Image) and sent.size == (25, 10)  # the region's crop, not the whole image
    with pytest.raises(ValueError, match="web index"):
        CragMMSearcher(pipe, web=False).search(TextQuery("tea"))

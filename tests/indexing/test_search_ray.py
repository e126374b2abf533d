"""Ray serving: 2 shard groups x 2 replicas answer exactly like one in-process ShardedSearcher."""

from __future__ import annotations

import numpy as np

from indexing.searcher import ShardedSearcher
from pixsearch_core.retrieval.client import SearchClient
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery
from tests.search_fixtures import TOPICS, picture, tiny_index


def test_ray_groups_and_replicas_equal_in_process(tmp_path, ray_session):
    from indexing.serving.ray_service import RaySearchRouter

    uri = tiny_index(tmp_path)
    crop = RegionCrop(padding=0.0, background=(255, 255, 255))  # the router crops as the searcher it stands for
    local = ShardedSearcher(uri, cache_dir=str(tmp_path / "c"), crop=crop)
    router = RaySearchRouter(uri, groups=2, replicas=2, num_cpus=0.1, cache_dir=str(tmp_path / "c"), crop=crop)
    try:
        assert router.groups == [
            ["image-00000", "image-00002", "text-00001"],
            ["image-00001", "text-00000", "text-00002"],
        ]
        mask = np.zeros((32, 32), bool)
        mask[5:25, 5:25] = True
        queries = [TextQuery(t) for t in TOPICS[:4]] + [ImageQuery(picture(3)), RegionQuery(picture(8), mask)]
        client = SearchClient.connect(router, timeout=60)
        for _ in range(2):  # twice: both replicas of each group answer
            assert client.search_many(queries, k=5) == local.search_many(queries, k=5)
        assert client.index_version == "tiny/v1" and router.front.crop == crop
    finally:
        router.close()

"""ShardedSearcher: sharded top-k equals exact (numpy) top-k, k validation, region queries, the wire codec."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.searcher import MAX_K, ShardedSearcher, merge_topk
from indexing.synthetic import write_index
from pixsearch_core.retrieval.codec import query_hash, query_to_wire, wire_to_query, wire_to_request
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.retrieval.types import BadSearchRequest, Evidence, ImageQuery, RegionQuery, TextQuery
from pixsearch_core.storage import ObjectStore
from tests.search_fixtures import picture, tiny_index


class LookupEncoder:
    """Text 'q<i>' -> the i-th given vector (so search_many runs on exactly known query vectors)."""

    def __init__(self, vectors):
        self.vectors = vectors

    def encode(self, texts):
        return self.vectors[[int(t[1:]) for t in texts]]


@pytest.mark.parametrize("factory,nprobe", [("IDMap,Flat", None), ("IVF8,Flat", 8)])
def test_sharded_topk_equals_exact_numpy(tmp_path, factory, nprobe):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(600, 32)).astype(np.float32)
    queries = rng.normal(size=(25, 32)).astype(np.float32)
    docs = [{"doc_id": f"d{i}", "title": f"T{i}", "text": f"x{i}", "url": ""} for i in range(600)]
    uri = write_index(
        ObjectStore(), str(tmp_path), "r", {"text": (data, docs)}, shards=4, factory=factory, nprobe=nprobe
    )  # nprobe = nlist: IVF visits every list, so it must be exact too
    searcher = ShardedSearcher(uri, cache_dir=str(tmp_path / "cache"), encoders={"text": LookupEncoder(queries)})
    assert len(searcher.shards["text"]) == 4
    k = 10
    scores = queries @ data.T
    exact_ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    got = searcher.search_many([TextQuery(f"q{i}") for i in range(len(queries))], k=k)
    for q, hits in enumerate(got):
        assert [h.meta["id"] for h in hits] == exact_ids[q].tolist()
        assert [h.doc_id for h in hits] == [f"d{i}" for i in exact_ids[q]]
        np.testing.assert_allclose([h.score for h in hits], scores[q, exact_ids[q]], rtol=1e-4, atol=1e-5)
    # a shard group searched alone + merge_topk (the Ray router's merge) gives the same answer
    groups = [
        ShardedSearcher(uri, cache_dir=str(tmp_path / "cache"), shard_names=names, mmap=False)
        for names in (["text-00000", "text-00002"], ["text-00001", "text-00003"])
    ]
    per_group = [g.search_vectors("text", queries, k) for g in groups]
    merged = [merge_topk([pg[q] for pg in per_group], k) for q in range(len(queries))]
    assert [[h.meta["id"] for h in m] for m in merged] == exact_ids.tolist()


def test_k_out_of_range_and_unknown_shards_are_errors(tmp_path):
    searcher = ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"))
    for bad in (0, -1, MAX_K + 1, 2.5, True, "5"):
        with pytest.raises(ValueError, match=r"k must be an integer in \[1, 1000\]"):
            searcher.search_many([TextQuery("tea")], k=bad)
    with pytest.raises(ValueError, match="unknown shards \\['nope'\\]"):
        ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"), shard_names=["nope"])
    assert len(searcher.search(TextQuery("tea"), k=MAX_K)) == 30  # k above the corpus size: all there is


def test_text_image_and_region_queries(tmp_path):
    searcher = ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"), crop=RegionCrop(padding=0.0))
    assert searcher.index_version == "tiny/v1"
    text_hits, image_hits = searcher.search_many(
        [TextQuery("violin strings bow music item11 passage11"), ImageQuery(picture(7))], k=3
    )
    assert text_hits[0].doc_id == "doc-11" and text_hits[0].index == "text"
    assert image_hits[0].doc_id == "img-doc-7" and image_hits[0].meta["image_key"] == "img-7.png"
    canvas = np.zeros((80, 100, 3), np.uint8)  # picture 5 pasted into a black canvas; the mask marks it
    canvas[20:52, 40:72] = np.asarray(picture(5))
    mask = np.zeros((80, 100), bool)
    mask[20:52, 40:72] = True
    assert searcher.search(ImageQuery(canvas), k=1)[0].doc_id != "img-doc-5"  # the whole canvas does not match
    assert searcher.search(RegionQuery(canvas, mask), k=1)[0].doc_id == "img-doc-5"
    with pytest.raises(ValueError, match="mask is empty"):
        RegionQuery(canvas, np.zeros((80, 100), bool))


def test_codec_round_trip_and_bad_requests():
    img = picture(3)
    mask = np.zeros((32, 32), bool)
    mask[4:9, 10:30] = True
    back = wire_to_query(query_to_wire(RegionQuery(img, mask)))
    assert isinstance(back, RegionQuery) and np.array_equal(back.mask, mask)
    assert np.array_equal(np.asarray(back.image), np.asarray(img))  # PNG is lossless
    assert query_hash(back) == query_hash(RegionQuery(np.asarray(img), mask))
    assert query_hash(back) != query_hash(ImageQuery(img))
    assert wire_to_query({"type": "text", "text": "tea"}) == TextQuery("tea")
    good_image = query_to_wire(ImageQuery(img))["image"]
    bad = [
        ({"type": "text", "text": "  "}, "non-empty text"),
        ({"type": "image", "image": "aGVsbG8gd29ybGQ="}, "not a decodable image"),
        ({"type": "image", "image": "%%%"}, "not valid base64"),
        (
            {"type": "region", "image": good_image, "mask": {"rle": {"size": [3, 3], "counts": [0, 9]}}},
            "does not match the image",
        ),
        (
            {"type": "region", "image": good_image, "mask": {"rle": {"size": [2, 2], "counts": "04"}}},
            "uncompressed",
        ),  # compressed COCO strings are not part of the wire format
        (
            {"type": "region", "image": good_image, "mask": {"rle": {"size": [32, 32], "counts": [1, 2]}}},
            "bad RLE mask.*H\\*W",
        ),
        ({"type": "sound"}, "type must be one of"),
    ]
    for body, msg in bad:
        with pytest.raises(BadSearchRequest, match=msg):
            wire_to_query(body)
    with pytest.raises(BadSearchRequest, match="1..256 queries"):
        wire_to_request({"k": 1, "queries": []})


def test_merge_topk_orders_by_score_then_id():
    e = lambda i, s: Evidence(f"d{i}", "", "", s, "text", {"id": i})  # noqa: E731
    merged = merge_topk([[e(5, 0.9), e(2, 0.5)], [e(1, 0.9), e(3, 0.7)]], 3)
    assert [x.meta["id"] for x in merged] == [1, 5, 3]

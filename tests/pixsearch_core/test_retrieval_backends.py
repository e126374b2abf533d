"""The one retriever factory: every kind built from one RetrieverConfig, the same answers as the backend built by
hand, the crop carried as one RegionCrop, and the CRAG-MM search API over HTTP against a local server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.searcher import ShardedSearcher
from indexing.serving.http_server import start_http
from pixsearch_core.config import ConfigError, validate_config
from pixsearch_core.registry import UnknownNameError, get, names
from pixsearch_core.retrieval.backends import RetrieverConfig, make_retriever, retriever_version, shorthand
from pixsearch_core.retrieval.client import BadSearchRequest, SearchClient, SearchUnavailable
from pixsearch_core.retrieval.cragmm import CragMMSearcher
from pixsearch_core.retrieval.crop import RegionCrop
from pixsearch_core.retrieval.types import ImageQuery, RegionQuery, TextQuery
from pixsearch_core.storage import ObjectStore
from tests.cragmm_server import CragMMServer
from tests.search_fixtures import picture, tiny_index


def _queries():
    mask = np.zeros((32, 32), bool)
    mask[4:20, 6:26] = True
    return [TextQuery("tea leaves"), ImageQuery(picture(3)), RegionQuery(picture(5), mask)]


def test_every_kind_is_registered_and_a_typo_is_named():
    assert names("retriever") == ["cragmm", "http", "index", "none", "replay"]
    with pytest.raises(UnknownNameError, match="Did you mean .cragmm."):
        get("retriever", "cragm")


def test_shorthand_and_config_errors_name_the_bad_value():
    assert shorthand("none") == {"kind": "none"}
    assert shorthand("http://h:1") == {"kind": "http", "uri": "http://h:1"}
    assert shorthand("s3://b/indices/x") == {"kind": "index", "uri": "s3://b/indices/x"}
    with pytest.raises(ConfigError) as ei:
        validate_config(RetrieverConfig, {"kind": "http", "uri": "ftp://x", "crop": {"padding": 0.5}})
    assert "'ftp://x'" in str(ei.value) and "--region-padding 0.5" in str(ei.value)
    assert "retriever.crop.padding=0.1" in str(ei.value)
    with pytest.raises(ConfigError, match="needs backend.kind"):
        validate_config(RetrieverConfig, {"kind": "replay", "uri": "/tmp/r"})
    with pytest.raises(ConfigError, match="kind 'cragmm' takes no uri"):
        validate_config(RetrieverConfig, {"kind": "cragmm", "uri": "http://x"})
    with pytest.raises(ValueError, match="no retriever chosen"):
        make_retriever(RetrieverConfig())


def test_index_kind_equals_the_searcher_built_by_hand_and_carries_the_crop(tmp_path):
    uri = tiny_index(tmp_path)
    crop = RegionCrop(padding=0.0, background=(255, 255, 255), component="all")
    made = make_retriever(RetrieverConfig(kind="index", uri=uri, cache_dir=str(tmp_path / "c"), crop=crop))
    by_hand = ShardedSearcher(uri, cache_dir=str(tmp_path / "c2"), crop=crop)
    assert isinstance(made, ShardedSearcher) and made.crop == crop
    assert made.search_many(_queries(), 4) == by_hand.search_many(_queries(), 4)
    assert retriever_version(RetrieverConfig(kind="index", uri=uri), ObjectStore()) == made.index_version.split("/")[1]


def test_http_kind_equals_in_process(tmp_path):
    searcher = ShardedSearcher(tiny_index(tmp_path), cache_dir=str(tmp_path / "c"))
    server, url = start_http(searcher)
    try:
        client = make_retriever(RetrieverConfig(kind="http", uri=url, timeout=5, retries=0))
        assert isinstance(client, SearchClient)
        assert client.search_many(_queries(), 3) == searcher.search_many(_queries(), 3)
        assert client.index_version == searcher.index_version
    finally:
        server.shutdown()
        server.server_close()


def test_replay_kind_answers_the_second_run_from_the_cache(tmp_path):
    backend = {"kind": "index", "uri": tiny_index(tmp_path), "cache_dir": str(tmp_path / "c")}
    cfg = RetrieverConfig(kind="replay", uri=str(tmp_path / "replay"), backend=backend)
    first = make_retriever(cfg).search_many(_queries(), 3)
    again = make_retriever(cfg)
    assert again.search_many(_queries(), 3) == first and again.stats == {"hits": 3, "misses": 0, "backend_calls": 0}
    other_crop = cfg.model_copy(update={"backend": RetrieverConfig(**backend, crop={"padding": 0.5})})
    moved = make_retriever(other_crop)  # another crop finds other pages: never the old crop's answers
    moved.search_many(_queries(), 3)
    assert moved.stats["misses"] == 3


def test_none_kind_finds_nothing():
    assert make_retriever(RetrieverConfig(kind="none")).search_many(_queries(), 3) == [[], [], []]


def test_cragmm_kind_over_http_sends_the_api_format_and_maps_the_results():
    server = CragMMServer()
    try:
        cfg = RetrieverConfig(kind="cragmm", cragmm={"url": server.url}, crop={"padding": 0.0}, timeout=5)
        client = make_retriever(cfg)
        assert isinstance(client.backend.searcher, CragMMSearcher)
        web, image, region = client.search_many(_queries(), 2)
        assert [r.get("text") for r in server.requests] == ["tea leaves", None, None]
        assert [r["k"] for r in server.requests] == [2, 2, 2]
        assert server.requests[1]["image"].size == (32, 32)  # the whole image
        assert server.requests[2]["image"].size == (20, 16)  # the region's crop (mask box 6..26 x 4..20, no padding)
        np.testing.assert_array_equal(np.asarray(server.requests[2]["image"]), np.asarray(picture(5))[4:20, 6:26])
        assert web[0].doc_id == "https://en.wikipedia.org/wiki/Tea" and web[0].index == "web"
        assert (
            image[0].doc_id == "Golden Gate Bridge"
            and image[0].text == "Golden Gate Bridge: opened: 1937; length: 2,737 m"
            and len(image) == 2
            and region == image
        )
        assert client.index_version == f"cragmm:{server.url}"
    finally:
        server.close()


def test_cragmm_http_errors_are_typed_and_5xx_is_retried():
    server = CragMMServer(web=False, fail_first=1)
    try:
        client = make_retriever(RetrieverConfig(kind="cragmm", cragmm={"url": server.url}, timeout=5, retries=1))
        assert client.search(ImageQuery(picture(1)), 1)[0].doc_id == "Golden Gate Bridge"  # 503, then retried
        with pytest.raises(BadSearchRequest, match="HTTP 400"):  # no web index: a 4xx is never retried
            client.search(TextQuery("tea"), 1)
        assert len(server.requests) == 2
    finally:
        server.close()
    dead = make_retriever(RetrieverConfig(kind="cragmm", cragmm={"url": server.url}, timeout=2, retries=0))
    with pytest.raises(SearchUnavailable):
        dead.search(ImageQuery(picture(1)), 1)


def test_search_query_cli_reaches_every_kind_through_the_factory(tmp_path, capsys, caplog):
    from jobs.cli import main

    server = CragMMServer()
    picture(5).save(tmp_path / "p.png")
    try:
        assert (
            main(
                [
                    "search",
                    "query",
                    "--retriever",
                    "cragmm",
                    "--image",
                    str(tmp_path / "p.png"),
                    "--box",
                    "6,4,26,20",
                    "-k",
                    "1",
                    f"cragmm.url={server.url}",
                    "crop.padding=0",
                ]
            )
            == 0
        )
    finally:
        server.close()
    assert [json.loads(x)["doc_id"] for x in capsys.readouterr().out.splitlines()] == ["Golden Gate Bridge"]
    assert server.requests[0]["image"].size == (20, 16) and server.requests[0]["k"] == 1
    uri = tiny_index(tmp_path)
    assert (
        main(
            [
                "search",
                "query",
                "--index",
                uri,
                "--cache-dir",
                str(tmp_path / "c"),
                "--text",
                "tea",
                "--region-padding",
                "0.2",
                "crop.padding=0.3",
            ]
        )
        == 2
    )  # one setting, two sources: refused
    assert "crop.padding is set by both --region-padding and crop.padding=..." in caplog.text


def test_region_flags_become_crop_settings_and_a_setting_given_twice_is_refused():
    from argparse import Namespace

    from jobs.search import _config

    def args(**kw):
        base = dict(index="/tmp/idx", region_padding=None, region_background=None, region_component=None)
        return Namespace(**{**base, "region_snap": None, "overrides": [], "cache_dir": "c", "timeout": 5.0, **kw})

    cfg = _config(args(region_snap=0.3, region_background=(255, 255, 255)))
    assert cfg.crop == RegionCrop(snap=0.3, background=(255, 255, 255))
    assert _config(args(overrides=["crop.snap=0.5"])).crop.snap == 0.5
    with pytest.raises(ConfigError, match="crop.snap is set by both --region-snap"):
        _config(args(region_snap=0.3, overrides=["crop.snap=0.5"]))

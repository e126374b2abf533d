"""CRAG-MM pictures: gold in the published parquet layout (bytes in `image`, egocentric rows without image_url),
the picture cache (embedded bytes once per content; image_url downloads with retries from a local HTTP server, a
clear error for a URL that cannot be fetched), and `pixsearch eval run --mode whole_image` with the tiny model
searching by the picture on every sample."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from pixsearch_core.benchmarks.crag_mm import CragMM
from pixsearch_core.benchmarks.pictures import FetchPolicy, PictureCache, PictureUnavailable
from pixsearch_core.storage import ObjectStore
from tests.crag_mm_fixtures import jpeg, picture_server, session, write_shards

FAST = FetchPolicy(timeout_s=5, retries=2, backoff_s=0.01)


def _rows(base_url: str | None = None):
    rows = [
        session("ego1", ["what is this?"], image=jpeg(1)),
        session("ego2", ["who made it?"], image=jpeg(2)),
        session("multi", ["what brand?", "how old is it?", "where is it sold?"], image=jpeg(3)),
        session("same-pic", ["what colour?"], image=jpeg(1)),
    ]  # the same bytes as ego1
    if base_url:
        rows.append(session("web", ["which city?"], image_url=f"{base_url}/pic.jpg"))
    return rows


def test_published_layout_pictures_go_to_the_cache(tmp_path):
    data = write_shards(tmp_path, _rows())
    cache = str(tmp_path / "cache")
    examples = {ex.id: ex for ex in CragMM(image_cache=cache).load(str(data))}
    assert len(examples) == 6  # 3 single-turn + 3 turns of one multi-turn session
    ego1, same, multi = examples["ego1-t0"], examples["same-pic-t0"], examples["multi-t2"]
    assert ego1.metadata["egocentric"] and multi.metadata["turn"] == 2
    assert ego1.image == same.image and ego1.image.startswith(cache)  # one object per picture content
    assert {examples[f"multi-t{k}"].image for k in range(3)} == {multi.image}
    assert ObjectStore().get_bytes(multi.image) == jpeg(3)
    assert Image.open(io.BytesIO(ObjectStore().get_bytes(ego1.image))).size == (48, 48)
    assert all(ex.image for ex in examples.values())
    # scoring needs no pictures: without a cache nothing is extracted (and nothing is written)
    assert all(ex.image is None for ex in CragMM().load(str(data)))


def test_row_without_any_picture_is_flagged_not_dropped(tmp_path):
    data = write_shards(tmp_path, [session("nothing", ["what?"]), *_rows()[:1]], shards=1)
    examples = {ex.id: ex for ex in CragMM(image_cache=str(tmp_path / "c")).load(str(data))}
    assert set(examples) == {"nothing-t0", "ego1-t0"}
    assert "no picture" in examples["nothing-t0"].metadata["image_error"]
    assert "image_error" not in examples["ego1-t0"].metadata


def test_fetch_retries_caches_and_names_the_failing_url(tmp_path):
    ok = jpeg(5)
    routes = {"/flaky.jpg": [(503, b"busy"), (200, ok)], "/html.jpg": [(200, b"<html>oops</html>")]}
    with picture_server(routes) as (base, hits):
        cache = PictureCache(ObjectStore(), str(tmp_path / "cache"), FAST)
        uri = cache.fetch(f"{base}/flaky.jpg")
        assert ObjectStore().get_bytes(uri) == ok and hits["/flaky.jpg"] == 2
        assert cache.fetch(f"{base}/flaky.jpg") == uri and hits["/flaky.jpg"] == 2  # cached: no third request
        with pytest.raises(PictureUnavailable, match=rf"{base}/missing.jpg .*1 tries: HTTP 404"):
            cache.fetch(f"{base}/missing.jpg")  # a 404 is not retried
        assert hits["/missing.jpg"] == 1
        with pytest.raises(PictureUnavailable, match=rf"{base}/html.jpg .*3 tries: .*not a decodable image"):
            cache.fetch(f"{base}/html.jpg")
        assert hits["/html.jpg"] == 3
    with pytest.raises(PictureUnavailable, match=r"http://127.0.0.1:9/x.jpg .*3 tries: URLError"):
        cache.fetch("http://127.0.0.1:9/x.jpg")  # nothing listens on port 9


@pytest.fixture
def tiny_index_uri(tmp_path):
    from tests.search_fixtures import tiny_index

    return tiny_index(tmp_path)


def _run(capsys, data, index, out, extra=()):
    from jobs import cli

    assert (
        cli.main(
            [
                "eval",
                "run",
                "--sequential",
                "--benchmark",
                "crag_mm",
                "--data",
                str(data),
                "--model",
                "tiny",
                "--index",
                index,
                "--mode",
                "whole_image",
                "--run-id",
                "pics",
                "--out",
                str(out),
                "decode.max_new_tokens=4",
                "model.device=cpu",
                "images.retries=1",
                "images.backoff_s=0",
                *extra,
            ]
        )
        == 0
    )
    return json.loads(capsys.readouterr().out)


def test_eval_run_whole_image_searches_by_the_picture_on_every_sample(tmp_path, tiny_index_uri, capsys):
    from pixsearch_core.records import read_records

    with picture_server({"/pic.jpg": [(200, jpeg(7))]}) as (base, hits):
        data = write_shards(tmp_path / "gold", _rows(base))
        summary = _run(capsys, data, tiny_index_uri, tmp_path / "out")
    records = read_records(ObjectStore(), summary["run_uri"])
    assert summary["errors"] == 0 and len(records) == 7
    assert [r["status"] for r in records] == ["ok"] * 7
    assert sum(r["egocentric"] for r in records) == 6 and hits["/pic.jpg"] == 1
    for r in records:
        assert [s["modality"] for s in r["searches"]] == ["image"], r["sample_id"]
        assert r["searches"][0]["evidence_ids"] and r["searches"][0]["error"] is None
        assert r["image"].startswith(str(tmp_path / "out" / "cache" / "images")) or r["image"].startswith(base)


def test_eval_run_unreachable_image_url_is_an_error_record_naming_it(tmp_path, tiny_index_uri, capsys):
    from pixsearch_core.records import read_records

    with picture_server({}) as (base, _):
        rows = [*_rows()[:2], session("gone", ["which city?"], image_url=f"{base}/gone.jpg")]
        data = write_shards(tmp_path / "gold", rows, shards=1)
        summary = _run(capsys, data, tiny_index_uri, tmp_path / "out")
    records = {r["sample_id"]: r for r in read_records(ObjectStore(), summary["run_uri"])}
    assert summary["errors"] == 1 and records["ego1-t0"]["status"] == "ok"
    bad = records["gone-t0"]
    assert bad["status"] == "error" and f"{base}/gone.jpg" in bad["error"] and "HTTP 404" in bad["error"]

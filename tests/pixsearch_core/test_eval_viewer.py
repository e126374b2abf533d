"""`pixsearch eval view`: the static site's data, and the page itself driven in headless Chromium.

Two runs over the same 240 samples (full vs whole image) are written with the real RecordWriter; in the full run
every third sample searched a region (mask RLE + crop box) whose gold mask is known. The browser test loads the
page, filters, opens a sample, checks the overlay's pixels, compares the runs, and saves screenshots of each state
(under out/test-screenshots/viewer/, or $PIXSEARCH_SCREENSHOTS) for a reviewer.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixsearch_core.evaluation.viewer import build_viewer, modalities, verdict
from pixsearch_core.masks import mask_to_rle
from pixsearch_core.records import RecordWriter
from pixsearch_core.storage import ObjectStore

N = 240
H, W = 48, 64
BOX = (10, 8, 30, 24)  # x0, y0, x1, y1 of the region searched in the full run


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _mask() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[BOX[1] : BOX[3], BOX[0] : BOX[2]] = True
    return m


def _record(i: int, mode: str, world: Path) -> dict:
    region = mode == "full" and i % 3 == 0
    correct = (i % 2 == 0) if mode == "full" else (i % 4 == 0)
    answer = f"ans {i}" if correct else ("I don't know" if i % 5 == 1 else f"wrong {i}")
    searches = []
    if mode != "no_search":
        searches.append(
            {
                "hop": 0,
                "modality": "region" if region else "image",
                "requested": "region" if region else "image",
                "text": None,
                "box": list(BOX) if region else None,
                "mask_rle": mask_to_rle(_mask()) if region else None,
                "evidence_ids": [f"doc-{i}", f"doc-{i + 1}"],
                "latency_s": 0.012,
                "error": None,
            }
        )
    info = f"<information>[1] Title {i}: text about entity {i}</information>"
    segments = (
        [
            {"kind": "text", "start": 0, "end": 1, "text": "Let me look. "},
            {"kind": "search", "start": 1, "end": 2, "text": "<search><region></search>"},
            {"kind": "information", "start": 2, "end": 3, "text": info},
            {"kind": "text", "start": 3, "end": 4, "text": f"Answer: {answer}"},
        ]
        if searches
        else []
    )
    return {
        "sample_id": f"q{i:03d}",
        "question": f"what is thing {i}?",
        "gold": [f"ans {i}"],
        "image": str(world / "img.png"),
        "gold_mask": str(world / "gold.png") if region else None,
        "egocentric": i % 2 == 1,
        "question_type": "simple",
        "gold_query_types": ["region"],
        "status": "error" if i == 7 else "ok",
        "error": "TimeoutError: search backend" if i == 7 else None,
        "answer": None if i == 7 else answer,
        "scores": None if i == 7 else {"relaxed_em": float(correct)},
        "n_searches": len(searches),
        "searches": searches,
        "mask_rle": searches[0]["mask_rle"] if searches else None,
        "trajectory": {"segments": segments, "text": "", "issues": [], "finish_reason": "eos"},
        "timings": {"decode_s": 0.1},
        "replica": "local",
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[list[str], list[list[dict]]]:
    root = tmp_path_factory.mktemp("viewer")
    world = root / "world"
    world.mkdir()
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 2] = 200  # a blue picture: the overlay's red/green tints are easy to see in its pixels
    (world / "img.png").write_bytes(_png(img))
    (world / "gold.png").write_bytes(_png((_mask() * 255).astype(np.uint8)))
    store, uris, all_records = ObjectStore(), [], []
    for mode in ("full", "whole_image"):
        uri = str(root / "runs" / f"synthcrag-{mode}")
        records = [_record(i, mode, world) for i in range(N)]
        with RecordWriter(store, uri, meta={"benchmark": "synthcrag", "mode": mode, "model": "tiny"}) as w:
            w.write_many(records)
        uris.append(uri)
        all_records.append(records)
    return uris, all_records


def test_verdict_and_modalities():
    assert verdict({"status": "error"}) == "error"
    assert verdict({"status": "ok", "answer": "I don't know.", "scores": {"relaxed_em": 0.0}}) == "abstained"
    assert verdict({"status": "ok", "answer": "x", "scores": {"correct": True, "missing": False}}) == "correct"
    assert verdict({"status": "ok", "answer": "x", "scores": {"correct": False, "missing": True}}) == "abstained"
    assert verdict({"status": "ok", "answer": "x", "scores": {"relaxed_em": 0.0, "em": 1.0}}) == "wrong"
    assert verdict({"status": "ok", "answer": "x", "scores": {"em": 1.0}}) == "correct"
    assert modalities({"searches": [{"modality": "region"}, {"modality": "text"}, {"modality": "region"}]}) == [
        "region",
        "text",
    ]


def test_site_files(runs, tmp_path):
    uris, records = runs
    out = tmp_path / "site"
    res = build_viewer(uris, out)
    assert res == {"index": str(out / "index.html"), "runs": 2, "samples": 2 * N}
    data = json.loads(re.fullmatch(r"window\.PIX_DATA = (.*);\n", (out / "data.js").read_text(), re.S).group(1))
    assert [r["n"] for r in data["runs"]] == [N, N]
    full = [r for r in data["rows"] if r["run"] == 0]
    assert sum(r["verdict"] == "error" for r in full) == 1
    assert sum(r["modalities"] == ["region"] for r in full) == sum(1 for i in range(N) if i % 3 == 0)
    # one copy of the shared image, the gold mask and its outline, however many samples use them
    assert len(list((out / "media").iterdir())) == 3
    first = (out / "samples" / "0" / "0.js").read_text()
    assert first.startswith("PIX_SAMPLE(0, 0, ") and '"doc-0"' in first


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _expected_counts(records: list[dict]) -> dict[str, int]:
    counts = {s: 0 for s in ("correct", "wrong", "abstained", "error")}
    for r in records:
        counts[verdict(r)] += 1
    return counts


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (make test installs Debian's chromium)")
def test_page_in_headless_chromium(runs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    uris, records = runs
    shots = Path(os.environ.get("PIXSEARCH_SCREENSHOTS", "out/test-screenshots/viewer"))
    shots.mkdir(parents=True, exist_ok=True)
    site = tmp_path / "site"
    server = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "eval", "view", *uris, "--out", str(site), "--serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while "serving" not in line:
            line = server.stderr.readline()
            assert line or server.poll() is None, f"viewer server exited: {server.communicate()}"
        base = re.search(r"http://[\d.]+:\d+/", line).group(0)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _check_table_and_filter(page, base, records[0], shots)
            _check_sample_overlay(page, shots)
            _check_compare(page, base, records, shots)
            # the same site opened from file:// (no server): the sample still draws, gold outline included
            page.goto(f"file://{site.resolve()}/index.html#sample?run=0&k=0")
            page.wait_for_selector("canvas[data-drawn='1']")
            assert "gold mask" in page.inner_text(".legend")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def _check_table_and_filter(page, base, full, shots):
    page.goto(base + "index.html")
    page.wait_for_selector("body[data-ready=table]")
    assert page.inner_text("#n-shown") == f"{2 * N} samples"
    assert page.locator("#samples tbody tr").count() == 100  # paged
    page.select_option("select[data-filter=run]", "0")
    page.wait_for_function("location.hash.includes('run=0')")
    expected = _expected_counts(full)
    for status, n in expected.items():
        assert page.inner_text(f"[data-count={status}]") == f"{status}: {n}"
    page.select_option("select[data-filter=modality]", "region")
    page.wait_for_function("location.hash.includes('modality=region')")
    n_region = sum(1 for r in full if r["searches"] and r["searches"][0]["modality"] == "region")
    assert page.inner_text("#n-shown") == f"{n_region} samples"
    page.click("th[data-sort=id]")
    page.wait_for_function("location.hash.includes('sort=id')")
    page.screenshot(path=str(shots / "1-table-filtered.png"))


def _check_sample_overlay(page, shots):
    page.click("#samples tbody tr >> nth=0")
    page.wait_for_selector("canvas[data-drawn='1']")
    assert "sample?run=0&k=0" in page.url  # linkable
    assert page.inner_text(".sample dl").count("q000") == 1
    # inside the region (not on its border) the red hop-0 mask tints the blue picture; outside it stays blue
    inside = page.evaluate(
        "(() => Array.from(document.querySelector('canvas').getContext('2d').getImageData(20, 16, 1, 1).data))()"
    )
    outside = page.evaluate(
        "(() => Array.from(document.querySelector('canvas').getContext('2d').getImageData(50, 40, 1, 1).data))()"
    )
    edge = page.evaluate(
        "(() => Array.from(document.querySelector('canvas').getContext('2d').getImageData(10, 16, 1, 1).data))()"
    )
    assert outside[:3] == [0, 0, 200]
    assert inside[0] > 60 and inside[2] < 200, inside
    assert edge[0] == 255 and edge[1] == 230, edge  # the gold mask's outline
    page.click(".seg-information summary")
    assert "Title 0: text about entity 0" in page.inner_text(".seg-information")
    assert "doc-0, doc-1" in page.inner_text(".searches")
    page.screenshot(path=str(shots / "2-sample-overlay.png"), full_page=True)


def _check_compare(page, base, records, shots):
    page.goto(base + "index.html#compare?a=0&b=1")
    page.wait_for_selector("body[data-ready=compare]")
    assert page.inner_text("#n-pairs") == f"{N} samples"
    page.select_option("#only", "diff")
    page.wait_for_function("location.hash.includes('only=diff')")
    diff = sum(1 for a, b in zip(*records) if (verdict(a) == "correct") != (verdict(b) == "correct"))
    assert page.inner_text("#n-pairs") == f"{diff} samples"
    page.click("#pairs tbody tr >> nth=0")
    page.wait_for_function("document.querySelectorAll('canvas[data-drawn=\"1\"]').length == 2")
    page.screenshot(path=str(shots / "3-compare.png"), full_page=True)

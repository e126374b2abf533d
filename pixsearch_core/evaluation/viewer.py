"""The trace viewer behind `pixsearch eval view`: a static site over one or more run directories.

    paths = build_viewer(["out/demo/runs/synthcrag-full", "out/demo/runs/synthcrag-whole_image"], "out/view", store)

The site needs no network and no server-side code (it also opens from `file://`):

    <out>/index.html, app.js, style.css    the page (vendored here, no CDN)
    <out>/data.js                          runs and one table row per (run, sample): filters and sorting work on it
    <out>/samples/<run>/<k>.js             one sample's full trace, loaded only when the sample is opened
    <out>/media/<sha>.<ext>                images and gold masks, copied once each, loaded lazily

Data files are JavaScript (`window.PIX_DATA = ...`, `PIX_SAMPLE(...)`) rather than JSON because browsers refuse
`fetch()` of `file://` URLs. Every value is written with `json.dumps`, so no record text can break out of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from pixsearch_core.masks import mask_boundary, read_mask_png
from pixsearch_core.metrics.crag import is_missing
from pixsearch_core.records import read_records, read_run_meta
from pixsearch_core.storage import ObjectStore

log = logging.getLogger(__name__)

STATIC_FILES = ("index.html", "app.js", "style.css")
#: per-example score keys that say "right" (first one present wins), in order of preference
CORRECT_KEYS = ("correct", "accuracy", "relaxed_em", "em", "exact_match", "giou")
STATUSES = ("correct", "wrong", "abstained", "error")


def verdict(record: dict[str, Any]) -> str:
    """correct | wrong | abstained | error, from a record's status, answer and per-example scores."""
    if record.get("status") != "ok":
        return "error"
    scores = record.get("scores") or {}
    answer = record.get("answer") or ""
    if scores.get("missing") or (isinstance(answer, str) and is_missing(answer)):
        return "abstained"
    for key in CORRECT_KEYS:
        if key in scores and scores[key] is not None:
            return "correct" if float(scores[key]) > 0.5 else "wrong"
    return "wrong"


def modalities(record: dict[str, Any]) -> list[str]:
    """The query modalities a sample actually searched with, in hop order, without repeats."""
    out: list[str] = []
    for s in record.get("searches") or []:
        m = s.get("modality")
        if m and m not in out:
            out.append(m)
    return out


@dataclass
class _Media:
    """Copies images and masks into <out>/media once each, named by the sha256 of their bytes."""

    store: ObjectStore
    out: Path

    def __post_init__(self) -> None:
        self.by_key: dict[str, str | None] = {}

    def add(self, uri: str | None) -> str | None:
        """The page-relative path of `uri`'s copy, or None when there is no such object (logged)."""
        return self._once(uri, "", self._copy)

    def outline(self, uri: str | None) -> str | None:
        """A transparent PNG with the gold mask's boundary in yellow (computed here: a page opened from file://
        may not read the pixels of the mask image it loads)."""
        return self._once(uri, "#outline", self._outline)

    def _once(self, uri: str | None, tag: str, make) -> str | None:
        if not uri:
            return None
        if uri + tag not in self.by_key:
            self.by_key[uri + tag] = make(uri)
        return self.by_key[uri + tag]

    def _save(self, data: bytes, suffix: str) -> str:
        name = f"media/{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
        target = self.out / name
        if not target.exists():
            target.write_bytes(data)
        return name

    def _outline(self, uri: str) -> str | None:
        try:
            mask = read_mask_png(self.store, uri)
        except (OSError, ValueError) as e:
            log.warning("viewer: cannot read gold mask %s (%s)", uri, e)
            return None
        rgba = np.zeros((*mask.shape, 4), np.uint8)
        rgba[mask_boundary(mask)] = (255, 230, 0, 255)
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
        return self._save(buf.getvalue(), "-outline.png")

    def _copy(self, uri: str) -> str | None:
        try:
            data = self.store.get_bytes(uri)
        except (OSError, ValueError) as e:
            log.warning("viewer: cannot read %s (%s); the sample is shown without it", uri, e)
            return None
        ext = Path(uri.split("?", 1)[0]).suffix.lower()
        return self._save(data, ext if ext in (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp") else ".bin")


def _run_label(meta: dict[str, Any], uri: str) -> str:
    model = str(meta.get("model", "?")).rstrip("/").rsplit("/", 1)[-1]
    return f"{meta.get('benchmark', '?')} · {meta.get('mode', '?')} · {model} ({uri.rstrip('/').rsplit('/', 1)[-1]})"


def _row(run: int, k: int, rec: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run,
        "k": k,
        "id": str(rec.get("sample_id")),
        "benchmark": meta.get("benchmark"),
        "mode": meta.get("mode"),
        "verdict": verdict(rec),
        "ego": rec.get("egocentric"),
        "modalities": modalities(rec),
        "n_searches": int(rec.get("n_searches") or 0),
        "question": rec.get("question") or "",
        "answer": rec.get("answer") or "",
        "gold": list(rec.get("gold") or []),
    }


def _detail(rec: dict[str, Any], media: _Media) -> dict[str, Any]:
    traj = rec.get("trajectory") or {}
    return {
        "id": str(rec.get("sample_id")),
        "question": rec.get("question"),
        "gold": rec.get("gold"),
        "answer": rec.get("answer"),
        "status": rec.get("status"),
        "error": rec.get("error"),
        "verdict": verdict(rec),
        "scores": rec.get("scores"),
        "egocentric": rec.get("egocentric"),
        "question_type": rec.get("question_type"),
        "gold_query_types": rec.get("gold_query_types"),
        "image": media.add(rec.get("image")),
        "gold_mask": media.add(rec.get("gold_mask")),
        "gold_outline": media.outline(rec.get("gold_mask")),
        "searches": rec.get("searches") or [],
        "segments": traj.get("segments") or [],
        "text": traj.get("text") or "",
        "issues": traj.get("issues") or [],
        "finish_reason": traj.get("finish_reason"),
        "timings": rec.get("timings") or {},
    }


def _js(call: str, *args: Any) -> str:
    return f"{call}({', '.join(json.dumps(a, sort_keys=True, default=str) for a in args)});\n"


def build_viewer(run_uris: list[str], out_dir: str | Path, store: ObjectStore | None = None) -> dict[str, Any]:
    """Write the viewer for `run_uris` into `out_dir` (a local folder); returns {index, runs, samples}."""
    if not run_uris:
        raise ValueError("no runs given: pass one or more run directories (<output>/runs/<run_id>)")
    store = store or ObjectStore()
    out = Path(out_dir)
    for sub in ("samples", "media"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True, exist_ok=True)
    static = resources.files("pixsearch_core.evaluation") / "viewer_static"
    for name in STATIC_FILES:
        (out / name).write_bytes((static / name).read_bytes())
    media = _Media(store, out)
    runs, rows = [], []
    for i, uri in enumerate(run_uris):
        meta = read_run_meta(store, uri)
        records = sorted(read_records(store, uri), key=lambda r: str(r.get("sample_id")))
        runs.append({"label": _run_label(meta, uri), "uri": uri, "meta": meta, "n": len(records)})
        (out / "samples" / str(i)).mkdir()
        for k, rec in enumerate(tqdm(records, desc=f"view run {i}", unit="sample", leave=False)):
            rows.append(_row(i, k, rec, meta))
            (out / "samples" / str(i) / f"{k}.js").write_text(_js("PIX_SAMPLE", i, k, _detail(rec, media)))
    data = {"runs": runs, "rows": rows, "statuses": list(STATUSES)}
    (out / "data.js").write_text("window.PIX_DATA = " + json.dumps(data, sort_keys=True, default=str) + ";\n")
    log.info(
        "viewer: %d runs, %d samples, %d media files -> %s",
        len(runs),
        len(rows),
        sum(v is not None for v in media.by_key.values()),
        out,
    )
    return {"index": str(out / "index.html"), "runs": len(runs), "samples": len(rows)}

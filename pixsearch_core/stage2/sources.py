"""Training-split readers for stage-2 data construction: every source yields `Item`s (or `Bad` records to quarantine).

Benchmarks the project already reads (SynthCRAG, TextVQA, InfoSeek, OVEN, CRAG-MM) go through their registered
benchmark readers with the training split; OK-VQA, A-OKVQA and WebQA are read here, in their published layouts:

    okvqa     OpenEnded_mscoco_<split>2014_questions.json + mscoco_<split>2014_annotations.json (VQA format);
              images <images>/COCO_<split>2014_<image_id:012d>.jpg
    aokvqa    aokvqa_v1p0_<split>.json (a list: question_id, image_id, question, direct_answers, ...);
              images <images>/<image_id:012d>.jpg (COCO 2017)
    webqa     WebQA_train_val.json ({guid: {Q, A, img_posFacts, split, Qcate}}) + imgs.tsv (image_id TAB base64);
              only questions with an image fact are used (the first one is the picture)

Benchmarks whose records carry an image id rather than a path (TextVQA, InfoSeek, OVEN) find the picture as
`<images>/<image_id><ext>` for ext in .jpg .JPEG .jpeg .png.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pixsearch_core.stage2.config import SourceConfig
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

BENCHMARK_READERS = ("synthcrag", "textvqa", "infoseek", "oven", "crag_mm")
OWN_READERS = ("okvqa", "aokvqa", "webqa")
IMAGE_EXTS = (".jpg", ".JPEG", ".jpeg", ".png")


@dataclass
class Item:
    """One question to build a trajectory for."""

    id: str  # "<source>/<id in the source>": unique across sources
    source: str
    question: str
    answers: list[str]
    image: str | None  # URI of the picture
    mask: str | None = None  # URI of a gold mask PNG of the entity asked about (region searches crop it)
    box: list[int] | None = None  # x0, y0, x1, y1 of that entity, where only a box is known
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bad:
    id: str
    source: str
    reason: str


def read_source(src: SourceConfig, store: ObjectStore, scratch: str) -> Iterator[Item | Bad]:
    """Items of one source, at most `src.limit`; `scratch` is where extracted pictures (WebQA) are written."""
    if src.reader in BENCHMARK_READERS:
        gen = _benchmark(src, store)
    elif src.reader in OWN_READERS:
        gen = {"okvqa": _okvqa, "aokvqa": _aokvqa, "webqa": _webqa}[src.reader](src, store, scratch)
    else:
        raise ValueError(
            f"unknown stage-2 source reader {src.reader!r}; allowed: {', '.join(BENCHMARK_READERS + OWN_READERS)}"
        )
    for n, item in enumerate(gen):
        if src.limit is not None and n >= src.limit:
            return
        yield item


def _find_image(store: ObjectStore, images: str | None, image_id: Any) -> str | None:
    if image_id is None:
        return None
    ref = str(image_id)
    if "://" in ref or ref.startswith("/") or store.exists(ref):
        return ref
    for ext in ("", *IMAGE_EXTS):
        uri = join(images, ref + ext) if images else None
        if uri and store.exists(uri):
            return uri
    return None


def _benchmark(src: SourceConfig, store: ObjectStore) -> Iterator[Item | Bad]:
    from pixsearch_core.registry import get

    bench = get("benchmark", src.reader)(store=store)
    for ex in bench.load(src.path, src.split or "train"):
        iid = f"{src.reader}/{ex.id}"
        image = _find_image(store, src.images, ex.image)
        if ex.image is not None and image is None:
            yield Bad(iid, src.reader, f"picture {ex.image!r} not found under images={src.images!r}")
            continue
        meta = dict(ex.metadata)
        yield Item(
            iid,
            src.reader,
            ex.question,
            list(ex.answers),
            image,
            mask=ex.mask if isinstance(ex.mask, str) else None,
            box=meta.pop("target_box", None),
            metadata=meta,
        )


def _json(store: ObjectStore, uri: str) -> Any:
    """A source's JSON file; a truncated or malformed one is an error that names it (the build cannot go on
    without its questions)."""
    try:
        return json.loads(store.get_bytes(uri))
    except json.JSONDecodeError as e:
        raise ValueError(f"{uri}: not valid JSON ({e})") from None


def _okvqa(src: SourceConfig, store: ObjectStore, scratch: str) -> Iterator[Item | Bad]:
    split = src.split or "train"
    questions = _json(store, join(src.path, f"OpenEnded_mscoco_{split}2014_questions.json"))["questions"]
    answers = {
        a["question_id"]: a for a in _json(store, join(src.path, f"mscoco_{split}2014_annotations.json"))["annotations"]
    }
    for q in questions:
        iid = f"okvqa/{q.get('question_id')}"
        ann = answers.get(q.get("question_id"))
        if ann is None or not isinstance(q.get("question"), str):
            yield Bad(iid, "okvqa", "no annotation for this question id" if ann is None else "question is not text")
            continue
        golds = sorted(
            {str(a["answer"]) for a in ann.get("answers", []) if a.get("answer")},
            key=lambda a: -sum(x.get("answer") == a for x in ann["answers"]),
        )
        image = _find_image(store, src.images, f"COCO_{split}2014_{int(q['image_id']):012d}")
        if image is None or not golds:
            yield Bad(iid, "okvqa", "no answers" if image else f"COCO image {q['image_id']} not under {src.images}")
            continue
        yield Item(iid, "okvqa", q["question"], golds, image)


def _aokvqa(src: SourceConfig, store: ObjectStore, scratch: str) -> Iterator[Item | Bad]:
    split = src.split or "train"
    uri = src.path if src.path.endswith(".json") else join(src.path, f"aokvqa_v1p0_{split}.json")
    for rec in _json(store, uri):
        iid = f"aokvqa/{rec.get('question_id')}"
        golds = [str(a) for a in rec.get("direct_answers") or []]
        image = _find_image(store, src.images, f"{int(rec.get('image_id', -1)):012d}")
        if not golds or image is None or not isinstance(rec.get("question"), str):
            yield Bad(
                iid,
                "aokvqa",
                "no direct_answers"
                if not golds
                else f"no question or picture (image_id {rec.get('image_id')} under {src.images})",
            )
            continue
        ordered = sorted(set(golds), key=lambda a: -golds.count(a))
        yield Item(iid, "aokvqa", rec["question"], ordered, image, metadata={"rationales": rec.get("rationales")})


def _webqa(src: SourceConfig, store: ObjectStore, scratch: str) -> Iterator[Item | Bad]:
    split = src.split or "train"
    data = _json(store, src.path if src.path.endswith(".json") else join(src.path, "WebQA_train_val.json"))
    wanted = {g: r for g, r in data.items() if r.get("split") == split and r.get("img_posFacts")}
    need = {int(r["img_posFacts"][0]["image_id"]): g for g, r in wanted.items()}
    pictures = _webqa_pictures(store, src.images or src.path, set(need), scratch)
    for guid, rec in wanted.items():
        iid = f"webqa/{guid}"
        image = pictures.get(int(rec["img_posFacts"][0]["image_id"]))
        answers = [str(a).strip('"') for a in (rec.get("A") or [])]
        if image is None or not answers or not isinstance(rec.get("Q"), str):
            yield Bad(iid, "webqa", "picture not in imgs.tsv" if image is None else "no question or answer")
            continue
        yield Item(iid, "webqa", rec["Q"].strip('"'), answers, image, metadata={"qcate": rec.get("Qcate")})


def _webqa_pictures(store: ObjectStore, root: str, ids: set[int], scratch: str) -> dict[int, str]:
    """Extract the wanted pictures from imgs.tsv (image_id TAB base64 JPEG) into `scratch`; id -> URI."""
    out: dict[int, str] = {}
    tsv = root if root.endswith(".tsv") else join(root, "imgs.tsv")
    for line in store.get_bytes(tsv).split(b"\n"):
        if b"\t" not in line:
            continue
        sid, b64 = line.split(b"\t", 1)
        try:
            image_id = int(sid)
        except ValueError:
            continue
        if image_id in ids:
            uri = join(scratch, "webqa-images", f"{image_id}.jpg")
            try:
                store.put_bytes(uri, base64.b64decode(b64.strip(), validate=True))
            except ValueError:
                log.warning("webqa image %d: bad base64, skipped", image_id)
                continue
            out[image_id] = uri
    return out

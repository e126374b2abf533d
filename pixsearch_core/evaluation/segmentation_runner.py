"""`SegmentationRunner`: the `SampleRunner` of the segmentation benchmarks (paper Tables 2-3).

Each prompt is the stage-1 training conversation of its phrase, built by the training code itself
(`prompts.sample.segmentation_sample` + `prompts.collate.Collator`, so the tokens are the training
tokens): user "<image>\\nPlease segment {phrase} in this image.", assistant "Sure: {phrase}." in the model's chat
template. The model reads it teacher-forced, as LISA's and PLUM's validation do (the LM once over the prompt); the
mask query comes from

- span="tagger" (default): the span tagger's LAST span that lies in the assistant's answer (the inference path;
  no span there = an empty mask, counted in the record's `seg.spans_found`), or
- span="phrase": the phrase's tokens, as the stage-1 B/I/O labels mark them,

and SAM's mask decoder gives logits at the image's own size. A referring expression (REFER `sent_id`) is one prompt
with the sentence as the phrase; its PNG is binary (255 = object). A semantic-segmentation image is one prompt
"the {class name}" per class (those present in the gold map, or all: `classes`), in chunks of `prompts_per_batch`;
every pixel takes the class with the highest logit, or 255 where that logit is <= `threshold` (or no class had a
span); its PNG holds train ids. PNGs go to `<predictions>/<id>.png`, the layout `pixsearch eval score` reads.

Every example is decoded on its own (never padded together with another example's prompts), so records do not
depend on how examples are batched: the Ray path and the sequential path write the same PNGs.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np

from pixsearch_core.benchmarks.base import Example
from pixsearch_core.storage import ObjectStore, StorageConfig, join

log = logging.getLogger(__name__)

IGNORE_LABEL = 255


def combine_label_map(
    shape: tuple[int, int], class_logits: list[tuple[int, np.ndarray | None]], threshold: float = 0.0
) -> np.ndarray:
    """(train id, (H, W) logits or None) per prompted class -> uint8 label map: per pixel the class with the
    highest logit (the first on ties), IGNORE_LABEL where that logit is <= threshold or no class has logits."""
    label = np.full(shape, IGNORE_LABEL, dtype=np.uint8)
    best = np.full(shape, -np.inf, dtype=np.float32)
    for cls, logits in class_logits:
        if logits is None:
            continue
        better = logits > best
        best[better] = logits[better]
        label[better] = cls
    label[best <= threshold] = IGNORE_LABEL
    return label


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class SegmentationRunner:
    def __init__(
        self,
        model: str,
        benchmark: str,
        predictions: str,
        model_size: str = "tiny",
        model_overrides: list[str] | None = None,
        device: str = "auto",
        storage: dict[str, Any] | None = None,
        span: str = "tagger",
        template: str = "vicuna_v1",
        max_length: int = 512,
        threshold: float = 0.0,
        prompts_per_batch: int = 16,
        class_names: dict[str, str] | None = None,
        classes: str = "present",
    ):
        if span not in ("tagger", "phrase"):
            raise ValueError(f"span {span!r}; allowed: tagger, phrase")
        if classes not in ("present", "all"):
            raise ValueError(f"classes {classes!r}; allowed: present, all")
        self.model_ref, self.benchmark, self.predictions = model, benchmark, predictions
        self.model_size, self.model_overrides, self.device = model_size, list(model_overrides or []), device
        self.storage = StorageConfig(**(storage or {}))
        self.span, self.template, self.max_length = span, template, max_length
        self.threshold, self.prompts_per_batch, self.classes = threshold, prompts_per_batch, classes
        self.class_names = {int(k): v for k, v in (class_names or {}).items()}
        self.model = None

    # ------------------------------------------------------------ setup
    def _build_model(self):
        from pixsearch_core.evaluation.model_runner import _device
        from pixsearch_core.registry import get, names

        if self.model_ref in names("model"):
            model = get("model", self.model_ref)(overrides=self.model_overrides)
        else:  # a checkpoint of trainable weights on top of the configured builder
            from pixsearch_core.modeling.build import build_from_checkpoint

            model = build_from_checkpoint(
                self.model_ref, self.model_size, self.model_overrides, ObjectStore(self.storage)
            )
        return model.to(_device(self.device)).eval()

    def setup(self) -> None:
        from pixsearch_core.prompts.collate import Collator
        from pixsearch_core.registry import get

        self.store = ObjectStore(self.storage)
        self.model = self._build_model()
        self.collate = Collator(self.model.tokenizer, self.max_length, image_max_side=32, template=self.template)
        self.bench_cls = get("benchmark", self.benchmark)
        log.info("segmentation replica ready: model %s, %s, span %s", self.model_ref, self.benchmark, self.span)

    # ------------------------------------------------------------ prompts -> mask logits
    def _prompts(self, sid: str, phrases: list[str]) -> dict:
        from pixsearch_core.prompts.sample import segmentation_sample

        blank = np.zeros((1, 1), np.uint8)  # the collator needs one mask per span; only its tokens are used here
        return self.collate(
            [segmentation_sample(f"{sid}-{j}", self.benchmark, None, [p], [blank]) for j, p in enumerate(phrases)]
        )

    def _pick(self, spans: list[tuple[int, int]], answer) -> int | None:
        """Index of the span to use: phrase mode has exactly the phrase's span (if not truncated away); tagger
        mode the last span overlapping the answer tokens."""
        if self.span == "phrase":
            return 0 if spans else None
        inside = [j for j, (s, e) in enumerate(spans) if bool(answer[s:e].any())]
        return inside[-1] if inside else None

    def _chunk_logits(self, images, batch) -> list[np.ndarray | None]:
        """The LM once over the prompts, the spans (tagger or phrase), then SAM for the chosen span of each row
        only (with PLUM's mask feedback, the spans before it too, which feed it: as `predict_mask` does)."""
        import torch

        from pixsearch_core.modeling.span_tagger import extract_spans
        from pixsearch_core.prompts.labels import IGNORE

        m, dev = self.model, self.model.device
        with torch.no_grad():
            hidden, text = m._text_states(images, None, batch["attention_mask"].to(dev), batch["input_ids"].to(dev))
            tags = batch["tags"] if self.span == "phrase" else m.span_tagger(hidden, text).argmax(-1)
            spans = extract_spans(tags, text)
            answer = (batch["labels"] != IGNORE).cpu()
            chosen = [self._pick(row, answer[b]) for b, row in enumerate(spans)]
            todo = [[] if j is None else row[: j + 1] if m.mask_feedback else [row[j]] for row, j in zip(spans, chosen)]
            logits, _ = m.segment_spans(images, hidden, todo)
        return [None if j is None else lg[-1].float().cpu().numpy() for lg, j in zip(logits, chosen)]

    def _segment(self, sid: str, image: np.ndarray, phrases: list[str]) -> list[np.ndarray | None]:
        """One (H, W) float logit map per phrase (None where no span was found), decoded in chunks."""
        from pixsearch_core.modeling.outputs import PreparedImages

        key = self.model.prepare_images([image]).keys[0]
        out: list[np.ndarray | None] = []
        for i in range(0, len(phrases), self.prompts_per_batch):
            batch = self._prompts(sid, phrases[i : i + self.prompts_per_batch])
            n = len(batch["ids"])
            out += self._chunk_logits(PreparedImages([image] * n, [key] * n), batch)
        return out

    # ------------------------------------------------------------ examples
    def _image(self, uri: str) -> np.ndarray:
        from PIL import Image

        return np.array(Image.open(io.BytesIO(self.store.get_bytes(uri))).convert("RGB"))  # writable

    def _class_ids(self, ex: Example) -> list[int]:
        if self.classes == "all":
            return sorted(self.class_names)
        from pixsearch_core.benchmarks._semseg import read_png

        gold = self.bench_cls.to_train_ids(read_png(self.store.get_bytes(ex.metadata["annotation"])))
        present = [int(v) for v in np.unique(gold) if int(v) != IGNORE_LABEL]
        unknown = [v for v in present if v not in self.class_names]
        if unknown:
            raise ValueError(f"{ex.id}: gold classes {unknown} have no name in the class list")
        return present

    def _one(self, ex: Example) -> dict[str, Any]:
        t0 = time.perf_counter()
        image = self._image(ex.image)
        out: dict[str, Any] = {"answer": "", "mask_rle": None}
        if self.class_names:  # semantic segmentation: one prompt per class
            ids = self._class_ids(ex)
            logits = self._segment(ex.id, image, [f"the {self.class_names[c]}" for c in ids])
            pred = combine_label_map(image.shape[:2], list(zip(ids, logits)), self.threshold)
            out["seg"] = {"prompts": len(ids), "spans_found": sum(lg is not None for lg in logits), "classes": ids}
        else:  # a referring expression
            from pixsearch_core.masks import mask_to_rle

            (logits,) = self._segment(ex.id, image, [ex.question])
            mask = np.zeros(image.shape[:2], bool) if logits is None else logits > self.threshold
            pred = mask.astype(np.uint8) * 255
            out.update(
                answer=f"Sure: {ex.question}.",
                mask_rle=mask_to_rle(mask),
                seg={"prompts": 1, "spans_found": int(logits is not None)},
            )
        out["prediction"] = join(self.predictions, f"{ex.id}.png")
        self.store.put_bytes(out["prediction"], _png(pred))
        out["timings"] = {"segment_s": time.perf_counter() - t0}
        return out

    def run_batch(self, examples: list[Example]) -> list[dict[str, Any]]:
        if self.model is None:
            raise RuntimeError("SegmentationRunner.run_batch before setup()")
        outs = []
        for ex in examples:
            try:
                outs.append(self._one(ex))
            except Exception as e:  # this sample becomes an error record; the others go on
                log.warning("sample %s: %s", ex.id, e)
                outs.append({"error": f"{type(e).__name__}: {e}"})
        return outs

"""`DecodingRunner`: the real `SampleRunner`: a model replica + a search client + `SearchInterleavedDecoder`.

Written against the documented APIs of `pixsearch_core.decoding` (SearchInterleavedDecoder, DecodeOptions,
DecodeRequest, Trajectory), `pixsearch_core.modeling` (builders of registry kind "model", `load_trainable`) and
the retriever factory (pixsearch_core/retrieval/backends.py `make_retriever`, from the run's `retriever` config).
Everything is imported inside `setup()`, so this module imports without torch, the model or the index (and a run
with `--model oracle` needs none of them).

The model becomes a decoder `DecoderModel` (prefill / extend / select / predict_mask) through, in order: its own
`as_decoder_model()`, being one already, or `pixsearch_core.decoding.pixsearch_adapter.PixSearchAdapter`.
A batch is decoded as an image sub-batch and a text-only sub-batch (the adapter takes one kind per batch).
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

from pixsearch_core.benchmarks.base import Example
from pixsearch_core.storage import ObjectStore, StorageConfig

log = logging.getLogger(__name__)


def _device(setting: str) -> str:
    if setting != "auto":
        return setting
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class DecodingRunner:
    def __init__(
        self,
        model: str,
        retriever: dict[str, Any],
        decode: dict[str, Any],
        model_size: str = "tiny",
        model_overrides: list[str] | None = None,
        device: str = "auto",
        storage: dict[str, Any] | None = None,
        template: str = "vicuna_v1",
        pictures: dict[str, Any] | None = None,
    ):
        from pixsearch_core.retrieval.backends import RetrieverConfig

        self.model_ref, self.decode = model, dict(decode)
        self.retriever = RetrieverConfig.model_validate(retriever)
        self.template = template
        self.model_size, self.model_overrides, self.device = model_size, list(model_overrides or []), device
        self.storage = StorageConfig(**(storage or {}))
        self.pictures = dict(pictures or {})
        self.decoder = None

    def _model(self):
        from pixsearch_core.registry import get, names

        if self.model_ref in names("model"):
            model = get("model", self.model_ref)(overrides=self.model_overrides)
        else:  # a checkpoint of trainable weights on top of the configured builder
            from pixsearch_core.modeling.build import build_from_checkpoint

            model = build_from_checkpoint(
                self.model_ref, self.model_size, self.model_overrides, ObjectStore(self.storage)
            )
        model = model.to(_device(self.device)).eval()
        if hasattr(model, "as_decoder_model"):
            return model.as_decoder_model()
        if all(hasattr(model, m) for m in ("prefill", "extend", "select", "predict_mask")):
            return model
        try:
            from pixsearch_core.decoding.pixsearch_adapter import PixSearchAdapter
        except ImportError:
            raise TypeError(
                f"model {self.model_ref!r} ({type(model).__name__}) is not a decoder model (needs "
                "prefill/extend/select/predict_mask or as_decoder_model()) and "
                "pixsearch_core.decoding.pixsearch_adapter is not installed"
            ) from None
        return PixSearchAdapter(model)

    def setup(self) -> None:
        from pixsearch_core.benchmarks.pictures import FetchPolicy, PictureCache
        from pixsearch_core.decoding import DecodeOptions, SearchInterleavedDecoder
        from pixsearch_core.retrieval.backends import make_retriever

        self.store = ObjectStore(self.storage)
        settings = dict(self.pictures)
        cache = settings.pop("cache", None)
        self.picture_cache = PictureCache(self.store, cache, FetchPolicy(**settings)) if cache else None
        searcher = make_retriever(self.retriever, self.store)
        self.decoder = SearchInterleavedDecoder(self._model(), searcher, DecodeOptions(**self.decode))
        log.info(
            "replica ready: model %s, retriever %s %s", self.model_ref, self.retriever.kind, self.retriever.uri or ""
        )

    def _image(self, ref: str | None):
        """The picture as RGB: an object-store URI or path, or an http(s) URL fetched through the picture cache
        (PictureUnavailable names the URL when it cannot be had)."""
        if not ref:
            return None
        from PIL import Image

        from pixsearch_core.benchmarks.pictures import PictureUnavailable, is_url

        if is_url(ref):
            if self.picture_cache is None:
                raise PictureUnavailable(f"image_url {ref}: no picture cache configured to fetch it into")
            ref = self.picture_cache.fetch(ref)
        data = self.store.get_bytes(ref)
        try:
            return Image.open(io.BytesIO(data)).convert("RGB")
        except OSError as e:
            raise PictureUnavailable(f"picture {ref}: cannot be read as an image ({e})") from None

    def _request(self, ex: Example):
        from pixsearch_core.benchmarks.pictures import PictureUnavailable
        from pixsearch_core.decoding import DecodeRequest

        if ex.metadata.get("image_error"):
            raise PictureUnavailable(ex.metadata["image_error"])

        from pixsearch_core.modeling.templates import generation_prompt

        image = self._image(ex.image)
        prompt = generation_prompt(self.template, ex.question, with_image=image is not None)  # as in training
        return DecodeRequest(ex.id, prompt, image=image, question=ex.question)

    def run_batch(self, examples: list[Example]) -> list[dict[str, Any]]:
        assert self.decoder is not None, "run_batch before setup()"
        requests = [self._request(ex) for ex in examples]
        outputs: list[dict[str, Any] | None] = [None] * len(examples)
        for with_image in (True, False):
            idx = [i for i, r in enumerate(requests) if (r.image is not None) == with_image]
            if not idx:
                continue
            t0 = time.perf_counter()
            trajectories = self.decoder.decode([requests[i] for i in idx])
            per = (time.perf_counter() - t0) / len(idx)
            for i, traj in zip(idx, trajectories):
                outputs[i] = _output(traj, per)
        return outputs


def _output(traj, decode_s: float) -> dict[str, Any]:
    searches = [
        {
            "hop": s.hop,
            "modality": s.modality,
            "requested": s.requested,
            "text": s.text,
            "box": list(s.crop_box) if s.crop_box else None,
            "mask_rle": s.mask_rle,
            "evidence_ids": list(s.evidence_ids),
            "latency_s": s.latency_s,
            "error": s.error,
        }
        for s in traj.searches
    ]
    masks = [s["mask_rle"] for s in searches if s["mask_rle"]]
    traj_dict = traj.to_dict()
    traj_dict.pop("searches", None)
    return {
        "answer": traj.answer,
        "searches": searches,
        "mask_rle": masks[-1] if masks else None,
        "trajectory": traj_dict,
        "timings": {"decode_s": decode_s, "search_s": sum(s["latency_s"] for s in searches)},
    }

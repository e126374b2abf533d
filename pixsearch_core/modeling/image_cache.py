"""A small LRU cache of SAM image embeddings keyed by image content, so that several region searches on one image
(and the prefix encoding of the same image) pay for the image encoder once."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddingCache:
    """key -> value, least recently used evicted past `max_items` (0 disables caching)."""

    def __init__(self, max_items: int = 32) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        if self.max_items == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items


class DiskEmbeddingCache:
    """Frozen-encoder embeddings on local disk: one safetensors file per image, under a folder named by the
    encoder's fingerprint (its weights, input size and pixel normalization), so that every process and every run
    that uses the same frozen encoder shares them: both training ranks, stage 1 and stage 2, each eval mode.

    The image encoder of `mini` (LiteMedSAM's TinyViT) takes about 1.6 s per 256-px image on 2 CPU cores, most of
    a training step; its output for an image never changes while it is frozen. Files are written to a temporary
    name and renamed, so a killed writer leaves no partial entry; an unreadable entry is recomputed and replaced.
    Exact: the stored tensor is the encoder's output, bit for bit (same dtype).

        cache = DiskEmbeddingCache("out/demo-mini/sam-cache", fingerprint)
        cache.get(key) -> (embedding, (h, w)) or None;  cache.put(key, embedding, (h, w))
    """

    def __init__(self, directory: str | Path, fingerprint: str) -> None:
        self.directory = Path(directory).expanduser() / fingerprint
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def get(self, key: str):
        from safetensors import SafetensorError, safe_open

        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                emb = f.get_tensor("embedding")
            size = (int(meta["h"]), int(meta["w"]))
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            log.warning("SAM embedding cache: unreadable entry %s (%s); recomputing it", path, e)
            self.misses += 1
            return None
        self.hits += 1
        return emb, size

    def put(self, key: str, embedding, size: tuple[int, int]) -> None:
        from safetensors.torch import save_file

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(
            {"embedding": embedding.detach().contiguous().cpu()},
            str(tmp),
            metadata={"h": str(int(size[0])), "w": str(int(size[1]))},
        )
        os.replace(tmp, path)


def encoder_fingerprint(encoder, image_size: int, pixel_mean, pixel_std) -> str:
    """sha256 (first 16 hex digits) of a frozen encoder's weights, input size and pixel normalization. An encoder
    whose weights live outside torch says what identifies them in a `fingerprint_bytes` attribute."""
    import hashlib

    import torch

    h = hashlib.sha256()
    h.update(repr((image_size, [float(v) for v in pixel_mean], [float(v) for v in pixel_std])).encode())
    h.update(getattr(encoder, "fingerprint_bytes", b""))  # weights outside torch (dinov2's ONNX file)
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(repr((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too
    return h.hexdigest()[:16]

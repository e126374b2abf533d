"""What the readers share: rejected records, path resolution, label maps, segmentation conversations. (Mask
images are read by `pixsearch_core.masks.read_mask_png`.)"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

from pixsearch_core.storage import join
from pixsearch_core.training.sample import IMAGE, Sample


@dataclass
class Rejected:
    """A source record that was not turned into a sample, with the reason (written to the quarantine file)."""

    id: str
    reason: str


def resolve(base: str, ref: str) -> str:
    """An image/mask reference: absolute paths and URIs as they are, relative ones under `base`."""
    return ref if ref.startswith("/") or "://" in ref else join(base, ref)


def read_label_map(store, uri: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(store.get_bytes(uri))))


def pick(items: list, k: int, key: str) -> list:
    """Up to k items, a deterministic choice given `key` (the sample id)."""
    if len(items) <= k:
        return list(items)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]


def phrase_list(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def segmentation_sample(sid: str, source: str, image: bytes, phrases: list[str], masks: list[np.ndarray]) -> Sample:
    """A referring/semantic/part segmentation sample: the user asks for the phrases, the assistant names them;
    each phrase in the answer is one B/I/O span with its mask."""
    question = f"{IMAGE}\nPlease segment {phrase_list(phrases)} in this image."
    answer, spans = "Sure: ", []
    for i, p in enumerate(phrases):
        if i:
            answer += " and " if i == len(phrases) - 1 else ", "
        spans.append((1, len(answer), len(answer) + len(p)))
        answer += p
    answer += "."
    return Sample(id=sid, source=source, stage=1, image=image,
                  conversation=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                  spans=spans, masks=np.stack(masks).astype(np.uint8))

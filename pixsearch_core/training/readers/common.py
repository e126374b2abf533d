"""What the readers share: rejected records, path resolution, label maps, segmentation conversations. (Mask
images are read by `pixsearch_core.masks.read_mask_png`.)"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

from pixsearch_core.prompts.sample import IMAGE, Sample, phrase_list, segmentation_sample  # noqa: F401  (readers use them)
from pixsearch_core.storage import uri_under

#: what one bad record raises while it is read (a missing file, a wrong type, a bad value, a path leaving its
#: root): the record is quarantined with the error, the source goes on
RECORD_ERRORS = (OSError, ValueError, KeyError, TypeError)


@dataclass
class Rejected:
    """A source record that was not turned into a sample, with the reason (written to the quarantine file)."""

    id: str
    reason: str


def resolve(base: str, ref: str) -> str:
    """An image/mask reference: absolute paths and URIs as they are (a training source is chosen by whoever
    configures the run), relative ones under `base` and refused (UnsafePathError) when they climb out of it."""
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"image/mask reference {ref!r:.80} should be a path or URI")
    return ref if ref.startswith("/") or "://" in ref else uri_under(base, ref)


def text_field(rec: dict, name: str) -> str:
    """`rec[name]` when it is a non-empty string; else ValueError naming the field and what it holds."""
    value = rec.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {name!r} should be a non-empty string, got {type(value).__name__}: {value!r:.80}")
    return value


def read_label_map(store, uri: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(store.get_bytes(uri))))


def pick(items: list, k: int, key: str) -> list:
    """Up to k items, a deterministic choice given `key` (the sample id)."""
    if len(items) <= k:
        return list(items)
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))]

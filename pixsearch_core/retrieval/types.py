"""The search contract: `search(query, k) -> list[Evidence]`, batched as `search_many`.

A query is a `TextQuery`, an `ImageQuery` (the whole image) or a `RegionQuery` (an image and a boolean mask of the
same height and width; the searcher crops by the mask's box). Images are PIL images or HxWxC uint8 arrays.
A failed search raises a `SearchError`: `BadSearchRequest` (the request is wrong), `SearchTimeout` or
`SearchUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class TextQuery:
    text: str

    def __post_init__(self):
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"TextQuery needs non-empty text, got {self.text!r}")

    @property
    def modality(self) -> str:
        return "text"


@dataclass(frozen=True, eq=False)
class ImageQuery:
    image: Any  # PIL.Image.Image or np.ndarray (H, W, 3) uint8

    @property
    def modality(self) -> str:
        return "image"


def image_hw(image) -> tuple[int, int]:
    """(height, width) of a PIL image or an (H, W, ...) array."""
    size = getattr(image, "size", None)
    return (size[1], size[0]) if isinstance(size, tuple) else tuple(np.asarray(image).shape[:2])


@dataclass(frozen=True, eq=False)
class RegionQuery:
    image: Any  # PIL.Image.Image or np.ndarray (H, W, 3) uint8
    mask: np.ndarray  # (H, W) bool; must match the image's height and width and be non-empty

    def __post_init__(self):
        mask = np.asarray(self.mask)
        if mask.ndim != 2:
            raise ValueError(f"RegionQuery mask must be 2-D (H, W), got shape {mask.shape}")
        hw = image_hw(self.image)
        if tuple(mask.shape) != hw:
            raise ValueError(f"RegionQuery mask shape {mask.shape} does not match image (H, W) {tuple(hw)}")
        if not mask.any():
            raise ValueError("RegionQuery mask is empty: nothing to crop")

    @property
    def modality(self) -> str:
        return "region"


Query = TextQuery | ImageQuery | RegionQuery


class SearchError(RuntimeError):
    """A search failed (base class of every search error, whichever backend raised it)."""


class BadSearchRequest(SearchError, ValueError):
    """The request is invalid (empty text, undecodable image, wrong mask shape, k out of range, too large)."""


class SearchTimeout(SearchError, TimeoutError):
    """No answer within the deadline (after every retry)."""


class SearchUnavailable(SearchError):
    """The backend could not be reached or failed internally (after every retry)."""


@dataclass(frozen=True)
class Evidence:
    """One retrieved document passage."""

    doc_id: str
    title: str
    text: str
    score: float
    index: Literal["text", "image", "web", "replay"] | str  # which index answered
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. image id, shard, url

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "score": float(self.score),
            "index": self.index,
            "meta": dict(self.meta),
        }


@runtime_checkable
class Searcher(Protocol):
    """What the decoder and eval call. Implementations: local sharded FAISS, Ray actor, HTTP, CRAG-MM API, replay."""

    def search(self, query: Query, k: int) -> list[Evidence]: ...

    def search_many(self, queries: list[Query], k: int) -> list[list[Evidence]]: ...

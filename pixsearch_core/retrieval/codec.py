"""The JSON wire format of search requests and answers (the HTTP API, replay-cache keys).

    request  {"k": 5, "queries": [{"type": "text", "text": "..."},
                                  {"type": "image", "image": "<base64 PNG/JPEG>"},
                                  {"type": "region", "image": "<base64>", "mask": {"rle": {"size": [H, W],
                                                                                            "counts": [...]}}}]}
             a region mask may instead be {"png": "<base64 PNG, nonzero = inside>"}
    answer   {"index_version": "name/version", "results": [[Evidence.to_dict(), ...], ...]}   (one list per query)
    error    {"error": {"type": "bad_request" | "internal", "message": "..."}}

RLE masks are COCO-style uncompressed (pixsearch_core/masks.py). Every decoding problem is a
`BadSearchRequest` that names the query position and what was wrong.

Decoding is bounded by `RequestLimits` before anything large is allocated: an image's pixel count and aspect
ratio are checked from its header (before its pixels are decoded), all images of one request share a pixel
budget, only PNG / JPEG / WebP / GIF / BMP are opened, and a mask (RLE or PNG) must declare exactly the size of
its already decoded image before it is expanded (a 200-byte RLE claiming 30000x30000 is refused, not allocated).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.masks import mask_from_image, mask_to_rle, rle_to_mask
from pixsearch_core.retrieval.types import (
    BadSearchRequest,
    Evidence,
    ImageQuery,
    Query,
    RegionQuery,
    TextQuery,
    image_hw,
)

MAX_IMAGE_PIXELS = 12_000_000
QUERY_TYPES = ("text", "image", "region")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")  # never EPS/PDF-like formats that call out to tools


class RequestLimits(Config):
    """What one search request may make the server decode (checked before the pixels are allocated)."""

    max_queries: int = Field(256, ge=1, description="queries per request")
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, ge=1, description="pixels of one image (e.g. 4000x3000)")
    max_request_pixels: int = Field(36_000_000, ge=1, description="pixels of all images of one request")
    max_aspect_ratio: float = Field(20.0, ge=1, description="longer side / shorter side of an image")


class _Budget:
    """The pixels a request may still decode."""

    def __init__(self, limits: RequestLimits):
        self.limits, self.left = limits, limits.max_request_pixels

    def take(self, w: int, h: int, where: str) -> None:
        lim = self.limits
        if w * h > lim.max_image_pixels:
            raise BadSearchRequest(f"{where}: {w}x{h} exceeds {lim.max_image_pixels} pixels per image")
        if max(w, h) > lim.max_aspect_ratio * max(min(w, h), 1):
            raise BadSearchRequest(f"{where}: {w}x{h} has an aspect ratio over {lim.max_aspect_ratio:g}")
        if w * h > self.left:
            raise BadSearchRequest(f"{where}: the request's images exceed {lim.max_request_pixels} pixels together")
        self.left -= w * h


def image_to_b64(image) -> str:
    """A PIL image or (H, W, 3) uint8 array as base64 PNG (lossless, so the server sees the same pixels)."""
    img = image if hasattr(image, "save") else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def b64_to_image(
    data: Any, where: str, budget: _Budget | None = None, size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode a base64 image, checking its header (pixels, aspect, `size` = required (W, H)) before its pixels."""
    budget = budget or _Budget(RequestLimits())
    if not isinstance(data, str) or not data:
        raise BadSearchRequest(f"{where}: expected a base64 string, got {type(data).__name__}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadSearchRequest(f"{where}: not valid base64 ({e})") from None
    try:
        img = Image.open(io.BytesIO(raw), formats=IMAGE_FORMATS)
        if size is not None and img.size != size:
            raise BadSearchRequest(
                f"{where}: {img.width}x{img.height} does not match image (W x H) {size[0]}x{size[1]}"
            )
        if size is None:
            budget.take(img.width, img.height, where)
        img.load()
    except BadSearchRequest:
        raise
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise BadSearchRequest(f"{where}: bytes are not a decodable image ({type(e).__name__}: {e})") from None
    return img.convert("RGB")


def mask_to_wire(mask: np.ndarray) -> dict:
    return {"rle": mask_to_rle(np.asarray(mask, dtype=bool))}


def wire_to_mask(data: Any, where: str, hw: tuple[int, int]) -> np.ndarray:
    """The (H, W) mask of a region query whose image is (H, W); a mask of any other declared size is refused."""
    if isinstance(data, dict) and "rle" in data:
        rle = data["rle"]
        if not isinstance(rle, dict) or not isinstance(rle.get("counts"), list):
            raise BadSearchRequest(f"{where}: RLE must be {{'size': [H, W], 'counts': [int, ...]}} (uncompressed)")
        try:
            return rle_to_mask(rle, expect_hw=hw)
        except (KeyError, TypeError, ValueError) as e:
            raise BadSearchRequest(f"{where}: bad RLE mask ({type(e).__name__}: {e})") from None
    if isinstance(data, dict) and "png" in data:
        return mask_from_image(b64_to_image(data["png"], where, size=(hw[1], hw[0])))
    raise BadSearchRequest(f"{where}: mask must be {{'rle': {{size, counts}}}} or {{'png': base64}}")


def query_to_wire(query: Query) -> dict:
    if isinstance(query, TextQuery):
        return {"type": "text", "text": query.text}
    if isinstance(query, ImageQuery):
        return {"type": "image", "image": image_to_b64(query.image)}
    if isinstance(query, RegionQuery):
        return {"type": "region", "image": image_to_b64(query.image), "mask": mask_to_wire(query.mask)}
    raise TypeError(f"unknown query type {type(query).__name__}; expected TextQuery, ImageQuery or RegionQuery")


def wire_to_query(data: Any, i: int = 0, budget: _Budget | None = None) -> Query:
    where = f"queries[{i}]"
    if not isinstance(data, dict) or data.get("type") not in QUERY_TYPES:
        got = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise BadSearchRequest(f"{where}: type must be one of {list(QUERY_TYPES)}, got {got!r}")
    try:
        if data["type"] == "text":
            return TextQuery(data.get("text"))
        image = b64_to_image(data.get("image"), f"{where}.image", budget)
        if data["type"] == "image":
            return ImageQuery(image)
        return RegionQuery(image, wire_to_mask(data.get("mask"), f"{where}.mask", image_hw(image)))
    except BadSearchRequest:
        raise
    except ValueError as e:  # TextQuery / RegionQuery validation (empty text, mask shape, empty mask)
        raise BadSearchRequest(f"{where}: {e}") from None


def request_to_wire(queries: list[Query], k: int) -> dict:
    return {"k": k, "queries": [query_to_wire(q) for q in queries]}


def wire_to_request(
    body: Any, max_queries: int | None = None, limits: RequestLimits | None = None
) -> tuple[list[Query], Any]:
    """(queries, k) from a decoded JSON body, within `limits`; k is range-checked by the searcher."""
    limits = limits or RequestLimits()
    max_queries = max_queries or limits.max_queries
    if not isinstance(body, dict) or not isinstance(body.get("queries"), list):
        raise BadSearchRequest("body must be a JSON object {'k': int, 'queries': [...]}")
    if not 1 <= len(body["queries"]) <= max_queries:
        raise BadSearchRequest(f"a request holds 1..{max_queries} queries, got {len(body['queries'])}")
    budget = _Budget(limits)
    return [wire_to_query(q, i, budget) for i, q in enumerate(body["queries"])], body.get("k", 5)


def evidence_from_dict(d: dict) -> Evidence:
    return Evidence(
        doc_id=d["doc_id"],
        title=d["title"],
        text=d["text"],
        score=float(d["score"]),
        index=d["index"],
        meta=dict(d.get("meta") or {}),
    )


def query_hash(query: Query) -> str:
    """Content hash of a query: text, or the decoded pixels (shape + bytes) and the mask's bits."""
    h = hashlib.sha256()
    if isinstance(query, TextQuery):
        h.update(b"text\0" + query.text.encode())
        return h.hexdigest()
    arr = np.ascontiguousarray(
        np.asarray(query.image.convert("RGB") if hasattr(query.image, "convert") else query.image, dtype=np.uint8)
    )
    h.update(type(query).__name__.encode() + b"\0" + str(arr.shape).encode() + arr.tobytes())
    if isinstance(query, RegionQuery):
        mask = np.asarray(query.mask, dtype=bool)
        h.update(b"\0mask" + str(mask.shape).encode() + np.packbits(mask).tobytes())
    return h.hexdigest()

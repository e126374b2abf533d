"""The one training sample format every reader produces, and its webdataset encoding.

    Sample(id, source, stage, image, conversation, spans, masks, query_types)

- image: encoded image bytes (PNG/JPEG) or None (a text-only row; the collator gives it a blank image).
- conversation: [{"role": "user" | "assistant", "content": str}], the first user turn holding `IMAGE` once.
- spans: B/I/O targets as character spans [(turn, start, end)] in the contents of assistant turns, in order;
  the collator turns them into per-token B/I/O labels (first token B, the rest I, every other token O).
- masks: uint8 (N, H, W) at the image's size, one per span (N = 0 when there is nothing to segment).

Encoded for webdataset as `<key>.img` (the bytes), `<key>.json` (everything else) and `<key>.masks.npz`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

from pixsearch_core.modeling.templates import IMAGE  # noqa: F401  (re-exported: the image slot in a conversation)

ROLES = ("user", "assistant")


@dataclass
class Sample:
    id: str
    source: str
    stage: int
    image: bytes | None
    conversation: list[dict[str, str]]
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    masks: np.ndarray | None = None
    query_types: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"sample {self.id}: stage {self.stage!r}; allowed: 1, 2")
        for turn in self.conversation:
            if turn.get("role") not in ROLES:
                raise ValueError(f"sample {self.id}: role {turn.get('role')!r}; allowed: {', '.join(ROLES)}")
        n = 0 if self.masks is None else len(self.masks)
        if self.spans and n != len(self.spans):
            raise ValueError(f"sample {self.id}: {len(self.spans)} spans but {n} masks; give one mask per span")
        for turn, s, e in self.spans:
            conv = self.conversation[turn]
            if conv["role"] != "assistant" or not 0 <= s < e <= len(conv["content"]):
                raise ValueError(f"sample {self.id}: span {(turn, s, e)} is not inside an assistant turn")


def check(sample: Sample) -> str | None:
    """Why a sample would fail in the collator (None when it is usable): every turn's content a string, the image
    decodable (fully, so a truncated file is caught), the masks (N, H, W) at the image's size. Run at pack time."""
    bad = [i for i, t in enumerate(sample.conversation) if not isinstance(t.get("content"), str)]
    if bad:
        got = type(sample.conversation[bad[0]].get("content")).__name__
        return f"turns {bad}: content should be a string, got {got}"
    from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER

    if any(IMAGE_PLACEHOLDER in t["content"] for t in sample.conversation):  # the collator places the only one
        return f"the conversation holds the internal image slot {IMAGE_PLACEHOLDER}"
    if sample.image is None:
        return "masks but no image" if sample.masks is not None and len(sample.masks) else None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(sample.image)) as img:
            img.load()
            w, h = img.size
    except Exception as e:  # PIL raises many types for bad data (OSError, SyntaxError, DecompressionBombError...)
        return f"image does not decode: {type(e).__name__}: {e}"
    masks = sample.masks
    if masks is not None and len(masks) and (np.ndim(masks) != 3 or tuple(np.shape(masks)[1:]) != (h, w)):
        return f"masks of shape {tuple(np.shape(masks))}; the image is {h}x{w} (N, {h}, {w} expected)"
    return None


def find_span(text: str, phrase: str, start: int = 0) -> tuple[int, int] | None:
    """The first case-insensitive occurrence of `phrase` in `text` at or after `start`, as [s, e)."""
    i = text.lower().find(phrase.lower(), start)
    return None if i < 0 or not phrase else (i, i + len(phrase))


def encode(sample: Sample) -> dict[str, bytes | str]:
    """-> a webdataset record (keys __key__, img, json, masks.npz)."""
    meta = {
        "id": sample.id,
        "source": sample.source,
        "stage": sample.stage,
        "conversation": sample.conversation,
        "spans": [list(s) for s in sample.spans],
        "query_types": sample.query_types,
        "has_image": sample.image is not None,
    }
    buf = io.BytesIO()
    masks = np.zeros((0, 1, 1), np.uint8) if sample.masks is None else np.asarray(sample.masks, np.uint8)
    np.savez_compressed(buf, masks=masks)
    rec = {"__key__": sample.id.replace(".", "_"), "json": json.dumps(meta).encode(), "masks.npz": buf.getvalue()}
    rec["img"] = sample.image or b""
    return rec


def decode(record: dict[str, bytes]) -> Sample:
    """Inverse of `encode` (record values as raw bytes)."""
    meta = json.loads(record["json"])
    masks = np.load(io.BytesIO(record["masks.npz"]))["masks"]
    return Sample(
        id=meta["id"],
        source=meta["source"],
        stage=meta["stage"],
        image=record["img"] if meta["has_image"] else None,
        conversation=meta["conversation"],
        spans=[tuple(s) for s in meta["spans"]],
        masks=masks if len(masks) else None,
        query_types=meta["query_types"],
    )


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
    return Sample(
        id=sid,
        source=source,
        stage=1,
        image=image,
        conversation=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        spans=spans,
        masks=np.stack(masks).astype(np.uint8),
    )

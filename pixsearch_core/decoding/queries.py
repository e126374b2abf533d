"""Payload parsing and evidence formatting: the pure helpers of the decoder.

A search payload is the token ids between `<search>` and `</search>`:
    [<image>]   -> the whole image          [<region>] -> mask of the last entity span, cropped
    text tokens -> the decoded text is the query
Anything else (two modality tokens, a modality token plus text, a forced-only token, nothing) is malformed and
is reported with a reason instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixsearch_core.retrieval.types import Evidence


@dataclass(frozen=True)
class ParsedPayload:
    modality: str | None  # "region" | "image" | "text" | None when malformed
    text: str = ""
    error: str | None = None  # "empty_payload" | "unknown_modality"
    detail: str = ""


def parse_payload(payload: list[int], ids, decode) -> ParsedPayload:
    """Parse one payload. `ids` is a `SpecialTokenIds`, `decode(list[int]) -> str` the tokenizer's decode."""
    modality_of = {ids.image: "image", ids.region: "region"}
    forced_only = {ids.info_start, ids.info_end, ids.image_placeholder, ids.search_start, ids.search_end}
    found = [modality_of[t] for t in payload if t in modality_of]
    stray = [t for t in payload if t in forced_only]
    rest = [t for t in payload if t not in modality_of and t not in forced_only]
    text = decode(rest).strip() if rest else ""
    if stray:
        return ParsedPayload(None, text, "unknown_modality", f"payload holds control tokens {decode(stray)!r}")
    if len(found) > 1:
        return ParsedPayload(None, text, "unknown_modality", f"several modality tokens {found}")
    if found and text:
        return ParsedPayload(None, text, "unknown_modality", f"<{found[0]}> followed by text {text!r}")
    if found:
        return ParsedPayload(found[0])
    if not text:
        return ParsedPayload(None, "", "empty_payload", "nothing between <search> and </search>")
    return ParsedPayload("text", text)


def format_information(evidence: list[Evidence], tokenizer, top_k: int = 3, max_passage_tokens: int = 64) -> str:
    """`<information>Doc 1 (Title): text ...\\nDoc 2 (...): ...</information>`; passages cut to a token budget."""
    from pixsearch_core.modeling.tokens import INFO_END, INFO_START

    lines = []
    for i, ev in enumerate(evidence[:top_k], start=1):
        ids = tokenizer.encode(ev.text, add_special_tokens=False)
        text = ev.text if len(ids) <= max_passage_tokens else tokenizer.decode(ids[:max_passage_tokens]) + " ..."
        lines.append(f"Doc {i} ({ev.title}): {text.strip()}")
    return INFO_START + ("\n".join(lines) if lines else "no results") + INFO_END

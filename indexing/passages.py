"""Documents -> passages: about `words` words each (optionally overlapping), split on whitespace, in order."""

from __future__ import annotations

from indexing.config import PassageConfig


def split_passages(text: str, cfg: PassageConfig) -> list[str]:
    """Consecutive windows of `cfg.words` words, stepping `words - overlap`; a short tail joins the last window."""
    words = text.split()
    if not words:
        return []
    step = cfg.words - cfg.overlap
    out: list[str] = []
    start = 0
    while start < len(words) and len(out) < cfg.max_passages_per_doc:
        end = start + cfg.words
        if len(words) - end < cfg.words // 4:  # do not leave a tiny tail passage
            end = len(words)
        out.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        start += step
    return out


def embed_text(title: str, passage: str, cfg: PassageConfig) -> str:
    """What the text encoder sees for a passage: the title prefixed (as in DPR / the paper's wiki passages)."""
    if cfg.prefix_title and title:
        return f"{title}. {passage}"
    return passage

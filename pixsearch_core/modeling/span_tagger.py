"""The B/I/O span tagger (paper §4.2): bidirectional self-attention over the LM's last hidden states.

    tagger = SpanTagger(d_model=5120, ff_dim=2048, num_heads=8)
    logits = tagger(hidden_states, attention_mask)      # (B, T, 3): O, B, I
    spans = extract_spans(logits.argmax(-1), attention_mask)   # per row: [(start, end_exclusive), ...]

Contiguous B -> I* runs are merged into spans naming the referred object. An I that follows an O (or starts a row)
opens a span too (the usual lenient BIO repair), so a tagger that misses the B still yields the span.
"""

from __future__ import annotations

import torch
from torch import nn

TAG_O, TAG_B, TAG_I = 0, 1, 2
TAGS = ("O", "B", "I")


STYLES = ("pixsearch", "plum")


class SpanTagger(nn.Module):
    """One bidirectional transformer encoder layer and a B/I/O classifier.

    Arguments:
      d_model: the LM's hidden size.
      ff_dim: the encoder's feed-forward width (Table 9: 2048).
      num_heads: attention heads; must divide `d_model`.
      style: "pixsearch" (pre-norm GELU layer, one Linear classifier) or "plum" (PLUM's layout, so its weights
        load: `bio_encoder` = a post-norm ReLU `nn.TransformerEncoderLayer`, `token_to_mask_fcs` = Linear(D, D) ->
        ReLU -> Linear(D, 3); `classifier.0` / `classifier.2` here).
    """

    def __init__(
        self, d_model: int, ff_dim: int = 2048, num_heads: int = 8, dropout: float = 0.0, style: str = "pixsearch"
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"span tagger: num_heads={num_heads} must divide d_model={d_model}")
        if style not in STYLES:
            raise ValueError(f"span tagger style {style!r}; allowed: {', '.join(STYLES)}")
        plum = style == "plum"
        self.encoder = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            ff_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=not plum,
            activation="relu" if plum else "gelu",
        )
        self.classifier = (
            nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, len(TAGS)))
            if plum
            else nn.Linear(d_model, len(TAGS))
        )
        self.style = style

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states (B, T, D), attention_mask (B, T) 1 = real token -> tag logits (B, T, 3)."""
        x = hidden_states.to(self.encoder.linear1.weight.dtype)
        pad = None if attention_mask is None else ~attention_mask.bool()
        if pad is not None and pad.all(dim=1).any():  # a row of only padding would give NaNs: unmask it
            pad = pad & ~pad.all(dim=1, keepdim=True)
        x = self.encoder(x, src_key_padding_mask=pad)
        return self.classifier(x)


def extract_spans(tags: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[list[tuple[int, int]]]:
    """tags (B, T) in {O, B, I} (-100 = ignore, treated as O) -> per row, spans as (start, end) with end exclusive."""
    tags = tags.detach().cpu()
    if attention_mask is not None:
        tags = torch.where(attention_mask.detach().cpu().bool(), tags, torch.full_like(tags, TAG_O))
    out: list[list[tuple[int, int]]] = []
    for row in tags.tolist():
        spans, start = [], None
        for t, tag in enumerate(row):
            if tag == TAG_B or (tag == TAG_I and start is None):
                if start is not None:
                    spans.append((start, t))
                start = t
            elif tag != TAG_I and start is not None:
                spans.append((start, t))
                start = None
        if start is not None:
            spans.append((start, len(row)))
        out.append(spans)
    return out


def spans_to_mask(spans: list[tuple[int, int]], length: int) -> torch.Tensor:
    """Spans of one row -> a boolean (length,) token mask."""
    mask = torch.zeros(length, dtype=torch.bool)
    for s, e in spans:
        mask[s:e] = True
    return mask


def last_span_mask(tags: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T) tags -> (B, T) boolean mask of each row's LAST span (all False where a row has none)."""
    spans = extract_spans(tags, attention_mask)
    return torch.stack([spans_to_mask(row[-1:], tags.shape[1]) for row in spans]).to(tags.device)

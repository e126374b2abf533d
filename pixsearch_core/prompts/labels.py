"""Training targets of a rendered conversation: the LM labels and the information-token mask (paper Eq. 9-10).

- `information_spans` / `information_token_mask`: Eq. 9: 0 for every token overlapping an
  <information>...</information> block (tags included), from the tokenizer's offset mapping.
- `lm_labels`: input ids where the model is trained to predict them, IGNORE (-100) elsewhere.
"""

from __future__ import annotations

import re

import torch

from pixsearch_core.modeling.tokens import INFO_END, INFO_START

IGNORE = -100
_INFO_BLOCK = re.compile(re.escape(INFO_START) + r".*?(?:" + re.escape(INFO_END) + r"|\Z)", re.DOTALL)


def information_spans(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of every <information>...</information> block, tags included. An unclosed
    block (a truncated sample) runs to the end of the text."""
    return [(m.start(), m.end()) for m in _INFO_BLOCK.finditer(text)]


def information_token_mask(offsets, spans: list[tuple[int, int]]) -> torch.Tensor:
    """Eq. 9. offsets (T, 2) character offsets per token (the tokenizer's offset mapping; (0, 0) for tokens with
    no characters) -> (T,) bool, False for every token overlapping an information span, True otherwise."""
    offsets = torch.as_tensor(offsets, dtype=torch.long).reshape(-1, 2)
    keep = torch.ones(offsets.shape[0], dtype=torch.bool)
    start, end = offsets[:, 0], offsets[:, 1]
    for s, e in spans:
        keep &= ~((start < e) & (end > s) & (end > start))
    return keep


def lm_labels(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    loss_mask: torch.Tensor | None = None,
    ignore_ids: tuple[int, ...] = (),
) -> torch.Tensor:
    """Labels for `masked_lm_loss`: input_ids where attention_mask and loss_mask are 1, else IGNORE (-100).
    `ignore_ids` (e.g. the image placeholder) are never targets."""
    keep = attention_mask.bool() if loss_mask is None else attention_mask.bool() & loss_mask.bool()
    for i in ignore_ids:
        keep &= input_ids != i
    return torch.where(keep, input_ids, torch.full_like(input_ids, IGNORE))

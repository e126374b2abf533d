"""Which tokens a row may generate next (the budget and modality ablations) and how one is picked."""

from __future__ import annotations

import torch

from pixsearch_core.decoding.state import Row, RowState


def allowed_modalities(options, model, request) -> set[str]:
    """The options' modalities, minus image and region when the sample has no image or the model sees none."""
    allowed = set(options.modalities)
    if request.image is None or not model.supports_images:
        allowed -= {"image", "region"}
    return allowed


def constrain(logits: torch.Tensor, row: Row, allowed: set[str], ids) -> torch.Tensor:
    """Mask (to -inf) what this row may not generate now. `logits` is (V,); returns a new tensor.

    - forced-only tokens (`<information>`, `</information>`, the image slot) are never generated;
    - `<search>` once the budget is spent or when no modality is allowed, and then also `</search>`, `<image>`
      and `<region>` outside a search block (they could only open a malformed one: a search the row may not make);
    - `<image>` / `<region>` when that modality is not allowed;
    - with text queries not allowed, the first payload token must be an allowed modality token.
    """
    out = logits.clone()
    banned = [ids.info_start, ids.info_end, ids.image_placeholder]
    if ids.pad != ids.eos:
        banned.append(ids.pad)
    if not row.budget_left() or not allowed:
        banned.append(ids.search_start)
        if row.state is not RowState.IN_SEARCH:
            banned += [ids.search_end, ids.image, ids.region]
    if "image" not in allowed:
        banned.append(ids.image)
    if "region" not in allowed:
        banned.append(ids.region)
    out[banned] = float("-inf")
    if row.state is RowState.IN_SEARCH and row.tokens[-1] == ids.search_start and "text" not in allowed:
        keep = [t for t, m in ((ids.image, "image"), (ids.region, "region")) if m in allowed]
        only = torch.full_like(out, float("-inf"))
        only[keep] = out[keep]
        out = only
    return out


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None, eos: int) -> list[int]:
    """Greedy (temperature 0) or sampled next tokens for (B, V) logits; a row with nothing allowed gets EOS."""
    dead = torch.isneginf(logits).all(-1)
    if temperature <= 0:
        tokens = logits.argmax(-1)
    else:
        probs = torch.softmax(logits.masked_fill(dead[:, None], 0.0) / temperature, -1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    tokens[dead] = eos
    return tokens.tolist()

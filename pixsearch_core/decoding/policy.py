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


def banned_tokens(row: Row, allowed: set[str], ids) -> list[int]:
    """The tokens this row may not generate now.

    - forced-only tokens (`<information>`, `</information>`, the image slot) are never generated;
    - `<search>` once the budget is spent or when no modality is allowed, and then also `</search>`, `<image>`
      and `<region>` outside a search block (they could only open a malformed one: a search the row may not make);
    - `<image>` / `<region>` when that modality is not allowed.
    """
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
    return banned


def constrain(logits: torch.Tensor, rows: list[Row], allowed: list[set[str]], ids) -> torch.Tensor:
    """Mask (to -inf) what each row may not generate now (`banned_tokens`). `logits` is (B, V), one row per
    `rows[b]`; returns a new tensor, masked in one indexing call for the whole batch. With text queries not allowed,
    the first payload token must be an allowed modality token (everything else of that row is masked)."""
    out = logits.clone()
    at_rows, at_tokens = [], []
    for b, (row, ok) in enumerate(zip(rows, allowed)):
        banned = banned_tokens(row, ok, ids)
        at_rows += [b] * len(banned)
        at_tokens += banned
    out[at_rows, at_tokens] = float("-inf")
    for b, (row, ok) in enumerate(zip(rows, allowed)):
        if row.state is RowState.IN_SEARCH and row.tokens[-1] == ids.search_start and "text" not in ok:
            keep = [t for t, m in ((ids.image, "image"), (ids.region, "region")) if m in ok]
            kept = out[b, keep].clone()
            out[b] = float("-inf")
            out[b, keep] = kept
    return out


#: sequence and chat-turn markers of common tokenizers; generated, each means the model's answer is over
TURN_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>", "</s>")


def turn_markers(tokenizer, ids) -> frozenset[int]:
    """Token ids that end a generated answer besides EOS: the tokenizer's BOS and the `TURN_MARKERS` it has as
    special tokens. A pretrained chat LM fine-tuned on another template (SmolLM2-Instruct on vicuna_v1) can end
    its answer by opening its own next turn (`<|im_start|>`) instead of emitting EOS; without this the rest of the
    row (a made-up next turn, more searches) would be read as its answer. The PixSearch tokens never count."""
    from pixsearch_core.modeling.tokens import IMAGE_PLACEHOLDER, SPECIAL_TOKENS

    special = set(getattr(tokenizer, "all_special_tokens", ())) | set(getattr(tokenizer, "added_tokens_encoder", {}))
    names = {t for t in TURN_MARKERS if t in special} | ({tokenizer.bos_token} if tokenizer.bos_token else set())
    names -= {*SPECIAL_TOKENS, IMAGE_PLACEHOLDER}
    found = {tokenizer.convert_tokens_to_ids(t) for t in names}
    return frozenset(i for i in found if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id) - {ids.eos}


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

"""LoRA on the language model and the choice of trainable parts (paper Table 9).

    lm = apply_lora(lm, r=8, alpha=16, dropout=0.05, target_regex=LM_QV_REGEX)
    configure_trainable(model, parts={"span_tagger", "mask_head", "prompt_encoder", "mask_decoder"},
                        new_token_rows=True)

Trainable: LoRA (q, v of the LM only: the regex is matched against the language model's own module names, which
never include the vision tower, and is anchored so CLIP-style `...self_attn.q_proj` elsewhere cannot match), the
span tagger, the mask-query head, SAM's prompt encoder and mask decoder, optionally the projector, and the
embedding / output rows of the PixSearch special tokens only (a gradient hook zeroes every other row; use weight
decay 0 on these matrices, as the paper does, so frozen rows stay exactly unchanged). Everything else is frozen.
"""

from __future__ import annotations

import logging
import re
from typing import get_args

import torch
from torch import nn

from pixsearch_core.modeling.configs import LM_QV_REGEX, TrainablePart

log = logging.getLogger(__name__)

#: "language_model" trains the whole LM (a small LM trained from scratch, e.g. the demo's; LoRA is then off)
#: "copy_head": the optional pointer-generator (model config copy_head=true); "sam_image_encoder", "vision_tower":
#: frozen in the paper, trainable for random tiny ones trained from scratch (the demo's)
PARTS = get_args(TrainablePart)


def apply_lora(
    language_model: nn.Module, r: int = 8, alpha: int = 16, dropout: float = 0.05, target_regex: str = LM_QV_REGEX
) -> nn.Module:
    """Wrap the LM with PEFT LoRA on the modules whose full name matches `target_regex` (re.fullmatch)."""
    from peft import LoraConfig, get_peft_model

    hits = [n for n, _ in language_model.named_modules() if re.fullmatch(target_regex, n)]
    if not hits:
        examples = [n for n, m in language_model.named_modules() if isinstance(m, nn.Linear)][:4]
        raise ValueError(
            f"LoRA target_regex {target_regex!r} matches no module of the language model; "
            f"linear modules look like {examples}"
        )
    log.info("LoRA r=%d on %d modules (%s, ...)", r, len(hits), hits[0])
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_regex, bias="none")
    return get_peft_model(language_model, config)


def token_row_params(model: nn.Module) -> list[nn.Parameter]:
    """The LM's input embedding and output projection weights (one parameter when tied)."""
    lm = model.language_model
    params = [lm.get_input_embeddings().weight]
    out = lm.get_output_embeddings()
    if out is not None and out.weight is not params[0]:
        params.append(out.weight)
    return params


def special_row_ids(model: nn.Module) -> list[int]:
    ids = model.token_ids
    return sorted({ids.search_start, ids.search_end, ids.image, ids.region, ids.info_start, ids.info_end})


def configure_trainable(
    model: nn.Module, parts: set[str] | list[str], lora: bool = True, new_token_rows: bool = True
) -> dict[str, int]:
    """Freeze everything, then unfreeze LoRA, the named `parts` and (optionally) the special-token rows.

    Returns the number of trainable parameters per group.
    """
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown trainable parts {sorted(unknown)}; allowed: {', '.join(PARTS)}")
    for p in model.parameters():
        p.requires_grad_(False)
    counts: dict[str, int] = {}
    if lora:
        lora_params = [p for n, p in model.language_model.named_parameters() if "lora_" in n]
        for p in lora_params:
            p.requires_grad_(True)
        counts["lora"] = sum(p.numel() for p in lora_params)
    for part in parts:
        module = getattr(model, part)
        if module is None:
            raise ValueError(f"trainable part {part!r}, but the model has none (set the model's {part}=true)")
        for p in module.parameters():
            p.requires_grad_(True)
        counts[part] = sum(p.numel() for p in module.parameters())
    for h in getattr(model, "_row_hooks", []):
        h.remove()
    model._row_hooks = []
    new_token_rows = new_token_rows and "language_model" not in parts  # a fully trained LM trains every row
    if new_token_rows:
        rows = torch.tensor(special_row_ids(model))
        for w in token_row_params(model):
            keep = torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device)
            keep[rows] = 1
            w.requires_grad_(True)
            model._row_hooks.append(w.register_hook(lambda g, keep=keep: g * keep.to(g.dtype)))
        counts["new_token_rows"] = len(rows) * sum(w.shape[1] for w in token_row_params(model))
    model.new_token_rows = new_token_rows
    log.info("trainable parameters: %s", counts)
    return counts

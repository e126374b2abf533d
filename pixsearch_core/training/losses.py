"""PixSearch's training losses (paper §4.2, Eq. 6-10; weights from Table 9), each a separate function.

    L = λ_CE·L_LM + λ_cls·L_span + λ_seg·L_seg + λ_BCE·L_BCE + λ_KL·L_KL          (Eq. 6)

- `information_token_mask`: Eq. 9: 0 for every token overlapping an <information>...</information> block (tags
  included), from the tokenizer's offset mapping over the blocks' character spans; computed at collation.
- `masked_lm_loss`: Eq. 10: next-token cross-entropy averaged over the tokens the mask keeps.
- `choice_loss`: the same cross-entropy over the query-modality decisions only (the token right after each
  `<search>`: `<region>`, `<image>` or a text query's first token). Not in the paper (its weight `choice`
  defaults to 0); one decision among hundreds of target tokens carries almost no weight in Eq. 10.
- `answer_loss`: the same cross-entropy over the answer, the tokens after the last `</information>` of a row
  (`answer_positions`; none in a row without evidence). Not in the paper (weight `answer`, default 0): which fact
  the answer names is decided in a few tokens at the end of a long trajectory.
- `span_tag_loss`: B/I/O cross-entropy (class weights configurable).
- `focal_tversky_loss` (Eq. 7, L_seg) and `mask_bce_loss` (L_BCE): per mask, averaged over the N+ spans.
- `span_kl_loss`: Eq. 8: Gaussian KL to frozen teacher span embeddings, ||h - t||² / 2σ², averaged over spans.
- `pixsearch_loss`: the weighted sum over a PixSearchOutput, with every term reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pixsearch_core.prompts.labels import IGNORE, information_spans, information_token_mask, lm_labels  # noqa: F401


@dataclass
class LossWeights:
    """Table 9 defaults."""

    ce: float = 1.0
    cls: float = 2.0
    seg: float = 8.0
    bce: float = 2.0
    kl: float = 0.1
    choice: float = 0.0  # not in the paper: extra weight on the query-modality decisions (`choice_loss`)
    answer: float = 0.0  # not in the paper: extra weight on the answer after the last evidence (`answer_loss`)
    tversky_alpha: float = 0.7  # L_seg's weight on false negatives (Abraham & Khan's default; the paper gives none)
    tversky_beta: float = 0.3  # ... and on false positives


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 10. logits (B, T, V) where logits[:, t] predicts labels[:, t + 1]; labels (B, T) with IGNORE for the
    masked tokens -> the mean negative log-likelihood over the kept targets (0 if none)."""
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1)
    if (shift_labels != IGNORE).sum() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE)


def choice_loss(logits: torch.Tensor, labels: torch.Tensor, decision: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy at the decision positions only. decision (B, T) bool marks the positions whose
    NEXT token is a decision (the `<search>` tokens: logits there predict the query modality); positions whose
    next label is IGNORE are skipped. 0 when the batch has none."""
    keep = decision[:, :-1].to(labels.device) & (labels[:, 1:] != IGNORE)
    if not keep.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[:, :-1][keep].float(), labels[:, 1:][keep])


def answer_positions(input_ids: torch.Tensor, info_end: int) -> torch.Tensor:
    """(B, T) bool: True at the row's last `</information>` token (id `info_end`) and every position after it, i.e.
    the positions whose NEXT token is part of what the model writes after its last evidence (the answer, with any
    words that lead to it); all False in a row with no evidence."""
    is_end = input_ids == info_end
    pos = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last = torch.where(is_end, pos, torch.full_like(pos, -1)).max(dim=1, keepdim=True).values
    return (last >= 0) & (pos >= last)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, answer_at: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over the answer tokens (`answer_positions`; IGNORE labels skipped; 0 if none)."""
    return choice_loss(logits, labels, answer_at)


# ---------------------------------------------------------------- span tagging
def span_tag_loss(
    span_logits: torch.Tensor, tags: torch.Tensor, class_weights: tuple[float, float, float] | None = None
) -> torch.Tensor:
    """B/I/O cross-entropy. span_logits (B, T, 3), tags (B, T) in {0: O, 1: B, 2: I} or IGNORE."""
    if (tags != IGNORE).sum() == 0:
        return span_logits.sum() * 0.0
    weight = (
        None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32, device=span_logits.device)
    )
    return F.cross_entropy(span_logits.reshape(-1, 3).float(), tags.reshape(-1), weight=weight, ignore_index=IGNORE)


# ---------------------------------------------------------------- masks
def focal_tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    beta: float = 0.3,
    gamma: float = 0.75,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Focal-Tversky (Abraham & Khan 2019) per mask, averaged: (1 - TI)^γ with TI = TP / (TP + α·FN + β·FP).

    logits, target (N, H, W); α weighs false negatives, β false positives; γ = 1/(4/3) as in the original paper.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    tp = (p * t).sum(1)
    fn = ((1 - p) * t).sum(1)
    fp = (p * (1 - t)).sum(1)
    ti = (tp + eps) / (tp + alpha * fn + beta * fp + eps)
    return ((1 - ti).clamp(min=0) ** gamma).mean()


def mask_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel sigmoid BCE, averaged per mask then over masks. logits, target (N, H, W)."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return per_pixel.flatten(1).mean(1).mean()


# ---------------------------------------------------------------- regulariser
def span_kl_loss(
    hidden: torch.Tensor, teacher: torch.Tensor, spans: list[list[tuple[int, int]]], sigma: float = 1.0
) -> torch.Tensor:
    """Eq. 8: (1/N+) Σ_s ||h_{i_s:j_s} - t_{i_s:j_s}||² / (2σ²) over the spans of all rows.

    hidden, teacher (B, T, D); the teacher is detached (frozen)."""
    terms = [
        ((hidden[b, s:e].float() - teacher[b, s:e].detach().float()) ** 2).sum() / (2 * sigma**2)
        for b, row in enumerate(spans)
        for s, e in row
    ]
    if not terms:
        return hidden.sum() * 0.0
    return torch.stack(terms).mean()


# ---------------------------------------------------------------- the total
def pixsearch_loss(
    output,
    labels: torch.Tensor,
    tags: torch.Tensor | None = None,
    gt_masks: list[torch.Tensor] | None = None,
    weights: LossWeights | None = None,
    class_weights: tuple[float, float, float] | None = None,
    sigma: float = 1.0,
    decision: torch.Tensor | None = None,
    answer_at: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 6 over a PixSearchOutput. labels (B, T) from `lm_labels`; tags (B, T) gold B/I/O; gt_masks per row
    (N_i, H_i, W_i) in the order of output.spans; decision (B, T) the `<search>` positions for `choice_loss`
    (needed when weights.choice > 0); answer_at (B, T) the `answer_positions` (needed when weights.answer > 0). Returns (total, {term: value}) with the unweighted terms."""
    w = weights or LossWeights()
    zero = output.logits.sum() * 0.0
    terms = {"lm": masked_lm_loss(output.logits, labels)}
    if w.choice:
        if decision is None:
            raise ValueError("loss weight choice > 0 needs the decision positions (the <search> tokens)")
        terms["choice"] = choice_loss(output.logits, labels, decision)
    if w.answer:
        if answer_at is None:
            raise ValueError("loss weight answer > 0 needs the answer positions (answer_positions)")
        terms["answer"] = answer_loss(output.logits, labels, answer_at)
    terms["span"] = span_tag_loss(output.span_logits, tags, class_weights) if tags is not None else zero
    if gt_masks is not None:
        for b, (pred, gt) in enumerate(zip(output.mask_logits, gt_masks)):
            if pred.shape != gt.shape:
                raise ValueError(
                    f"row {b}: predicted masks {tuple(pred.shape)} vs gold {tuple(gt.shape)}; one gold "
                    f"mask per span ({len(output.spans[b])} spans), at image resolution"
                )
        pred = [m.flatten(1) for m in output.mask_logits if m.shape[0]]
        gold = [m.flatten(1).to(output.logits.device) for m in gt_masks if m.shape[0]]
        a, b_ = w.tversky_alpha, w.tversky_beta
        seg = [focal_tversky_loss(p, g, alpha=a, beta=b_) * p.shape[0] for p, g in zip(pred, gold)]
        bce = [mask_bce_loss(p, g) * p.shape[0] for p, g in zip(pred, gold)]
        n = sum(p.shape[0] for p in pred)
        terms["seg"] = torch.stack(seg).sum() / n if n else zero
        terms["bce"] = torch.stack(bce).sum() / n if n else zero
    else:
        terms["seg"] = terms["bce"] = zero
    teacher = output.teacher_hidden_states
    terms["kl"] = span_kl_loss(output.hidden_states, teacher, output.spans, sigma) if teacher is not None else zero
    total = (
        w.ce * terms["lm"] + w.cls * terms["span"] + w.seg * terms["seg"] + w.bce * terms["bce"] + w.kl * terms["kl"]
    )
    if w.choice:
        total = total + w.choice * terms["choice"]
    if w.answer:
        total = total + w.answer * terms["answer"]
    return total, {k: float(v.detach()) for k, v in terms.items()}

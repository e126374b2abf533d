"""optim.token_rows_lr_scale: the new special tokens' rows get their own optimizer group and learning rate."""

from __future__ import annotations

import torch

from pixsearch_core.modeling.trainable import special_row_ids, token_row_params
from pixsearch_core.registry import get
from pixsearch_core.training.config import OptimConfig
from pixsearch_core.training.trainer import param_groups


def _step(model, scale: float, lr: float = 1e-3):
    opt = torch.optim.AdamW(param_groups(model, lr, scale), lr=lr, weight_decay=0.0)
    rows = token_row_params(model)[0]
    before = rows.detach().clone()
    proj = model.projector.linear_1.weight
    proj_before = proj.detach().clone()
    loss = (rows.float() ** 2).sum() + (proj.float() ** 2).sum()
    loss.backward()
    opt.step()
    return (rows.detach() - before).abs(), (proj.detach() - proj_before).abs()


def test_the_special_rows_move_scale_times_the_base_lr_and_no_other_row_moves():
    model = get("model", "tiny")()
    groups = param_groups(model, 1e-3, 10.0)
    assert len(groups) == 2 and groups[1]["lr"] == 1e-2 and groups[0]["lr"] == 1e-3
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in token_row_params(model)}
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    rows_change, proj_change = _step(model, 10.0)
    special = special_row_ids(model)
    # Adam's first step moves every coordinate with a non-zero gradient by the group's LR
    torch.testing.assert_close(rows_change[special].max(), torch.tensor(1e-2), rtol=1e-3, atol=0)
    torch.testing.assert_close(proj_change.max(), torch.tensor(1e-3), rtol=1e-3, atol=0)
    others = torch.ones(rows_change.shape[0], dtype=torch.bool)
    others[special] = False
    others[model.token_ids.image_placeholder] = False
    assert float(rows_change[others].max()) == 0.0  # the gradient hook keeps the pretrained rows


def test_scale_one_or_no_row_training_is_a_single_group():
    assert len(param_groups(get("model", "tiny")(), 1e-3, 1.0)) == 1
    full = get("model", "tiny")(overrides=["lora.enabled=false", "trainable.parts=[language_model,span_tagger]"])
    assert len(param_groups(full, 1e-3, 10.0)) == 1  # a fully trained LM: every row at the base LR
    assert OptimConfig().token_rows_lr_scale == 1.0


def test_part_lr_scale_gives_a_part_its_own_lr_and_zero_holds_it_still():
    """optim.part_lr_scale: {sam_image_encoder: 0} keeps the (pre-trained) SAM encoder still, the decoder moves at
    `scale x lr`, every other part at lr; the held part stays trainable, so it is still in the export."""
    import pytest

    model = get("model", "tiny")(overrides=["trainable.parts=[mask_decoder,sam_image_encoder,projector]"])
    groups = param_groups(model, 1e-3, 1.0, {"sam_image_encoder": 0.0, "mask_decoder": 0.5})
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert by_lr[0.0] == {id(p) for p in model.sam_image_encoder.parameters()}
    assert by_lr[5e-4] == {id(p) for p in model.mask_decoder.parameters()}
    assert {id(p) for p in model.projector.parameters()} <= by_lr[1e-3]  # with LoRA and the token rows
    enc, dec = model.sam_image_encoder, model.mask_decoder
    before = [p.detach().clone() for p in (*enc.parameters(), *dec.parameters())]
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.0)
    sum((p.float() ** 2).sum() for p in (*enc.parameters(), *dec.parameters())).backward()
    opt.step()
    after = list(enc.parameters()) + list(dec.parameters())
    n_enc = len(list(enc.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(after[:n_enc], before[:n_enc]))
    assert all(not torch.equal(a, b) for a, b in zip(after[n_enc:], before[n_enc:]) if a.abs().sum() > 0)
    assert all(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="unknown parts \\['sam_encoder'\\]"):
        param_groups(model, 1e-3, 1.0, {"sam_encoder": 0.0})
    with pytest.raises(ValueError, match="must be >= 0"):
        OptimConfig(part_lr_scale={"mask_decoder": -1.0})

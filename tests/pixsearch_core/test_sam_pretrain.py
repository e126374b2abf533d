"""Box-prompted SAM pre-training before stage 1 (training/sam_pretrain.py, `sam_pretrain:` in the train config)."""

from __future__ import annotations

import types

import pytest
import torch

from pixsearch_core.training.config import SamPretrainConfig
from pixsearch_core.training.loss_log import read_metrics
from pixsearch_core.training.sam_pretrain import jitter_box, mask_box, pretrain_sam
from tests._train_fixtures import DEMO_CONF, clear_dist_env, fast_config


def test_mask_box_is_the_tight_box_with_exclusive_far_corner():
    m = torch.zeros(10, 12, dtype=torch.bool)
    m[2:5, 3:9] = True
    assert mask_box(m).tolist() == [3.0, 2.0, 9.0, 5.0]
    m[7, 0] = True  # a second part widens the box
    assert mask_box(m).tolist() == [0.0, 2.0, 9.0, 8.0]
    with pytest.raises(ValueError, match="empty mask"):
        mask_box(torch.zeros(4, 4, dtype=torch.bool))


def test_jitter_box_zero_noise_keeps_the_box_and_noise_stays_inside_the_image():
    box = torch.tensor([3.0, 2.0, 9.0, 5.0])
    g = torch.Generator().manual_seed(0)
    assert jitter_box(box, (10, 12), 0.0, g).tolist() == box.tolist()
    for seed in range(200):
        j = jitter_box(box, (10, 12), 0.5, torch.Generator().manual_seed(seed))
        x0, y0, x1, y1 = j.tolist()
        assert 0 <= x0 < x1 <= 12 and 0 <= y0 < y1 <= 10 and x1 - x0 >= 1 - 1e-5 and y1 - y0 >= 1 - 1e-5, j
    a = jitter_box(box, (10, 12), 0.1, torch.Generator().manual_seed(7))
    b = jitter_box(box, (10, 12), 0.1, torch.Generator().manual_seed(7))
    c = jitter_box(box, (10, 12), 0.1, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_frozen_sam_is_a_clear_error():
    frozen = types.SimpleNamespace(
        **{
            n: torch.nn.Linear(2, 2).requires_grad_(False)
            for n in ("sam_image_encoder", "prompt_encoder", "mask_decoder")
        }
    )
    with pytest.raises(ValueError, match="sam_pretrain.steps=5.*trainable.parts"):
        pretrain_sam(frozen, iter(()), lambda s: s, SamPretrainConfig(steps=5), None)


pytestmark = pytest.mark.usefixtures("train_env")


def test_pretraining_learns_box_masks_and_a_resumed_stage_1_skips_it(world, tmp_path):
    """Stage 1 with sam_pretrain.steps=40 on the demo recipe: the box-prompted masks' loss falls and IoU rises
    (the metrics file), the pre-trained SAM is what stage 1 starts from, and a resumed stage 1 does not redo it."""
    from pixsearch_core.training.trainer import train

    cfg = fast_config(
        world,
        tmp_path,
        "stage1.max_steps=2",
        "save_every=1",
        "optim.micro_batch_size=2",
        "data.max_length=400",
        "sam_pretrain.steps=40",
        "sam_pretrain.batch_size=8",
        "sam_pretrain.lr=3e-3",
        conf=DEMO_CONF,
    )
    assert train(cfg, 1, stop_after=1)["step"] == 1
    path = tmp_path / "run" / "stage1" / "sam_pretrain.jsonl"
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == list(range(1, 41))
    loss = [r["loss"] for r in rows]
    assert sum(loss[-5:]) / 5 < 0.8 * sum(loss[:5]) / 5, loss
    assert rows[-1]["iou_50"] > rows[4]["iou_50"], [r["iou_50"] for r in rows]
    assert rows[0]["lr"] < rows[25]["lr"] and rows[-1]["lr"] < rows[25]["lr"]  # warm-up, then cosine decay
    before = path.read_bytes()
    clear_dist_env()
    assert train(cfg, 1)["step"] == 2  # resumes from the step-1 checkpoint
    assert path.read_bytes() == before


def test_pretraining_changes_the_sam_and_is_repeatable():
    """Two runs from the same weights and seed give the same SAM; the SAM parts move, the LM does not."""
    import numpy as np

    from pixsearch_core.modeling.build import build_tiny

    overrides = [
        "sam.image_size=64",
        "dtype=float32",
        "trainable.parts=[prompt_encoder,mask_decoder,sam_image_encoder]",
    ]

    def sample(i):
        m = torch.zeros(1, 48, 48)
        m[0, 8 + i % 8 : 30, 10:34] = 1
        img = np.full((48, 48, 3), 25, np.uint8)
        img[m[0].bool().numpy()] = 230
        return {"image": img, "mask": m}

    def collate(batch):
        return {"images": [b["image"] for b in batch], "gt_masks": [b["mask"] for b in batch]}

    from pixsearch_core.training.config import LossConfig

    def run():
        torch.manual_seed(0)
        model = build_tiny(overrides=overrides)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        out = pretrain_sam(
            model, (sample(i) for i in range(10**6)), collate, SamPretrainConfig(steps=4, batch_size=2), LossConfig()
        )
        return start, model.state_dict(), out

    start, a, out_a = run()
    _, b, out_b = run()
    assert out_a == out_b and out_a["steps"] == 4 and out_a["loss"] > 0
    assert all(torch.equal(a[k], b[k]) for k in a)
    moved = {k.split(".")[0] for k in a if not torch.equal(a[k], start[k])}
    assert {"prompt_encoder", "mask_decoder", "sam_image_encoder"} <= moved, moved
    assert not any(k.startswith("language_model") for k in moved), moved

"""Initialising from PLUM (the paper's recipe): a checkpoint in PLUM's key layout (the names of PLUM's public code,
written out here by hand) loads into the model through `init_checkpoint`; every unmapped, missing, unexpected or
mis-shaped key comes in ONE error; conf/train/13b-paper.yaml sets it and runs "20 epochs" as LISA/PLUM count them."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from pixsearch_core.modeling.weights import CheckpointMismatchError, load_plum_style
from pixsearch_core.registry import get

PLUM_LIKE = ["lora.enabled=false", "span_tagger_style=plum", "projector=linear"]
#: PixSearchModel prefix -> PLUM checkpoint prefix (PLUM.py: PLUMForCausalLM / PlumModel / LLaVA-1 names)
TO_PLUM = [
    ("sam_image_encoder.", "model.visual_model.image_encoder."),
    ("prompt_encoder.", "model.visual_model.prompt_encoder."),
    ("mask_decoder.", "model.visual_model.mask_decoder."),
    ("mask_head.mlp.", "model.text_hidden_fcs.0."),
    ("span_tagger.classifier.", "model.token_to_mask_fcs.0."),
    ("span_tagger.encoder.", "bio_encoder.encoder.layers.0."),
    ("projector.linear_1.", "model.mm_projector."),
    ("language_model.lm_head.", "lm_head."),
    ("language_model.model.", "model."),
]


def _plum_state(model) -> dict[str, torch.Tensor]:
    """The model's weights in a merged PLUM checkpoint's layout (no vision tower: PLUM's merge drops it), plus
    the keys PixSearch skips on purpose."""
    out = {}
    for k, v in model.state_dict().items():
        for ours, theirs in TO_PLUM:
            if k.startswith(ours):
                out[theirs + k[len(ours) :]] = v.clone()
                break
    d = model.language_model.config.hidden_size
    out["mask_pooler.mask_modulator.projections.0.weight"] = torch.zeros(8, d)
    out["mask_pooler.prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 4)
    out["teacher_llm.layers.0.self_attn.q_proj.weight"] = torch.zeros(d, d)
    out["seg_h_ref"] = torch.zeros(1, 3, d)
    return out


def test_plum_checkpoint_initialises_the_model_through_the_config(tmp_path):
    src = get("model", "tiny")(overrides=[*PLUM_LIKE, "seed=5"])
    state = _plum_state(src)
    assert "model.token_to_mask_fcs.0.2.weight" in state and "bio_encoder.encoder.layers.0.linear1.weight" in state
    ckpt = tmp_path / "plum-merged"
    ckpt.mkdir()
    save_file(state, str(ckpt / "model-00001-of-00001.safetensors"))
    dst = get("model", "tiny")(overrides=[*PLUM_LIKE, "seed=6", f"init_checkpoint={ckpt}"])
    for k, v in src.state_dict().items():
        if not k.startswith("vision_tower."):  # not in a PLUM checkpoint: comes from the vision config
            assert torch.equal(v, dst.state_dict()[k]), k


def test_every_problem_in_one_error():
    src = get("model", "tiny")(overrides=[*PLUM_LIKE, "seed=5"])
    state = _plum_state(src)
    state["bio_cross_attn.cross_attn.in_proj_weight"] = torch.zeros(3, 3)  # PLUM option, no counterpart
    state["model.text_hidden_fcs.0.2.weight"] = torch.zeros(7, 7)  # wrong shape
    del state["model.visual_model.mask_decoder.iou_token.weight"]  # missing
    layers = [k for k in state if k.startswith("model.layers.") and k.endswith("mlp.up_proj.weight")]
    for k in layers:
        del state[k]  # missing in every layer
    dst = get("model", "tiny")(overrides=[*PLUM_LIKE, "seed=6"])
    with pytest.raises(CheckpointMismatchError) as ei:
        load_plum_style(dst, state, "plum.safetensors")
    err, msg = ei.value, str(ei.value)
    assert err.unmapped == ["bio_cross_attn.cross_attn.in_proj_weight"]
    assert set(err.missing) == {"mask_decoder.iou_token.weight"} | {
        "language_model.model." + k[len("model.") :] for k in layers
    }
    assert len(err.shapes) == 1 and "mask_head.mlp.2.weight: checkpoint (7, 7)" in err.shapes[0]
    assert "unmapped keys (no mapping rule) (1): ['bio_cross_attn.cross_attn.in_proj_weight']" in msg
    assert f"language_model.model.layers.*.mlp.up_proj.weight (x{len(layers)})" in msg and len(layers) >= 2
    assert "'mask_decoder.iou_token.weight'" in msg and "shape mismatches (1)" in msg
    # the mapping is wrong for a model of the other layout: the classifier keys are named, not silently dropped
    other = get("model", "tiny")(overrides=["lora.enabled=false", "projector=linear"])
    with pytest.raises(CheckpointMismatchError, match=r"unexpected keys .*span_tagger\.classifier\.\*\.weight"):
        load_plum_style(other, _plum_state(src), "plum.safetensors")


def test_paper_recipe_sets_plum_init_and_lisa_lineage_epochs():
    from pixsearch_core.config import load_config
    from pixsearch_core.modeling.build import model_config
    from pixsearch_core.training.config import StageConfig, TrainConfig

    cfg = load_config(TrainConfig, "conf/train/13b-paper.yaml", [])
    model = model_config(cfg.model.size, cfg.model.overrides)
    assert model.init_checkpoint.startswith("s3://CHANGE-ME/") and model.span_tagger_style == "plum"
    assert model.projector == "linear" and model.vision.kind == "clip_hf"
    # 20 and 6 epochs of 500 optimizer steps, whatever the data size or GPU count
    for samples, per_step in ((10_000, 60), (5_000_000, 480)):
        assert cfg.stage1.total_steps(samples, per_step) == 10_000
        assert cfg.stage2.total_steps(samples, per_step) == 3_000
    assert StageConfig(lr=1e-4, ratio={"stage1": 1, "stage2": 0}, epochs=2).total_steps(600, 60) == 20  # one pass
    with pytest.raises(ValueError, match="max_steps=10 and steps_per_epoch=500 both set"):
        StageConfig(lr=1e-4, ratio={"stage1": 1, "stage2": 0}, max_steps=10, steps_per_epoch=500)

"""Saving and loading: trainable parts round-trip exactly (local, file://, S3); mismatches name the keys;
SAM and LISA/PLUM-style checkpoints map onto the model."""

from __future__ import annotations

import pytest
import torch

from pixsearch_core.modeling.trainable import special_row_ids, token_row_params
from pixsearch_core.modeling.weights import (
    LISA_KEY_RULES,
    CheckpointMismatchError,
    load_lisa_style,
    load_trainable,
    save_trainable,
)
from pixsearch_core.registry import get
from pixsearch_core.storage import join
from tests._pixsearch_batch import batch


def _randomize_trainable(model, seed=1):
    """What training does: every trainable tensor changes; of the embedding matrices only the special rows."""
    g = torch.Generator().manual_seed(seed)
    rows = token_row_params(model)
    ids = torch.tensor(special_row_ids(model))
    with torch.no_grad():
        for p in model.parameters():
            if any(p is r for r in rows):
                p[ids] += torch.randn((len(ids), p.shape[1]), generator=g) * 0.05
            elif p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _outputs(model):
    model.eval()
    b = batch(model)
    with torch.no_grad():
        out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"])
    masks = model.predict_mask(
        b["images"], hidden_states=out.hidden_states, attention_mask=b["attention_mask"], return_details=True
    )
    return out, masks


def test_save_then_load_reproduces_outputs_exactly(store):
    a = get("model", "tiny")()
    _randomize_trainable(a)
    uri = join(store.root, "ckpt/step-1")
    shas = save_trainable(a, uri, store)
    assert set(shas) == {"trainable.safetensors", "config.json"}
    b = get("model", "tiny")(overrides=["seed=0"])  # same frozen base (same seed), untrained heads
    ref_out, ref_masks = _outputs(a)
    before, _ = _outputs(b)
    assert not torch.equal(before.logits, ref_out.logits)
    load_trainable(b, uri, store)
    out, masks = _outputs(b)
    assert torch.equal(out.logits, ref_out.logits)
    assert torch.equal(out.span_logits, ref_out.span_logits)
    assert all(torch.equal(x, y) for x, y in zip(out.mask_logits, ref_out.mask_logits))
    assert all(torch.equal(x, y) for x, y in zip(masks.logits, ref_masks.logits))


def test_weights_key_in_config_loads_the_checkpoint(tmp_path):
    a = get("model", "tiny")()
    _randomize_trainable(a)
    save_trainable(a, str(tmp_path / "c"))
    b = get("model", "tiny")(overrides=[f"weights={tmp_path / 'c'}"])
    assert torch.equal(_outputs(a)[0].logits, _outputs(b)[0].logits)


def test_mismatched_checkpoint_names_missing_and_unexpected_keys(tmp_path):
    a = get("model", "tiny")()
    save_trainable(a, str(tmp_path / "c"))
    no_lora = get("model", "tiny")(overrides=["lora.enabled=false"])
    with pytest.raises(CheckpointMismatchError) as ei:
        load_trainable(no_lora, str(tmp_path / "c"))
    msg = str(ei.value)
    assert "unexpected keys" in msg and "lora_A" in msg and ei.value.missing == []
    assert all("lora_" in k for k in ei.value.unexpected)
    wider = get("model", "tiny")(overrides=["span_tagger_ff_dim=96"])
    with pytest.raises(
        CheckpointMismatchError, match=r"span_tagger.encoder.linear1.weight: checkpoint \(64, 32\) vs model \(96, 32\)"
    ):
        load_trainable(wider, str(tmp_path / "c"))
    fewer = get("model", "tiny")(overrides=["trainable.parts=[span_tagger, mask_head]"])
    with pytest.raises(CheckpointMismatchError) as ei:
        load_trainable(fewer, str(tmp_path / "c"))
    assert any(k.startswith("mask_decoder.") for k in ei.value.unexpected) and ei.value.missing == []
    save_trainable(fewer, str(tmp_path / "f"))
    with pytest.raises(CheckpointMismatchError, match=r"missing keys \(\d+\): \[.*'mask_decoder\."):
        load_trainable(a, str(tmp_path / "f"))


def _to_lisa_keys(model):
    """The model's own weights renamed to LISA's layout (the inverse of LISA_KEY_RULES, written out by hand)."""
    inverse = [
        ("sam_image_encoder.", "model.visual_model.image_encoder."),
        ("prompt_encoder.", "model.visual_model.prompt_encoder."),
        ("mask_decoder.", "model.visual_model.mask_decoder."),
        ("mask_head.mlp.", "model.text_hidden_fcs.0."),
        ("projector.linear_1.", "model.mm_projector.0."),
        ("projector.linear_2.", "model.mm_projector.2."),
        ("vision_tower.clip.", "model.vision_tower.vision_tower.vision_model."),
        ("language_model.lm_head.", "lm_head."),
        ("language_model.model.", "model."),
    ]
    out = {}
    for k, v in model.state_dict().items():
        for ours, theirs in inverse:
            if k.startswith(ours):
                out[theirs + k[len(ours) :]] = v.clone()
                break
    return out


def test_lisa_style_checkpoint_maps_onto_the_model():
    src = get("model", "tiny")(overrides=["lora.enabled=false", "seed=5"])
    dst = get("model", "tiny")(overrides=["lora.enabled=false", "seed=6"])
    state = _to_lisa_keys(src)
    assert len(LISA_KEY_RULES) >= 9
    n_base = len(src.tokenizer) - 7  # a LISA vocabulary without the PixSearch tokens: fewer embedding rows
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:n_base].clone()
    before = dst.state_dict()["language_model.model.embed_tokens.weight"].clone()
    load_lisa_style(dst, state, "lisa.safetensors")
    for k, v in src.state_dict().items():
        if k == "language_model.model.embed_tokens.weight":
            assert torch.equal(dst.state_dict()[k][:n_base], v[:n_base])
            assert torch.equal(dst.state_dict()[k][n_base:], before[n_base:])
        elif not k.startswith("span_tagger"):
            assert torch.equal(v, dst.state_dict()[k]), k
    state["model.unknown_head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError, match="no mapping rule.*model.unknown_head.weight"):
        load_lisa_style(dst, state, "lisa.safetensors")


def test_build_from_checkpoint_restores_the_trained_configuration(tmp_path):
    """A checkpoint carries its ModelConfig: eval rebuilds a non-default model without repeating its overrides."""
    from pixsearch_core.modeling.build import build_from_checkpoint

    over = [
        "language_model.hidden_size=48",
        "language_model.num_layers=3",
        "lora.enabled=false",
        "trainable.parts=[span_tagger,mask_head,prompt_encoder,mask_decoder,projector,language_model]",
    ]
    a = get("model", "tiny")(overrides=over)
    _randomize_trainable(a)
    save_trainable(a, str(tmp_path / "c"))
    b = build_from_checkpoint(str(tmp_path / "c"), "tiny")
    assert b.language_model.config.hidden_size == 48 and b.language_model.config.num_hidden_layers == 3
    assert torch.equal(_outputs(a)[0].logits, _outputs(b)[0].logits)
    with pytest.raises(CheckpointMismatchError):  # the plain size without the stored config does not fit
        load_trainable(get("model", "tiny")(), str(tmp_path / "c"))

"""The `13b` builder's wiring, on tiny checkpoints of the same classes: a LLaVA directory in Hugging Face format
(LlavaForConditionalGeneration + tokenizer) and a SAM-format .pth, from a local path and from S3."""

from __future__ import annotations

import os

import pytest
import torch

from pixsearch_core.modeling.build import model_config, tiny_tokenizer
from pixsearch_core.modeling.sam import build_sam_parts
from pixsearch_core.registry import get
from pixsearch_core.training.losses import pixsearch_loss
from tests._pixsearch_batch import batch


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(7)
    tok = tiny_tokenizer()
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=28,
            patch_size=14,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tok) + 3,
        ),
        image_token_index=len(tok) + 2,
    )
    llava = LlavaForConditionalGeneration(cfg)
    llava.save_pretrained(root / "llava")
    tok.save_pretrained(root / "llava")
    parts = build_sam_parts("tiny", image_size=64, prompt_dim=32)
    sam_state = {
        f"{name}.{k}": v
        for name in ("image_encoder", "prompt_encoder", "mask_decoder")
        for k, v in getattr(parts, name).state_dict().items()
    }
    torch.save(sam_state, root / "sam_tiny.pth")
    return root, llava, sam_state


def _overrides(llava_uri, sam_uri, cache):
    return [
        f"language_model.path={llava_uri}",
        "sam.kind=tiny",
        f"sam.checkpoint={sam_uri}",
        "sam.image_size=64",
        "sam.prompt_dim=32",
        "dtype=float32",
        "device=cpu",
        "span_tagger_ff_dim=64",
        "span_tagger_heads=4",
        f"cache_dir={cache}",
    ]


def _check(model, llava, sam_state):
    base = model.language_model.get_base_model()
    ours = {n.replace(".base_layer", ""): p for n, p in base.model.named_parameters() if "lora_" not in n}
    theirs = dict(llava.model.language_model.named_parameters())
    assert set(ours) == set(theirs)
    for n, q in theirs.items():
        if "embed_tokens" not in n:  # resized for the special tokens
            assert torch.equal(ours[n], q), n
    assert torch.equal(model.projector.linear_2.weight, llava.model.multi_modal_projector.linear_2.weight)
    for k, v in sam_state.items():
        head, _, rest = k.partition(".")
        own = {"image_encoder": model.sam_image_encoder}.get(head) or getattr(model, head)
        assert torch.equal(own.state_dict()[rest], v), k
    trainable = {
        n.split(".")[0] if "lora_" not in n else "lora"
        for n, p in model.named_parameters()
        if p.requires_grad and "embed_tokens" not in n and "lm_head" not in n
    }
    assert trainable == {"lora", "span_tagger", "mask_head", "prompt_encoder", "mask_decoder"}  # Table 9
    lora = {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if "lora_" in n}
    assert lora == {"q_proj", "v_proj"} and not any("lora" in n for n, _ in model.vision_tower.named_parameters())
    assert model.mask_feedback and model.config.size == "13b"
    b = batch(model)
    out = model(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"], with_teacher=True)
    total, _ = pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"])
    total.backward()
    assert model.projector.linear_1.weight.grad is None  # the LLaVA projector stays frozen in 13b


def test_13b_builds_from_local_llava_and_sam_checkpoints(checkpoints, tmp_path):
    root, llava, sam_state = checkpoints
    model = get("model", "13b")(overrides=_overrides(root / "llava", root / "sam_tiny.pth", tmp_path))
    _check(model, llava, sam_state)


@pytest.mark.s3
def test_13b_builds_from_object_store_uris(checkpoints, s3_store, tmp_path):
    root, llava, sam_state = checkpoints
    base = s3_store.root
    for dirpath, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            s3_store.put_file(f"{base}/{rel}", os.path.join(dirpath, f))
    model = get("model", "13b")(overrides=_overrides(f"{base}/llava", f"{base}/sam_tiny.pth", tmp_path), store=s3_store)
    _check(model, llava, sam_state)


def test_13b_defaults_are_the_paper():
    cfg = model_config("13b")
    assert (cfg.language_model.kind, cfg.vision.kind, cfg.sam.kind) == ("llava_hf", "llava_hf", "vit_h")
    assert (cfg.lora.r, cfg.dtype, cfg.span_tagger_ff_dim) == (8, "bfloat16", 2048)
    assert cfg.trainable.parts == ["span_tagger", "mask_head", "prompt_encoder", "mask_decoder"]

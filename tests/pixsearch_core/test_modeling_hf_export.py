"""Exports plain transformers / peft open: the LM directory gives the same logits as PixSearch's LM (LoRA merged,
special tokens included), and the LoRA adapter on the same base LM gives them too."""

from __future__ import annotations

import torch

from pixsearch_core.modeling.hf_export import export_hf
from pixsearch_core.registry import get


def _trained_tiny():
    torch.manual_seed(0)
    model = get("model", "tiny")(overrides=["dtype=float32"])
    with torch.no_grad():  # as if trained: non-zero LoRA B and changed special-token rows
        for n, p in model.language_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
        ids = model.token_ids
        model.language_model.get_input_embeddings().weight[ids.search_start] += 1.0
    return model.eval()


def test_language_model_directory_matches_pixsearch_logits(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _trained_tiny()
    files = export_hf(model, str(tmp_path / "final"))
    assert "language_model/config.json" in files and "lora_adapter/adapter_config.json" in files
    lm_dir = tmp_path / "final" / "hf" / "language_model"
    plain = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    tok = AutoTokenizer.from_pretrained(lm_dir)
    text = "Who made this?<search><region></search><information>Doc 1 (X): y</information> Answer: X"
    ids = tok(text, return_tensors="pt").input_ids
    assert ids.tolist() == model.tokenizer(text, return_tensors="pt").input_ids.tolist()
    assert tok.convert_tokens_to_ids("<search>") == model.token_ids.search_start
    with torch.no_grad():
        ours = model.language_model(input_ids=ids).logits
        theirs = plain(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()
    # the LoRA really changed the logits (the export is not just the base LM)
    with torch.no_grad(), model.language_model.disable_adapter():
        base = model.language_model(input_ids=ids).logits
    assert not torch.allclose(base, theirs, atol=1e-3)


def test_lora_adapter_loads_with_peft_on_the_base(tmp_path):
    from peft import PeftModel

    model = _trained_tiny()
    export_hf(model, str(tmp_path / "final"))
    torch.manual_seed(0)  # the tiny base LM is random: the same seed rebuilds the same base (mini/13b load theirs)
    base = get("model", "tiny")(overrides=["dtype=float32", "lora.enabled=false"]).language_model
    adapted = PeftModel.from_pretrained(base, tmp_path / "final" / "hf" / "lora_adapter").eval()
    ids = model.tokenizer("a <search> b", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(adapted(input_ids=ids).logits, model.language_model(input_ids=ids).logits, atol=1e-5)

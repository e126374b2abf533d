"""Exports that plain `transformers` and `peft` open, next to the PixSearch checkpoint.

export_hf(model, "s3://b/ckpt/stage2/final")
  <dir>/hf/language_model/   the LM as a Hugging Face model directory: config.json (with model_type),
                             model.safetensors with LoRA merged in, and the tokenizer with the PixSearch
                             special tokens (<search>, </search>, <image>, <region>, <information>, ...)
  <dir>/hf/lora_adapter/     (LoRA runs only) the adapter alone: adapter_config.json + adapter_model.safetensors,
                             to put on the same base LM with `PeftModel.from_pretrained`; the special-token
                             rows of the embeddings are saved in it too (the vocabulary grew)
  <dir>/trainable.safetensors, config.json   the PixSearch parts (span tagger, mask head, SAM decoder, ...):
                             see weights.save_trainable

from transformers import AutoModelForCausalLM, AutoTokenizer
lm = AutoModelForCausalLM.from_pretrained("<dir>/hf/language_model")   # same logits as PixSearch's LM
"""

from __future__ import annotations

import copy
import logging
import tempfile
from pathlib import Path

from torch import nn

from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

HF_DIR = "hf"


def _upload(store: ObjectStore, local: Path, uri: str) -> dict[str, str]:
    return {
        str(p.relative_to(local)): store.put_file(join(uri, str(p.relative_to(local))), p)
        for p in sorted(local.rglob("*"))
        if p.is_file()
    }


def _is_peft(lm: nn.Module) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(lm, PeftModel)


def merged_language_model(model: nn.Module) -> nn.Module:
    """The LM with LoRA merged in, as a plain transformers model (a copy when LoRA is on: training goes on).

    An LM read from a GGUF file (`mini`) holds dequantized float weights, but transformers still marks it as
    quantized with gguf and refuses to save it; the copy drops that mark, so it saves as an ordinary float model."""
    lm = model.language_model
    if _is_peft(lm):
        lm = copy.deepcopy(lm).merge_and_unload()
    elif getattr(lm, "hf_quantizer", None) is not None:
        lm = copy.deepcopy(lm)
    return _without_gguf_mark(lm)


def _without_gguf_mark(lm: nn.Module) -> nn.Module:
    quantizer = getattr(lm, "hf_quantizer", None)
    if quantizer is None:
        return lm
    method = getattr(quantizer.quantization_config, "quant_method", None)
    if str(getattr(method, "value", method)).lower() != "gguf":
        raise ValueError(f"the language model is quantized with {method}; only gguf-dequantized LMs can be exported")
    lm.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if attr in lm.__dict__:
            delattr(lm, attr)
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    return lm


def export_hf(model: nn.Module, uri: str, store: ObjectStore | None = None) -> dict[str, str]:
    """Write `<uri>/hf/...` (see the module docstring); returns {relative path: sha256}."""
    store = store or ObjectStore()
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = Path(tmp) / "language_model"
        merged_language_model(model).save_pretrained(lm_dir, safe_serialization=True)
        model.tokenizer.save_pretrained(lm_dir)
        out.update(
            {f"language_model/{k}": v for k, v in _upload(store, lm_dir, join(uri, HF_DIR, "language_model")).items()}
        )
        if _is_peft(model.language_model):
            ad_dir = Path(tmp) / "lora_adapter"
            model.language_model.save_pretrained(ad_dir, save_embedding_layers=True)
            out.update(
                {f"lora_adapter/{k}": v for k, v in _upload(store, ad_dir, join(uri, HF_DIR, "lora_adapter")).items()}
            )
    log.info(
        "exported the language model for transformers%s to %s",
        " and its LoRA adapter for peft" if _is_peft(model.language_model) else "",
        join(uri, HF_DIR),
    )
    return out

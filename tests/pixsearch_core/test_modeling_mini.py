"""`mini`: real pretrained parts from PyPI packages (SmolLM2-135M GGUF, LiteMedSAM), built offline, segmenting a
real photo (scikit-image's coins) from a box and from a text span. Slow (about a minute: GGUF dequantization and
a TinyViT pass on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mini():
    mp = pytest.MonkeyPatch()
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        mp.setenv(var, "1")
    from pixsearch_core.registry import get

    model = get("model", "mini")()
    model.eval()
    yield model
    mp.undo()


@pytest.fixture(scope="module")
def coins():
    from skimage import data, filters, measure, morphology

    img = data.coins()
    labels = measure.label(morphology.remove_small_objects(img > filters.threshold_otsu(img), max_size=200))
    regions = sorted(measure.regionprops(labels), key=lambda r: -r.area)[1:3]  # [0] is the bright top strip
    return np.repeat(img[:, :, None], 3, axis=2), [(r.bbox, labels == r.label) for r in regions]


def test_mini_segments_coins_from_box_prompts(mini, coins):
    rgb, regions = coins
    boxes = torch.tensor([[x0 - 4, y0 - 4, x1 + 4, y1 + 4] for (y0, x0, y1, x1), _ in regions])
    calls = []
    hook = mini.sam_image_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        masks = mini.predict_mask([rgb] * len(regions), boxes=boxes)
        # the same photo again, now prompted by a text span: the SAM embedding comes from the cache
        tok = mini.tokenizer
        text = "<image_features>Segment the coin on the right."
        enc = tok([text], return_tensors="pt", return_offsets_mapping=True)
        s = text.index("coin")
        start, end = enc.offset_mapping[0, :, 0], enc.offset_mapping[0, :, 1]
        span = (start < s + 4) & (end > s) & (end > start)  # the tokens overlapping "coin"
        assert span.sum() >= 1
        by_span = mini.predict_mask([rgb], input_ids=enc.input_ids, span_mask=span[None], return_details=True)
    finally:
        hook.remove()
    assert calls == [1]
    for mask, (_, reference) in zip(masks, regions):  # reference: Otsu threshold + connected component
        iou = (mask.numpy() & reference).sum() / (mask.numpy() | reference).sum()
        assert iou > 0.75, iou
    assert by_span.has_prompt.tolist() == [True] and by_span.masks[0].shape == rgb.shape[:2]


def test_mini_language_model_is_the_real_smollm2(mini):
    tok = mini.tokenizer
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    state = mini.start(None, ids["input_ids"], ids["attention_mask"])
    out = []
    for _ in range(8):
        nxt = state.logits[:, -1].argmax(-1, keepdim=True)
        out.append(int(nxt))
        state = mini.append_tokens(state, nxt)
    assert "Paris" in tok.decode(out)
    assert state.hidden_states.shape[-1] == 576


def test_mini_exports_for_plain_transformers_with_the_same_logits(mini, tmp_path):
    """The GGUF-loaded LM is dequantized but marked quantized; the export drops the mark (the first mini training
    failed at its stage-1 export with "quantized with gguf and is not serializable")."""
    from transformers import AutoModelForCausalLM

    from pixsearch_core.modeling.hf_export import export_hf
    from pixsearch_core.storage import ObjectStore

    files = export_hf(mini, str(tmp_path), ObjectStore())
    assert "language_model/model.safetensors" in files and "lora_adapter/adapter_config.json" in files
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "hf" / "language_model")
    assert lm.config.model_type == "llama" and getattr(lm.config, "quantization_config", None) is None
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.equal(lm(ids).logits, mini.language_model(input_ids=ids).logits)
    assert mini.language_model.base_model.model.hf_quantizer is not None  # the live model is left as it was

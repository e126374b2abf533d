"""GrowingCache (in-place KV appends) gives the logits of transformers' DynamicCache through prefill, one-token
steps, a chunk that outgrows the buffer, and a row selection; and `PixSearchModel.step(logits_to_keep=1)` is the
last position of the full logits."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from pixsearch_core.modeling import kv_cache
from pixsearch_core.modeling.kv_cache import GrowingCache


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(cfg).eval()


def _run(lm, cache, monkeypatch=None):
    """Prefill 2 left-padded rows, 3 one-token steps, a 20-token chunk, drop row 0, 2 more steps -> logits list."""
    torch.manual_seed(1)
    ids = torch.randint(3, 97, (2, 6))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    out, logits = [], []

    def step(ids, mask):
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        with torch.inference_mode():
            o = lm(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True)
        logits.append(o.logits[:, -1])
        return o

    out = step(ids, mask)
    for width in (1, 1, 1, 20):
        ids = torch.randint(3, 97, (mask.shape[0], width))
        mask = torch.cat([mask, torch.ones_like(ids)], 1)
        out = step(ids, mask)
    cache.batch_select_indices(torch.tensor([1]))
    mask = mask[1:]
    for _ in range(2):
        ids = torch.randint(3, 97, (1, 1))
        mask = torch.cat([mask, torch.ones_like(ids)], 1)
        out = step(ids, mask)
    return logits, out.past_key_values


def test_growing_cache_matches_dynamic_cache(lm, monkeypatch):
    monkeypatch.setattr(kv_cache, "HEADROOM", 4)  # the 20-token chunk must outgrow the first buffer
    ref, ref_cache = _run(lm, DynamicCache())
    got, cache = _run(lm, GrowingCache())
    assert isinstance(cache, GrowingCache)
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert cache.get_seq_length() == ref_cache.get_seq_length() == 6 + 3 + 20 + 2
    for mine, theirs in zip(cache.layers, ref_cache.layers):
        torch.testing.assert_close(mine.keys, theirs.keys)
        assert mine._k.shape[-2] > mine.keys.shape[-2]  # spare capacity: the next step appends in place


def test_growing_cache_crop(lm):
    cache = GrowingCache()
    ids = torch.randint(3, 97, (1, 8))
    with torch.inference_mode():
        lm(input_ids=ids, past_key_values=cache, use_cache=True)
        cache.crop(-3)
        assert cache.get_seq_length() == 5
        full = lm(input_ids=ids[:, 5:], past_key_values=cache, use_cache=True).logits[:, -1]
        ref = lm(input_ids=ids).logits[:, -1]
    torch.testing.assert_close(full, ref, atol=1e-5, rtol=1e-5)


def test_step_logits_to_keep():
    from pixsearch_core.registry import get

    model = get("model", "tiny")().eval()
    ids = torch.randint(3, 200, (2, 7))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        full = model.step(mask, input_ids=ids)
        last = model.step(mask, input_ids=ids, logits_to_keep=1)
    assert last.logits.shape == (2, 1, full.logits.shape[-1])
    assert last.hidden_states.shape == full.hidden_states.shape
    assert isinstance(last.past_key_values, GrowingCache)
    torch.testing.assert_close(last.logits[:, 0], full.logits[:, -1], atol=1e-5, rtol=1e-5)

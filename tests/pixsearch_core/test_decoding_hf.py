"""A real (tiny, random) Hugging Face causal LM: the KV-cache path equals re-encoding after every hop."""

import pytest
import torch
from decoding_fakes import MemorySearcher, make_tokenizer

from pixsearch_core.decoding import DecodeOptions, DecodeRequest, SearchInterleavedDecoder
from pixsearch_core.decoding.forcing import SearchSchedule
from pixsearch_core.decoding.hf import HFCausalLMAdapter

PROMPTS = [
    "who painted the mona lisa",
    "what is the breed of this dog",
    "paris",
    "who was born in paris in the year 1 2 3",
]


def tiny_llama(vocab: int, attn: str, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        attn_implementation=attn,
    )
    return LlamaForCausalLM(cfg).float().eval()


def decode(model, tok, prompts, **opts):
    adapter = HFCausalLMAdapter(model, tok)
    schedule = SearchSchedule(adapter.ids, every=3, payload=2, searches=3, answer=4)
    dec = SearchInterleavedDecoder(
        adapter, MemorySearcher(), DecodeOptions(max_new_tokens=60, top_k=2, **opts), logits_processor=schedule
    )
    return dec.decode([DecodeRequest(f"q{i}", p) for i, p in enumerate(prompts)])


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_cached_equals_reencoded_and_batched_equals_single(tok, attn):
    model = tiny_llama(len(tok), attn)
    cached = decode(model, tok, PROMPTS)
    reencoded = decode(model, tok, PROMPTS, kv_cache=False)
    single = [decode(model, tok, [p])[0] for p in PROMPTS]
    for c, r, s in zip(cached, reencoded, single):
        assert len(c.searches) == 3 and c.issues == [] and c.finish_reason == "eos"
        assert c.tokens == r.tokens == s.tokens
    # the generated (non-forced) tokens differ between prompts: they really come from the model
    assert len({tuple(t for t, f in zip(c.tokens, c.is_forced) if not f) for c in cached}) > 1


def test_reference_greedy_without_searches_matches_generate(tok):
    """With no search the decoder is plain greedy decoding: compare with transformers' own generate()."""
    model = tiny_llama(len(tok), "eager", seed=1)
    adapter = HFCausalLMAdapter(model, tok)
    [t] = SearchInterleavedDecoder(
        adapter,
        MemorySearcher(),
        DecodeOptions(mode="no_search", max_new_tokens=12),
        logits_processor=SearchSchedule(adapter.ids, searches=0, answer=99),
    ).decode([DecodeRequest("q", PROMPTS[0])])
    ids = torch.tensor([tok.encode(PROMPTS[0])])
    banned = [
        [i]
        for i in SearchSchedule(adapter.ids).structural
        + [adapter.ids.info_start, adapter.ids.info_end, adapter.ids.image_placeholder]
    ]
    ref = model.generate(ids, max_new_tokens=12, do_sample=False, bad_words_ids=banned, pad_token_id=adapter.ids.pad)
    assert t.tokens == ref[0, ids.shape[1] :].tolist()


def test_adapter_rejects_unresized_model(tok):
    model = tiny_llama(len(tok) - 3, "eager")
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        HFCausalLMAdapter(model, tok)


def test_sampling_is_seeded_and_differs_from_greedy(tok):
    model = tiny_llama(len(tok), "eager")
    greedy = decode(model, tok, PROMPTS[:2])
    a = decode(model, tok, PROMPTS[:2], temperature=5.0, seed=3)
    b = decode(model, tok, PROMPTS[:2], temperature=5.0, seed=3)
    assert [t.tokens for t in a] == [t.tokens for t in b]
    assert [t.tokens for t in a] != [t.tokens for t in greedy]

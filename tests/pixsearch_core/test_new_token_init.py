"""The special tokens' new embedding rows: "words" starts each from its words' pretrained rows, "mean" all alike."""

import pytest
import torch

from pixsearch_core.modeling.tokens import (
    IMAGE,
    IMAGE_PLACEHOLDER,
    REGION,
    SEARCH_END,
    SEARCH_START,
    SPECIAL_TOKENS,
    add_special_tokens,
    resize_token_embeddings,
)

WORDS = ["the", "search", "end", "image", "region", "information", "picture", "dog"]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def llama(vocab: int, tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, tie_word_embeddings=tied,
    )  # fmt: skip
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_words_init_starts_each_token_from_its_words(tied):
    tok = tokenizer()
    lm = llama(len(tok), tied)
    before_in = lm.get_input_embeddings().weight.detach().clone()
    before_out = lm.get_output_embeddings().weight.detach().clone()
    add_special_tokens(tok)
    old = resize_token_embeddings(lm, tok, init="words")
    assert old == len(before_in) and lm.get_input_embeddings().weight.shape[0] == len(tok)
    vocab = tok.get_vocab()
    for matrix, before in (
        (lm.get_input_embeddings().weight, before_in),
        (lm.get_output_embeddings().weight, before_out),
    ):
        assert torch.equal(matrix[:old], before)  # pretrained rows untouched
        assert torch.allclose(matrix[vocab[REGION]], before[vocab["region"]])
        assert torch.allclose(matrix[vocab[IMAGE]], before[vocab["image"]])
        assert torch.allclose(matrix[vocab[SEARCH_START]], before[vocab["search"]])
        assert torch.allclose(matrix[vocab[SEARCH_END]], (before[vocab["end"]] + before[vocab["search"]]) / 2)
        assert torch.allclose(matrix[vocab[IMAGE_PLACEHOLDER]], before[vocab["picture"]])
        rows = matrix[[vocab[t] for t in SPECIAL_TOKENS]]
        assert torch.cdist(rows, rows).add(torch.eye(len(rows))).min() > 1e-3  # six distinct rows
    if tied:
        assert lm.get_output_embeddings().weight.data_ptr() == lm.get_input_embeddings().weight.data_ptr()


def test_mean_init_leaves_the_choice_tokens_alike_and_bad_init_is_named():
    tok = tokenizer()
    lm = llama(len(tok), tied=True)
    add_special_tokens(tok)
    resize_token_embeddings(lm, tok)  # the default: transformers' mean resizing
    w = lm.get_input_embeddings().weight
    vocab = tok.get_vocab()
    assert torch.allclose(w[vocab[IMAGE]], w[vocab[REGION]], atol=1e-3)  # why "words" exists
    with pytest.raises(ValueError, match="'mean' or 'words'"):
        resize_token_embeddings(llama(len(tok) - 7, tied=True), tok, init="random")

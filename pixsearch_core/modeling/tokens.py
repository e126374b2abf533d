"""The special tokens of PixSearch, added to a tokenizer and a language model in ONE place.

Decoding (the search-interleaved decoder), data construction and training all import from here:

    <search> ... </search>            a retrieval request; the payload is <image>, <region> or query text
    <image>                           payload: the whole image is the query
    <region>                          payload: a mask of the last entity mentioned, cropped, is the query
    <information> ... </information>  retrieved evidence forced into the stream (masked out of the LM loss)

`IMAGE_PLACEHOLDER` is internal: it marks where the image features are spliced into a prompt
(`PixSearchModel.encode_prefix`). It is a separate token so that a generated `<image>` payload is never mistaken
for the image slot.

    ids = add_special_tokens(tokenizer)                   # idempotent; returns the ids
    resize_token_embeddings(language_model, tokenizer)    # new rows = mean of the old ones
    resize_token_embeddings(language_model, tokenizer, init="words")   # each from its words (TOKEN_WORDS)

Why "words" for a pretrained LM: with the mean init the six new rows start identical (a pretrained LM's mean row
is also far shorter than its real rows), so `<image>` and `<region>` are one point that training must first pull
apart, and `<search>` has no pull at all at the LM's small learning rate. Starting each row from the mean of its
words' rows ("region", "image", "search") gives every choice its own direction from step 0 and a pretrained norm.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

SEARCH_START = "<search>"
SEARCH_END = "</search>"
IMAGE = "<image>"
REGION = "<region>"
INFO_START = "<information>"
INFO_END = "</information>"
#: the six tokens of the paper (§3.2), in a fixed order
SPECIAL_TOKENS: tuple[str, ...] = (SEARCH_START, SEARCH_END, IMAGE, REGION, INFO_START, INFO_END)
#: where `encode_prefix` splices the image features into a prompt; never generated
IMAGE_PLACEHOLDER = "<image_features>"
#: the words whose embedding rows start each new token's rows with `init="words"`
TOKEN_WORDS: dict[str, str] = {
    SEARCH_START: "search",
    SEARCH_END: "end search",
    IMAGE: "image",
    REGION: "region",
    INFO_START: "information",
    INFO_END: "end information",
    IMAGE_PLACEHOLDER: "picture",
}


@dataclass(frozen=True)
class SpecialTokenIds:
    """Token ids of the special tokens in one tokenizer."""

    search_start: int
    search_end: int
    image: int
    region: int
    info_start: int
    info_end: int
    image_placeholder: int
    eos: int
    pad: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def add_special_tokens(tokenizer) -> SpecialTokenIds:
    """Add the PixSearch tokens (and a pad token if missing) to `tokenizer`; returns their ids. Idempotent.

    Tokens are added as special (never split, never normalized). Call `resize_token_embeddings` afterwards.
    """
    from tokenizers import AddedToken

    wanted = [*SPECIAL_TOKENS, IMAGE_PLACEHOLDER]
    vocab = tokenizer.get_vocab()
    new = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in wanted if t not in vocab]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
        log.info("added %d special tokens: %s", len(new), ", ".join(str(t) for t in new))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return special_token_ids(tokenizer)


def special_token_ids(tokenizer) -> SpecialTokenIds:
    """The ids of the special tokens; raises naming the missing ones if `add_special_tokens` was not called."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in (*SPECIAL_TOKENS, IMAGE_PLACEHOLDER) if t not in vocab]
    if missing:
        raise KeyError(f"tokenizer lacks the PixSearch tokens {missing}; call add_special_tokens(tokenizer) first")
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError("tokenizer needs an eos and a pad token")
    return SpecialTokenIds(
        search_start=vocab[SEARCH_START],
        search_end=vocab[SEARCH_END],
        image=vocab[IMAGE],
        region=vocab[REGION],
        info_start=vocab[INFO_START],
        info_end=vocab[INFO_END],
        image_placeholder=vocab[IMAGE_PLACEHOLDER],
        eos=tokenizer.eos_token_id,
        pad=tokenizer.pad_token_id,
    )


def resize_token_embeddings(language_model, tokenizer, init: str = "mean") -> int:
    """Resize the LM's input and output embeddings to the tokenizer; returns the number of rows it had before
    (rows at or past it are the new tokens' rows).

    init: "mean" - every new row is the mean of the old rows (transformers' mean_resizing); "words" - each new
    PixSearch token's row is the mean of the rows of its words in `TOKEN_WORDS` (input and, when untied, output
    matrix alike); new tokens not in TOKEN_WORDS keep the mean.
    """
    if init not in ("mean", "words"):
        raise ValueError(f"new token init {init!r}: allowed 'mean' or 'words'")
    old = language_model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) <= old:
        return old
    language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if init == "words":
        import torch

        vocab = tokenizer.get_vocab()
        matrices = [language_model.get_input_embeddings().weight]
        out = language_model.get_output_embeddings()
        if out is not None and out.weight is not matrices[0] and out.weight.shape[0] == matrices[0].shape[0]:
            matrices.append(out.weight)
        with torch.no_grad():
            for token, words in TOKEN_WORDS.items():
                row = vocab.get(token)
                if row is None or row < old:
                    continue
                ids = [i for i in tokenizer(words, add_special_tokens=False)["input_ids"] if i < old]
                if not ids:
                    raise ValueError(f"the words {words!r} of {token} have no pretrained tokens in this tokenizer")
                for w in matrices:
                    w[row] = w[ids].mean(0)
    return old

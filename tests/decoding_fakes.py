"""Test doubles for the decoder: an offline tokenizer, a scripted model adapter and an in-memory searcher."""

from __future__ import annotations

import numpy as np
import torch

from pixsearch_core.decoding.adapter import ModelOutput
from pixsearch_core.modeling.tokens import add_special_tokens
from pixsearch_core.retrieval.types import Evidence, ImageQuery, RegionQuery, TextQuery

WORDS = (
    "the a is what dog cat breed of this husky tabby who painted it mona lisa leonardo da vinci answer "
    "was born in year city doc title text paris louvre museum ( ) : . , ... 1 2 3 4 5 6 7 8 9 0 no results "
    "image region photo wiki page about first second third hop query Doc yes ok x y z b c"
).split()


def make_tokenizer():
    """A WordLevel tokenizer built in memory (no downloads), with the PixSearch special tokens added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *dict.fromkeys(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    add_special_tokens(fast)
    return fast


N_IMAGE_SLOTS = 4  # the scripted model's "image features" occupy this many prefix positions


class ScriptedModel:
    """A `DecoderModel` whose logits force a scripted token sequence per sample.

    The script is the list of GENERATED tokens (evidence blocks are skipped when matching), so a test writes the
    trajectory it wants, malformed or not. After the script: EOS. EOS is always the runner-up (logit -1), so a
    masked scripted token turns into EOS. Hidden state (..., 0) is the fed token id, (..., 1) its position.
    It checks the decoder's batching contract: mask width = past + new, positions contiguous per row.
    """

    supports_images = True
    needs_hidden = True

    def __init__(self, tokenizer, scripts: dict[str, str], masks: dict | None = None, supports_images=True):
        from pixsearch_core.modeling.tokens import special_token_ids

        self.tokenizer, self.ids = tokenizer, special_token_ids(tokenizer)
        self.scripts = {k: tokenizer.encode(v, add_special_tokens=False) for k, v in scripts.items()}
        self.masks = masks or {}
        self.supports_images = supports_images
        self.prefills, self.extends, self.mask_calls = [], [], []
        self.vocab = len(tokenizer)

    def _prompt(self, request) -> list[int]:
        image = [self.ids.image_placeholder] * N_IMAGE_SLOTS if request.image is not None else []
        return image + self.tokenizer.encode(request.prompt, add_special_tokens=False)

    def _logits(self, cache) -> torch.Tensor:
        logits = torch.full((len(cache["rows"]), self.vocab), -1e9)
        for b, (sid, seq, n_prompt) in enumerate(zip(cache["ids"], cache["rows"], cache["prompt"])):
            gen, inside = [], False
            for t in seq[n_prompt:]:
                if t == self.ids.info_start:
                    inside = True
                elif t == self.ids.info_end:
                    inside = False
                elif not inside:
                    gen.append(t)
            script = self.scripts[sid]
            logits[b, self.ids.eos] = -1.0
            logits[b, script[len(gen)] if len(gen) < len(script) else self.ids.eos] = 0.0
        return logits

    def _hidden(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return torch.stack([ids.float(), pos.float()], -1)

    def prefill(self, requests, continuations):
        from pixsearch_core.decoding.adapter import left_pad

        prompts = [self._prompt(r) for r in requests]
        input_ids, mask, pos = left_pad([p + list(c) for p, c in zip(prompts, continuations)], self.ids.pad)
        self.prefills.append(input_ids.shape)
        cache = {
            "ids": [r.sample_id for r in requests],
            "rows": [p + list(c) for p, c in zip(prompts, continuations)],
            "prompt": [len(p) for p in prompts],
            "mask": mask,
        }
        return ModelOutput(self._logits(cache), cache, self._hidden(input_ids, pos), mask)

    def extend(self, cache, input_ids, attention_mask, position_ids):
        past = cache["mask"]
        assert attention_mask.shape == (past.shape[0], past.shape[1] + input_ids.shape[1])
        assert torch.equal(attention_mask[:, : past.shape[1]], past), "past mask changed"
        new = attention_mask[:, past.shape[1] :].bool()
        for b in range(input_ids.shape[0]):
            real = input_ids[b][new[b]].tolist()
            expect = list(range(len(cache["rows"][b]), len(cache["rows"][b]) + len(real)))
            assert position_ids[b][new[b]].tolist() == expect, "positions not contiguous"
            cache["rows"][b].extend(real)
        cache["mask"] = attention_mask
        self.extends.append(input_ids.shape)
        return ModelOutput(self._logits(cache), cache, self._hidden(input_ids, position_ids))

    def select(self, cache, index):
        keep = index.tolist()
        return {
            "ids": [cache["ids"][k] for k in keep],
            "rows": [cache["rows"][k] for k in keep],
            "prompt": [cache["prompt"][k] for k in keep],
            "mask": cache["mask"][index],
        }

    def predict_mask(self, request, hidden, continuation):
        self.mask_calls.append((request.sample_id, hidden[:, 0].long().tolist(), list(continuation)))
        return self.masks.get(request.sample_id)


class MemorySearcher:
    """An in-memory `Searcher` that records every call; evidence ids name the query they answer."""

    def __init__(self, fail: bool = False):
        self.calls: list[list] = []
        self.fail = fail

    def search(self, query, k):
        return self.search_many([query], k)[0]

    def search_many(self, queries, k):
        self.calls.append(list(queries))
        if self.fail:
            raise ConnectionError("search service down")
        return [self._answer(q, k) for q in queries]

    @staticmethod
    def _answer(q, k):
        if isinstance(q, TextQuery):
            key = "text:" + q.text
        elif isinstance(q, RegionQuery):
            key = "region:" + str(int(np.asarray(q.mask).sum()))
        else:
            assert isinstance(q, ImageQuery)
            key = "image"
        return [
            Evidence(f"{key}#{i}", "wiki", f"about the {key.split(':')[0]} doc {i}", 1.0 / (i + 1), "text")
            for i in range(k)
        ]

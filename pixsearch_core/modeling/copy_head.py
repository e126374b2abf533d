"""A pointer-generator copy head (See et al., 2017, "Get To The Point") for small LMs trained from scratch.

    p(x_{t+1} = w) = g_t * softmax(lm_logits_t)[w] + (1 - g_t) * sum_{i < t, x_{i+1} = w} a_{t,i}
    a_{t,i} = softmax_i(q_t . k_i / sqrt(d))      g_t = sigmoid(gate([h_t, c_t]))      c_t = sum_i a_{t,i} E[x_{i+1}]

over the earlier positions i (inside the `span` blocks) whose next token x_{i+1} is a text token: "find an
earlier state like mine and write what followed it" -- an induction head whose copy is done explicitly, so the
model only has to learn WHERE to look (q, k: see CopyHead). The demo's byte-level LM (conf/train/
synthcrag-demo.yaml) cannot form induction heads in a CPU budget and so never copied names and facts from the
`<information>` evidence (measured; README, Models, "Copy head"); the paper's pretrained LLaVA copies on its own
and has no such head (`copy_head: false`, the default).

The head returns log p as the logits: cross-entropy, argmax, constraints (-inf) and sampling all work unchanged.
During decoding its keys and token ids ride along with the LM's KV cache in a `CopyCache`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CopyCache:
    """The LM's HF cache plus the copy head's keys (B, S, d) and token ids (B, S; -1 = not text) of every position
    fed so far. The decoder only passes it back and selects rows (`batch_select_indices`)."""

    def __init__(self, lm_cache, keys: torch.Tensor, ids: torch.Tensor):
        self.lm_cache, self.keys, self.ids = lm_cache, keys, ids

    def batch_select_indices(self, index: torch.Tensor) -> None:
        self.lm_cache.batch_select_indices(index)
        self.keys, self.ids = self.keys[index], self.ids[index]


class CopyHead(nn.Module):
    """queries and keys = a projection of the last hidden state + embeddings of the last `ngram` tokens (shared by
    queries and keys, so equal n-grams match from the start: after "...rpa" the head looks where "rpa" occurred
    before and copies what followed; the hidden-state part learns the rest, e.g. where a name starts).

    span: (start id, end id) of the blocks it may copy from (the `<information>` evidence; None = the whole
    context). Copying only from the evidence keeps it from looping over its own output.
    The gate and the generated distribution also see what the head would copy (an embedding of the attended next
    tokens): a name copied out of "Nesho remains" must end where the answer ends, which only the generator knows
    (EOS) and only the copy side can see coming (the next copied byte is a space).
    """

    def __init__(
        self, hidden_size: int, vocab_size: int, dim: int = 64, ngram: int = 3, span: tuple[int, int] | None = None
    ):
        super().__init__()
        self.query = nn.Linear(hidden_size, dim, bias=False)
        self.key = nn.Linear(hidden_size, dim, bias=False)
        self.grams = nn.ModuleList(nn.Embedding(vocab_size + 1, dim) for _ in range(ngram))  # row V: no token
        for e in self.grams:
            nn.init.normal_(e.weight, std=0.3)
        self.lookahead = nn.Embedding(vocab_size + 1, dim)
        self.gate = nn.Linear(hidden_size + dim, 1)
        self.steer = nn.Linear(dim, vocab_size)
        nn.init.zeros_(self.steer.weight)  # starts as the plain LM
        nn.init.zeros_(self.steer.bias)
        self.vocab_size = vocab_size
        self.span = span
        self.scale = 1.0 / math.sqrt(dim)

    def _in_span(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, S) bool: positions from a span's start token up to (not including) its end token."""
        if self.span is None:
            return torch.ones_like(mask)
        start, end = self.span
        opened = ((ids == start) & mask).long().cumsum(1)
        closed = ((ids == end) & mask).long().cumsum(1)
        return opened > closed

    @staticmethod
    def next_real(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, S): the id of the next REAL position after each position (padding skipped; -1 = none or not text).
        Forced chunks pad inside the sequence, so "the next position" would lose the key before every chunk."""
        S = ids.shape[1]
        at = torch.where(mask, torch.arange(S, device=ids.device).expand_as(ids), torch.full_like(ids, S))
        suffix_min = at.flip(1).cummin(1).values.flip(1)  # first real position at or after i
        nxt_at = torch.cat([suffix_min[:, 1:], torch.full_like(ids[:, :1], S)], dim=1)
        return torch.where(nxt_at < S, ids.gather(1, nxt_at.clamp(max=S - 1)), torch.full_like(ids, -1))

    def _gram_features(self, ids: torch.Tensor, mask: torch.Tensor, new: int) -> torch.Tensor:
        """(B, new, dim): the summed embeddings of each of the `new` last positions' token and its real
        predecessors (padding skipped)."""
        S = ids.shape[1]
        at = torch.where(mask, torch.arange(S, device=ids.device).expand_as(ids), torch.full_like(ids, -1))
        prev_at = torch.cat([torch.full_like(ids[:, :1], -1), at.cummax(1).values[:, :-1]], dim=1)
        pos = torch.arange(S - new, S, device=ids.device).expand(ids.shape[0], new)
        out = 0
        for emb in self.grams:
            tok = torch.where(pos >= 0, ids.gather(1, pos.clamp(min=0)), torch.full_like(pos, -1))
            out = out + emb(torch.where(tok >= 0, tok, torch.full_like(tok, self.vocab_size)))
            pos = torch.where(pos >= 0, prev_at.gather(1, pos.clamp(min=0)), pos)
        return out

    def forward(
        self,
        logits: torch.Tensor,
        hidden: torch.Tensor,
        ids: torch.Tensor,
        key_mask: torch.Tensor,
        past_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the LM's next-token distribution with copying -> (log-probabilities (B, T, V), keys (B, S, d)).

        logits (B, T, V), hidden (B, T, D): the T newest positions (queries). ids (B, S) and key_mask (B, S) of ALL
        S positions so far (the last T are the queries'); ids -1 where the position is not a text token (image
        features, padding); key_mask 1 = a real position. past_keys (B, S - T, d): the keys returned for the
        earlier positions (a CopyCache's), or None when all S positions are new.
        """
        B, T, V = logits.shape
        if V != self.vocab_size:
            raise ValueError(f"copy head built for {self.vocab_size} tokens, the LM gives {V} logits")
        S = ids.shape[1]
        key_mask = key_mask.bool()
        grams = self._gram_features(ids, key_mask, T)  # shared by queries and keys
        keys = self.key(hidden) + grams
        if past_keys is not None:
            keys = torch.cat([past_keys, keys], dim=1)
        nxt = self.next_real(ids, key_mask)  # what followed position i
        valid = key_mask & (nxt >= 0) & self._in_span(ids, key_mask)  # (B, S)
        t_abs = torch.arange(S - T, S, device=keys.device)
        causal = torch.arange(S, device=keys.device)[None, :] < t_abs[:, None]  # i < t: x_{i+1} is known
        allowed = valid[:, None, :] & causal[None]  # (B, T, S)
        has_key = allowed.any(-1, keepdim=True)  # (B, T, 1)
        query = self.query(hidden) + grams
        scores = (query.float() @ keys.float().transpose(1, 2)) * self.scale
        attn = torch.softmax(scores.masked_fill(~allowed, float("-inf")).masked_fill(~has_key, 0.0), dim=-1)
        attn = attn * has_key
        p_copy = torch.zeros((B, T, V), dtype=attn.dtype, device=attn.device)
        p_copy.scatter_add_(2, nxt.clamp(min=0)[:, None, :].expand(B, T, S), attn)
        ahead = attn @ self.lookahead(torch.where(nxt >= 0, nxt, torch.full_like(nxt, self.vocab_size))).float()
        gate = self.gate(torch.cat([hidden.float(), ahead], dim=-1)).float()
        log_g = torch.where(has_key, F.logsigmoid(gate), torch.zeros_like(gate))
        log_1mg = torch.where(has_key, F.logsigmoid(-gate), torch.full_like(gate, float("-inf")))
        generate = log_g + torch.log_softmax(logits.float() + self.steer(ahead), dim=-1)
        copy = log_1mg + torch.log(p_copy.clamp(min=1e-30))
        return torch.logaddexp(generate, copy), keys

"""`SearchInterleavedDecoder`: the paper's Algorithm 1 as a batched state machine over a live KV cache.

    decoder = SearchInterleavedDecoder(model_adapter, searcher, DecodeOptions(max_searches=3))
    trajectories = decoder.decode([DecodeRequest("q1", prompt, image), ...])

Each step every live row picks one token. Rows that close `</search>` in that step are searched together in one
`searcher.search_many` call; their `<information>` block is appended to the SAME cache as one chunk, in the same
forward pass as the other rows' single tokens: the block is (B, T) with each row's new tokens right-aligned, pad
slots masked, positions `cumsum(mask) - 1`. The prefix (image included) is never re-encoded. With
`kv_cache=False` the whole context is re-encoded after every hop instead (what Search-R1 / FlashRAG-style loops
do), which is the benchmark's baseline and the test oracle.
"""

from __future__ import annotations

import logging

import torch

from pixsearch_core.decoding.adapter import DecodeRequest, positions
from pixsearch_core.decoding.hops import build_query, prepend_evidence, run_searches
from pixsearch_core.decoding.options import DecodeOptions
from pixsearch_core.decoding.policy import allowed_modalities, constrain, pick, turn_markers
from pixsearch_core.decoding.state import Row, RowState, Trajectory, finalize

log = logging.getLogger(__name__)


class SearchInterleavedDecoder:
    """Decodes a batch of requests with searches interleaved; returns one `Trajectory` per request, in order.

    `logits_processor(request, row, logits) -> logits` (optional) runs before the option constraints; the
    benchmark uses it to force scripted trajectories through a real model.
    """

    def __init__(self, model, searcher, options: DecodeOptions | None = None, logits_processor=None):
        self.model = model
        self.searcher = searcher
        self.options = options or DecodeOptions()
        self.logits_processor = logits_processor
        tok = getattr(model, "tokenizer", None)
        on = self.options.stop_at_turn_markers and tok is not None
        #: tokens that end a row like EOS (`DecodeOptions.stop_at_turn_markers`; policy.turn_markers)
        self.stops = turn_markers(tok, model.ids) if on else frozenset()

    def decode(self, requests: list[DecodeRequest]) -> list[Trajectory]:
        if not requests:
            return []
        opts, ids = self.options, self.model.ids
        rows = [Row(r.sample_id, ids, opts.max_new_tokens, opts.budget) for r in requests]
        allowed = [allowed_modalities(opts, self.model, r) for r in requests]
        if opts.mode in ("text_question", "whole_image"):
            prepend_evidence(rows, requests, self.searcher, self.model, opts)
        out = self._prefill(rows, requests, list(range(len(rows))))
        for row, n in zip(rows, out.attention_mask.sum(-1).tolist()):
            row.traj.prompt_tokens = int(n) - len(row.tokens)
        active, cache, attn, logits = list(range(len(rows))), out.cache, out.attention_mask, out.logits
        gen = torch.Generator().manual_seed(opts.seed) if opts.temperature > 0 else None
        while active:
            self._step_tokens(logits, rows, requests, allowed, active, gen)
            ready = [i for i in active if rows[i].state is RowState.AWAITING_EVIDENCE]
            if ready:
                self._hop(ready, rows, requests, allowed)
            keep = [j for j, i in enumerate(active) if rows[i].state is not RowState.DONE]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, dtype=torch.long)
                cache, attn = self.model.select(cache, index), attn[index.to(attn.device)]
                active = [active[j] for j in keep]
            if ready and not opts.kv_cache:  # the baseline: re-encode everything after a hop
                out = self._prefill(rows, requests, active)
                attn = out.attention_mask
            else:
                out, attn = self._extend(rows, active, cache, attn)
            cache, logits = out.cache, out.logits
        decode = lambda t, skip: self.model.tokenizer.decode(t, skip_special_tokens=skip)  # noqa: E731
        return [finalize(row, decode) for row in rows]

    def _prefill(self, rows: list[Row], requests, active: list[int]):
        out = self.model.prefill([requests[i] for i in active], [rows[i].tokens for i in active])
        for j, i in enumerate(active):
            rows[i].pending.clear()
            if out.hidden is not None:
                rows[i].hidden = [out.hidden[j, out.attention_mask[j].bool()]]
        return out

    def _extend(self, rows: list[Row], active: list[int], cache, attn):
        """Feed each row's pending tokens (one generated token, plus evidence after a hop) as one (B, T) block."""
        chunks = [rows[i].pending for i in active]
        width = max(len(c) for c in chunks)
        pad = self.model.ids.pad
        input_ids = torch.tensor([[pad] * (width - len(c)) + c for c in chunks], dtype=torch.long)
        new = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chunks], dtype=attn.dtype)
        attn = torch.cat([attn, new.to(attn.device)], dim=1)
        out = self.model.extend(cache, input_ids, attn, positions(attn)[:, -width:])
        for j, i in enumerate(active):
            if out.hidden is not None:
                rows[i].hidden.append(out.hidden[j, width - len(chunks[j]) :])
            rows[i].pending = []
        return out, attn

    def _step_tokens(self, logits, rows, requests, allowed, active, gen) -> None:
        logits = logits.float()
        if self.logits_processor is not None:
            logits = torch.stack([self.logits_processor(requests[i], rows[i], logits[j]) for j, i in enumerate(active)])
        masked = constrain(logits, [rows[i] for i in active], [allowed[i] for i in active], self.model.ids)
        eos = self.model.ids.eos
        for i, token in zip(active, pick(masked, self.options.temperature, gen, eos)):
            rows[i].push(eos if token in self.stops else token)

    def _hop(self, ready: list[int], rows, requests, allowed) -> None:
        calls, queries = [], []
        for i in ready:
            call, query = build_query(rows[i], requests[i], self.model, allowed[i])
            calls.append(call)
            queries.append(query)
        run_searches(
            [rows[i] for i in ready],
            calls,
            queries,
            self.searcher,
            self.model,
            self.options,
            [requests[i] for i in ready],
        )

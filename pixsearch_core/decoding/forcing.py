"""`SearchSchedule`: a logits processor that makes any model (even a random one) follow a fixed search pattern.

    text x `every` -> <search> payload </search> -> [evidence] -> ... x `searches` -> text x `answer` -> EOS

The payload of hop h is `modalities[h % len]`: "text" = `payload` free tokens, "image" / "region" = that token.

Between the forced structural tokens the model picks freely (greedy or sampled), so the tokens still depend on
its logits. The benchmark and the cache-equivalence tests use it to run identical 3-search trajectories through
real models; it is not used in normal decoding.
"""

from __future__ import annotations

import torch

from pixsearch_core.decoding.state import Row, RowState


class SearchSchedule:
    def __init__(
        self,
        ids,
        every: int = 8,
        payload: int = 4,
        searches: int = 3,
        answer: int = 8,
        modalities: tuple[str, ...] = ("text",),
    ):
        self.ids, self.every, self.payload, self.searches, self.answer = ids, every, payload, searches, answer
        bad = [m for m in modalities if m not in ("text", "image", "region")]
        if bad or not modalities:
            raise ValueError(f"unknown schedule modalities {bad}; allowed: text, image, region")
        self.modalities = modalities
        self.structural = [ids.search_start, ids.search_end, ids.image, ids.region, ids.eos]
        if ids.pad != ids.eos:
            self.structural.append(ids.pad)

    def _since_block(self, row: Row) -> int:
        start = row.blocks[-1][1] if row.blocks else 0
        return sum(1 for f in row.traj.is_forced[start:] if not f)

    def __call__(self, request, row: Row, logits: torch.Tensor) -> torch.Tensor:
        if row.state is RowState.IN_SEARCH:
            n = len(row.tokens) - row.search_start - 1
            modality = self.modalities[len(row.blocks) % len(self.modalities)]
            if modality != "text":
                token = self.ids.image if modality == "image" else self.ids.region
                return self._force(logits, token if n == 0 else self.ids.search_end)
            return self._force(logits, self.ids.search_end) if n >= self.payload else self._free(logits)
        n = self._since_block(row)
        if len(row.blocks) < self.searches and n >= self.every:
            return self._force(logits, self.ids.search_start)
        if len(row.blocks) >= self.searches and n >= self.answer:
            return self._force(logits, self.ids.eos)
        return self._free(logits)

    def _free(self, logits: torch.Tensor) -> torch.Tensor:
        out = logits.clone()
        out[self.structural] = float("-inf")
        return out

    @staticmethod
    def _force(logits: torch.Tensor, token: int) -> torch.Tensor:
        out = torch.full_like(logits, float("-inf"))
        out[token] = 0.0
        return out

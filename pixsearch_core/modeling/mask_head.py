"""The mask-query head g(.) (paper §4.2): a span's LM hidden states -> a SAM sparse prompt embedding.

    head = MaskQueryHead(d_model=5120, prompt_dim=256)
    queries = head(hidden_states, span_mask)     # (N, 1, 256): one mask query per span

g is applied per token (q_k = g(h_k)) and the queries of a span are averaged into one prompt token, so every span
gives a prompt of the same length and a batch of spans decodes in one call whatever the span lengths (LISA feeds
one [SEG] token the same way).
"""

from __future__ import annotations

import torch
from torch import nn


class MaskQueryHead(nn.Module):
    """Two-layer MLP (LISA's text_hidden_fcs): d_model -> d_model -> prompt_dim, ReLU, dropout."""

    def __init__(self, d_model: int, prompt_dim: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, prompt_dim), nn.Dropout(dropout)
        )

    def forward(self, hidden_states: torch.Tensor, span_mask: torch.Tensor) -> torch.Tensor:
        """hidden_states (N, T, D), span_mask (N, T) bool, one span per row -> queries (N, 1, prompt_dim).

        A row whose span is empty raises: a mask query needs at least one token.
        """
        counts = span_mask.sum(dim=1)
        if (counts == 0).any():
            rows = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(f"mask query head: rows {rows} have an empty span; every row needs >= 1 span token")
        q = self.mlp(hidden_states.to(self.mlp[0].weight.dtype))
        w = span_mask.to(q.dtype).unsqueeze(-1)
        return ((q * w).sum(dim=1) / counts.to(q.dtype).unsqueeze(-1)).unsqueeze(1)

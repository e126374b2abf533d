"""`GrowingCache`: a Hugging Face `DynamicCache` whose layers append into preallocated buffers.

`DynamicCache` appends each step's keys and values with `torch.cat`, which copies the whole cache every step: a
decode of T steps copies O(T^2) positions (7% of a batch-8 `mini` decode on a CPU, more as contexts grow). Here each
layer keeps (B, H, capacity, D) buffers and writes new positions in place; when full, the capacity doubles (one copy
per doubling). `keys` / `values` are views of the filled part, so everything that reads a `DynamicCache` (masks,
`get_seq_length`, `batch_select_indices`, `crop`) works unchanged.

    cache = GrowingCache()
    out = lm(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)   # then pass it back
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

#: positions allocated beyond the first chunk, so that the first few dozen decode steps never reallocate
HEADROOM = 256


class GrowingLayer(DynamicLayer):
    """One layer's keys and values in buffers with spare capacity along the sequence axis."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self._len = 0

    def _reserve(self, needed: int, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        if self._k is not None and needed <= self._k.shape[-2]:
            return
        cap = max(needed + HEADROOM, 2 * (self._k.shape[-2] if self._k is not None else 0))
        k = key_states.new_empty((*key_states.shape[:-2], cap, key_states.shape[-1]))
        v = value_states.new_empty((*value_states.shape[:-2], cap, value_states.shape[-1]))
        if self._len:
            k[..., : self._len, :] = self._k[..., : self._len, :]
            v[..., : self._len, :] = self._v[..., : self._len, :]
        self._k, self._v = k, v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._len + key_states.shape[-2]
        self._reserve(end, key_states, value_states)
        self._k[..., self._len : end, :] = key_states
        self._v[..., self._len : end, :] = value_states
        self._len = end
        self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
        return self.keys, self.values

    def _adopt(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Take new contents (after a row selection, crop or reorder): the next update reallocates."""
        self._k, self._v, self._len = keys, values, keys.shape[-2]
        self.keys, self.values = keys, values

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized and self._k is not None:
            self._len = self.keys.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._adopt(self.keys[indices], self.values[indices])

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._adopt(self.keys.repeat_interleave(repeats, 0), self.values.repeat_interleave(repeats, 0))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.get_seq_length() > 0:
            idx = beam_idx.to(self.keys.device)
            self._adopt(self.keys.index_select(0, idx), self.values.index_select(0, idx))

    def reset(self) -> None:
        self._k = self._v = None
        self._len = 0
        super().reset()


class GrowingCache(DynamicCache):
    """A `DynamicCache` (full attention, one `GrowingLayer` per model layer, created on first use)."""

    def __init__(self) -> None:
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)

"""A small LRU cache of SAM image embeddings keyed by image content, so that several region searches on one image
(and the prefix encoding of the same image) pay for the image encoder once."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class EmbeddingCache:
    """key -> value, least recently used evicted past `max_items` (0 disables caching)."""

    def __init__(self, max_items: int = 32) -> None:
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: str, value: Any) -> None:
        if self.max_items == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

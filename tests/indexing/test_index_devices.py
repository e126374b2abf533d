"""Batch sizes chosen for the device (`batch_size: auto`) and the GPU share a Spark task holds."""

from __future__ import annotations

import pytest

from indexing.devices import GPU_SHARE_ENV, batch_size


def test_auto_batch_sizes(monkeypatch):
    assert batch_size("auto", "text", "cpu") == 64 and batch_size("auto", "image", "cpu") == 16
    assert batch_size(7, "text", "cuda:0", memory_gib=80) == 7  # an explicit size always wins
    monkeypatch.delenv(GPU_SHARE_ENV, raising=False)
    assert batch_size("auto", "text", "cuda:0", memory_gib=16) == 256  # 8 usable GiB x 32
    assert batch_size("auto", "text", "cuda:0", memory_gib=141) == 1024  # capped
    monkeypatch.setenv(GPU_SHARE_ENV, "0.25")  # four tasks share the GPU
    assert (
        batch_size("auto", "text", "cuda:1", memory_gib=80) == 320
        and batch_size("auto", "image", "cuda:1", memory_gib=80) == 160
    )
    assert batch_size("auto", "image", "cuda", memory_gib=2) == 16  # never below the CPU size
    with pytest.raises(ValueError, match="unknown encoder kind 'audio'"):
        batch_size("auto", "audio", "cpu")

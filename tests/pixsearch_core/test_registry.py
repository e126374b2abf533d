from __future__ import annotations

import pytest

from pixsearch_core import registry
from pixsearch_core.registry import UnknownNameError


def test_register_get_and_suggestions():
    @registry.register("metric", "zz_test_exact_match")
    def f():
        return 1

    assert registry.get("metric", "zz_test_exact_match") is f
    assert "zz_test_exact_match" in registry.names("metric")
    with pytest.raises(UnknownNameError) as ei:
        registry.get("metric", "zz_test_exact_mach")
    msg = str(ei.value)
    assert "unknown metric 'zz_test_exact_mach'" in msg and "zz_test_exact_match" in msg and "Did you mean" in msg


def test_unknown_kind_lists_kinds():
    with pytest.raises(UnknownNameError, match="known: benchmark, image_encoder, metric, model"):
        registry.get("modle", "x")


def test_double_registration_is_an_error(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "retriever", dict(registry._REGISTRY["retriever"]))  # undone after
    registry.register("retriever", "zz_dup")(object)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("retriever", "zz_dup")(int)

"""A small registry of named implementations (lm-eval style).

Kinds are fixed (models, benchmarks, retrievers, metrics, image/text encoders, ...); each kind maps a name to a
factory. Registration is by decorator in the module that defines the implementation; lookups import the
modules listed for that kind lazily so that `pixsearch_core` stays importable without the heavy engines.

    from pixsearch_core.registry import register, get

    @register("benchmark", "hotpotqa")
    def build(...): ...

    get("benchmark", "hotpotqa")      # -> the factory
    get("benchmark", "hotpot")        # -> UnknownNameError: ... did you mean 'hotpotqa'?
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The kinds of things that can be registered, and the modules that register them (imported on first lookup).
#: A module listed here must be importable without pyspark, ray, deepspeed or airflow.
KINDS: dict[str, list[str]] = {
    "model": ["pixsearch_core.modeling.build"],
    "benchmark": [
        f"pixsearch_core.benchmarks.{m}"
        for m in (
            "crag_mm",
            "infoseek",
            "oven",
            "textvqa",
            "hotpotqa",
            "nq_open",
            "popqa",
            "musique",
            "refcoco",
            "ade20k",
            "coco_stuff",
            "synthcrag",
        )
    ],
    "retriever": ["pixsearch_core.retrieval.backends"],
    "metric": [
        f"pixsearch_core.metrics.{m}"
        for m in ("squad", "relaxed", "textqa", "infoseek", "oven", "textvqa", "crag", "segmentation")
    ],
    "image_encoder": ["indexing.embedders"],
    "text_encoder": ["indexing.embedders"],
}

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_LOADED: set[str] = set()


class UnknownNameError(KeyError):
    """An unknown kind or name: the message lists what is known and suggests the closest match."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0])


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownNameError(_unknown_message("kind", kind, sorted(KINDS)))


def _unknown_message(what: str, name: str, known: list[str]) -> str:
    msg = f"unknown {what} {name!r}; known: {', '.join(known) if known else '(none registered)'}"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        msg += f". Did you mean {close[0]!r}?"
    return msg


def register(kind: str, name: str) -> Callable[[T], T]:
    """Decorator: register `obj` under (kind, name). Registering a taken name twice is an error."""
    _check_kind(kind)

    def deco(obj: T) -> T:
        table = _REGISTRY[kind]
        if name in table and table[name] is not obj:
            raise ValueError(f"{kind} {name!r} is already registered to {table[name]!r}")
        table[name] = obj
        return obj

    return deco


def _load(kind: str) -> None:
    if kind in _LOADED:
        return
    for module in KINDS[kind]:
        importlib.import_module(module)
    _LOADED.add(kind)


def names(kind: str) -> list[str]:
    """All registered names of a kind, sorted."""
    _check_kind(kind)
    _load(kind)
    return sorted(_REGISTRY[kind])


def get(kind: str, name: str) -> Any:
    """The object registered under (kind, name); an unknown name raises `UnknownNameError` with suggestions."""
    _check_kind(kind)
    _load(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise UnknownNameError(_unknown_message(kind, name, sorted(_REGISTRY[kind]))) from None

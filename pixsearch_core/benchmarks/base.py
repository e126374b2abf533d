"""What every benchmark shares: the `Example` record, the `Benchmark` interface, and readers for the official
files from a directory, a file, `file://` or `s3://` (through `pixsearch_core.storage.ObjectStore`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pixsearch_core.jsonl import JsonlError, parse_jsonl
from pixsearch_core.storage import ObjectStore, join

log = logging.getLogger(__name__)

#: what happens to a gold example without a prediction (see `Benchmark.missing`)
MISSING_POLICIES = ("empty", "zero", "ignore")


@dataclass
class Example:
    """One question (or referring expression / image) of a benchmark."""

    id: str
    question: str = ""
    answers: list[str] = field(default_factory=list)
    image: str | None = None  # image file name, URI or id; None when the benchmark has no image
    mask: Any = None  # gold mask (array) or a loader of it; None for QA benchmarks
    metadata: dict[str, Any] = field(default_factory=dict)  # egocentric, domain, question type, split, ...


class BadRecordError(ValueError):
    """A gold record lacks a field or has the wrong type; the message names the record and the field."""


def require(record: dict, name: str, where: str, types: type | tuple[type, ...] | None = None) -> Any:
    """`record[name]`, or BadRecordError naming `where` (file and record) and the field."""
    if not isinstance(record, dict):
        raise BadRecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if name not in record or record[name] is None:
        raise BadRecordError(f"{where}: missing field {name!r} (fields present: {', '.join(sorted(record))})")
    value = record[name]
    if types is not None and not isinstance(value, types):
        want = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise BadRecordError(f"{where}: field {name!r} should be {want}, got {type(value).__name__}: {value!r:.80}")
    return value


def resolve(store: ObjectStore, path: str, candidates: Iterable[str]) -> str:
    """`path` itself if it is a file (object), else the first of `candidates` that exists under it."""
    if store.exists(path):
        return path
    tried = [join(path, c) for c in candidates]
    for uri in tried:
        if store.exists(uri):
            return uri
    raise FileNotFoundError(f"no gold file at {path}; looked for: {', '.join(tried)}")


def read_json(store: ObjectStore, uri: str) -> Any:
    try:
        return json.loads(store.get_bytes(uri))
    except json.JSONDecodeError as e:
        raise BadRecordError(f"{uri}: not valid JSON: {e}") from None


def read_jsonl(store: ObjectStore, uri: str) -> Iterator[tuple[int, dict]]:
    """(0-based line number, object) for every non-blank line (lines end at "\n" only: pixsearch_core.jsonl)."""
    for lineno, value in parse_jsonl(store.get_bytes(uri), uri, errors="yield"):
        if isinstance(value, JsonlError):
            raise BadRecordError(str(value))
        yield lineno - 1, value


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class Benchmark:
    """The interface: `load(path_or_uri, split)`, `score(example, prediction)`, `aggregate(scores)`.

    `prediction_kind` is "text" (a string per id) or "mask" (an array per id). `missing` is what a gold example
    without a prediction becomes: "empty" (scored as an empty prediction / empty mask), "zero" (every score 0,
    the official rule of SQuAD and HotpotQA) or "ignore" (left out of every denominator, InfoSeek's rule)."""

    name: ClassVar[str] = ""
    id_field: ClassVar[str] = "id"
    default_split: ClassVar[str] = "val"
    prediction_kind: ClassVar[str] = "text"
    missing: ClassVar[str] = "empty"

    def __init__(self, store: ObjectStore | None = None, **options: Any):
        self.store = store or ObjectStore()
        if options:
            raise TypeError(f"{self.name}: unknown options {sorted(options)}")

    def load(self, path: str, split: str | None = None) -> Iterator[Example]:
        raise NotImplementedError

    def score(self, example: Example, prediction: Any) -> dict[str, Any]:
        raise NotImplementedError

    def zero_score(self, example: Example) -> dict[str, Any]:
        """The score of a missing prediction under the "zero" policy."""
        raise NotImplementedError

    def aggregate(self, scores: list[dict[str, Any]]) -> dict[str, Any]:
        raise NotImplementedError

"""The one JSONL reader: one JSON value per line, lines ending at "\\n" only.

    for lineno, rec in parse_jsonl(store.get_bytes(uri), where=uri):   # 1-based line numbers, blank lines skipped
        ...

`str.splitlines()` also breaks at U+2028, U+2029, U+0085, \\v, \\f, \\x1c-\\x1e, which JSON allows unescaped
inside a string (`json.dumps(..., ensure_ascii=False)` writes U+2028 as is), so a model prediction holding one
would be cut in two and read as invalid JSON. Every JSONL reader of the project goes through here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class JsonlError(ValueError):
    """A line that is not valid JSON; names the file and the 1-based line."""

    def __init__(self, where: str, lineno: int, err: Exception):
        self.where, self.lineno = where, lineno
        super().__init__(f"{where} line {lineno}: not valid JSON: {err}")


def jsonl_lines(data: bytes | str) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of every non-blank line; bytes are decoded as UTF-8."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield lineno, line


def parse_jsonl(data: bytes | str, where: str = "<jsonl>", errors: str = "raise") -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) of every non-blank line. A bad line raises JsonlError, or with
    errors="yield" is yielded as the JsonlError (for readers that quarantine it and go on)."""
    if errors not in ("raise", "yield"):
        raise ValueError(f"errors={errors!r}; allowed: raise, yield")
    for lineno, line in jsonl_lines(data):
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            if errors == "raise":
                raise JsonlError(where, lineno, e) from None
            yield lineno, JsonlError(where, lineno, e)

"""Unpickling data files that come from outside (REFER's `refs(<split_by>).p`) without running code.

    refs = safe_loads(blob, encoding="latin1")    # lists, dicts, strings, numbers... or UnsafePickleError

`pickle` rebuilds builtin containers and scalars (dict, list, tuple, str, bytes, int, float, bool, None) with its
own opcodes; every other object is looked up through `find_class`, which is how a pickle names a callable to run.
Here `find_class` admits only the few builtin value types that have no opcode of their own (set, frozenset,
complex, bytearray, and Python 2's `__builtin__` spellings of them) and refuses everything else, naming it.
"""

from __future__ import annotations

import io
import pickle

_ALLOWED = {
    ("builtins", n)
    for n in (
        "set",
        "frozenset",
        "complex",
        "bytearray",
        "bytes",
        "str",
        "int",
        "float",
        "list",
        "dict",
        "tuple",
        "bool",
    )
}
_ALLOWED |= {("__builtin__", n) for _, n in list(_ALLOWED)}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global outside the allow-list."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(
                f"pickle refers to {module}.{name}; only builtin containers and scalars are allowed in this file"
            )
        return super().find_class(module, name)


def safe_loads(data: bytes, encoding: str = "ASCII") -> object:
    """`pickle.loads` that admits only builtin containers and scalars."""
    return _Restricted(io.BytesIO(data), encoding=encoding).load()

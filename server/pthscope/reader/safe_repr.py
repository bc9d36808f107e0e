"""Text for objects a file made, for messages and keys: bounded, and never failing.

`str()`/`repr()` of what a hostile pickle builds can run for hours (lists that share lists:
2**40 elements from a few hundred bytes), recurse without end (tuples nested 100,000 deep) or
raise (ints of more than 4,300 digits). `safe_repr` shows a few levels and items, then "...".
"""

from __future__ import annotations

import reprlib
from typing import Any

_INT64 = 1 << 63


class _Bounded(reprlib.Repr):
    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxset = self.maxfrozenset = self.maxdict = 4
        self.maxstring = self.maxother = 60
        self.maxlong = 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:
            return f"<int with {x.bit_length():,} bits>"
        return super().repr_int(x, level)

    def repr_bytes(self, x: bytes | bytearray, level: int) -> str:  # reprlib would show the address
        return repr(x[: self.maxstring]) + ("..." if len(x) > self.maxstring else "")

    repr_bytearray = repr_bytes

    def repr_instance(self, x: Any, level: int) -> str:
        # Never a repr the file could run: the class the file named (a stub's), or ours.
        saved = vars(type(x)).get("qualname")
        text = f"<{saved if type(saved) is str else type(x).__name__} object>"
        return text if len(text) <= self.maxother else text[: self.maxother - 4] + "...>"


_BOUNDED = _Bounded()


def safe_repr(obj: Any) -> str:
    """A short repr of `obj`: at most 3 levels, 4 items per container, 60 characters per string."""
    try:
        return _BOUNDED.repr(obj)
    except Exception:  # e.g. a dict whose keys cannot be sorted is shown by type only
        return f"<{type(obj).__name__}>"


def key_text(key: Any) -> str | None:
    """A storage key as text if it is a plain name (str, or an int within int64); else None."""
    if type(key) is str:
        return key
    if type(key) is int and -_INT64 <= key < _INT64:
        return str(key)
    return None

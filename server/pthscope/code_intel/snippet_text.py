"""Inserted code with tab stops: the same text as a plain edit or as a VS Code snippet.

Code generators (snippets.py) mark the parts a user usually changes — a path, a variable name —
with `tab_stop(n, default)`; `plain(text)` drops the marks (the edit a client without snippet
support gets), `snippet(text)` writes them in snippet syntax (`${1:'model.pth'}`, later uses of
the same stop as `$1`) and escapes everything else (`$`, `}` and `\\`), so no text — a path or a
key from a file, already made Python by python_text.py — can become a tab stop or a variable.
The marks use NUL, which python_text never emits (a string literal writes it as `\\x00`).
"""

from __future__ import annotations

import re

_MARK = re.compile("\x00(\\d+)\x01([^\x00]*)\x00")
_SNIPPET_SPECIAL = re.compile(r"([$}\\])")


def tab_stop(number: int, default: str) -> str:
    return f"\x00{number}\x01{default}\x00"


def plain(text: str) -> str:
    return _MARK.sub(lambda m: m.group(2), text)


def snippet(text: str) -> str:
    out: list[str] = []
    seen: set[str] = set()
    at = 0
    for mark in _MARK.finditer(text):
        out.append(_escape(text[at : mark.start()]))
        number, default = mark.group(1), mark.group(2)
        out.append(f"${number}" if number in seen else f"${{{number}:{_escape(default)}}}")
        seen.add(number)
        at = mark.end()
    out.append(_escape(text[at:]))
    return "".join(out)


def _escape(text: str) -> str:
    return _SNIPPET_SPECIAL.sub(r"\\\1", text)

"""Text a person reads, shown as the file holds it: the one place that makes invisible
characters visible.

Checkpoint keys, class names and file names can hold characters that do not print: NUL and other
controls, newlines, bidi overrides (U+202A–U+202E, U+2066–U+2069) that reorder what follows,
zero-width and other format characters, non-ASCII spaces, lone surrogates. `visible` writes each
as the escape Python would (`\\x00`, `\\n`, `\\u202e`), so a key cannot look like another key,
break a line of generated code, or hide text. Markdown (code_intel/markdown.py), generated Python
comments (code_intel/python_text.py), diagnostics, action titles and the CLI's text output all go
through it.
"""

from __future__ import annotations


def visible(text: str) -> str:
    """`text` with every non-printing character (as `str.isprintable` defines it, so everything
    but letters, marks, numbers, punctuation, symbols and the ASCII space) written as its Python
    escape."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)

"""Building text edits that keep the file's indentation and quote style.

`insert_after` places lines after a statement at its indentation; `retarget` renames a variable
in a piece of code by tokens (never inside strings or after a dot); `quote_char` is the quote
character the file mostly uses (string literals themselves come from `python_text`).
"""

from __future__ import annotations

import io
import tokenize

from ..analysis.facts import ModuleFacts, Span
from .types import Position, Range, TextEdit


def insert_after(facts: ModuleFacts, line: int, indent: str, code: list[str]) -> TextEdit:
    """Insert `code` lines (unindented) after 0-based `line`, each prefixed by `indent`."""
    body = [f"{indent}{text}" if text else "" for text in code]
    if line + 1 < len(facts.lines) or facts.trailing_newline:
        return TextEdit(Range.at(line + 1, 0), "\n".join(body) + "\n")
    end = len(facts.lines[line]) if line < len(facts.lines) else 0
    return TextEdit(Range.at(line, end), "\n" + "\n".join(body))


def already_there(facts: ModuleFacts, line: int, indent: str, code: list[str]) -> bool:
    """True when the lines after `line` already read exactly `code` (so inserting is a no-op)."""
    following = facts.lines[line + 1 : line + 1 + len(code)]
    return [t.rstrip() for t in following] == [f"{indent}{c}".rstrip() for c in code]


def statement_lines(facts: ModuleFacts, span: Span) -> list[str]:
    """A statement's source lines, dedented to its first line's indentation."""
    lines = facts.lines
    first = lines[span.start_line]
    if span.start_line == span.end_line:
        return [first[span.start_char : span.end_char]]
    indent = first[: span.start_char]
    rest = [*lines[span.start_line + 1 : span.end_line], lines[span.end_line][: span.end_char]]
    return [first[span.start_char :]] + [
        text[len(indent) :] if text.startswith(indent) else text.lstrip() for text in rest
    ]


def indent_lines(lines: list[str], indent: str, unit: str) -> list[str] | None:
    """A statement's lines (the first starting with `indent`) one level deeper, or None when a
    string literal spans lines (indenting would change its value)."""
    first = lines[0][len(indent) :]
    try:
        tokens = list(
            tokenize.generate_tokens(io.StringIO("\n".join([first, *lines[1:]])).readline)
        )
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    opened: list[int] = []  # rows where the f-strings (3.12+ tokens) still open began
    for token in tokens:
        name = tokenize.tok_name[token.type]
        if (
            name in ("STRING", "FSTRING_MIDDLE", "TSTRING_MIDDLE")
            and token.start[0] != token.end[0]
        ):
            return None
        if name in ("FSTRING_START", "TSTRING_START"):
            opened.append(token.start[0])
        elif name in ("FSTRING_END", "TSTRING_END") and opened and opened.pop() != token.end[0]:
            return None
    return [indent + unit + first] + [unit + line if line.strip() else line for line in lines[1:]]


def retarget(code: list[str], old: str, new: str) -> list[str]:
    """Rename the variable `old` to `new` in `code`, token by token."""
    lines = list(code)
    hits: list[tuple[int, int]] = []
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            if token.type == tokenize.NAME and token.string == old and previous != ".":
                hits.append(token.start)
            if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                previous = token.string
    except (tokenize.TokenError, IndentationError):
        return lines
    for row, col in reversed(hits):
        text = lines[row - 1]
        lines[row - 1] = text[:col] + new + text[col + len(old) :]
    return lines


def quote_char(facts: ModuleFacts) -> str:
    """The quote the file uses most for string literals."""
    sample = "\n".join(facts.lines[:400])
    return "'" if sample.count("'") > sample.count('"') else '"'


def replace(span: Span, text: str) -> TextEdit:
    return TextEdit(Range.of(span), text)


def append_to_line(facts: ModuleFacts, line: int, text: str) -> TextEdit:
    end = len(facts.lines[line]) if line < len(facts.lines) else 0
    return TextEdit(Range(Position(line, end), Position(line, end)), text)

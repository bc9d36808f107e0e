"""Source text helpers: a tolerant parse, AST positions → code points, and `# noqa` comments.

The tolerant parse replaces a line that does not parse with `pass` (keeping its indentation, so
every other line keeps its number) and tries again a few times. Nothing here runs user code.

A text that parses is parsed one top-level statement at a time (`parse_in_chunks`): each chunk
with its own line numbers (blank lines before it), so the tree is the one `ast.parse` would give,
the GIL is released between chunks (the language server analyses in a thread while it answers
requests), and a chunk whose text and place are those of the previous analysis is not parsed
again (`Chunks`).
"""

from __future__ import annotations

import ast
import re

from .facts import Span

# (first line, text) of a top-level chunk → its statements.
Chunks = dict[tuple[int, str], list[ast.stmt]]
# A line that may start a top-level statement: not indented, not a comment, not closing a
# bracket, not the next clause of a compound statement.
_TOP_LEVEL = re.compile(r"[^\s#)\]}]")
_CLAUSES = ("else", "elif", "except", "finally")

_MAX_REPAIRS = 3
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# "expected an indented block after 'for' statement on line 12": the error is reported on the
# line after, but the line to blank is the one that opened the block.
_OPENED_ON = re.compile(r"expected an indented block after .* on line (\d+)")
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*))?", re.I)


def source_lines(source: str) -> list[str]:
    """The lines as Python and LSP count them: split at `\\n`, `\\r\\n` and `\\r` only (not at
    `\\f` or `\\u2028`, as `str.splitlines` does), without the empty one after a final newline."""
    lines = _LINE_BREAK.split(source)
    if lines[-1] == "":
        lines.pop()
    return lines


def parse_in_chunks(source: str, known: Chunks) -> tuple[ast.Module, Chunks] | None:
    """The tree of `source` made chunk by chunk (reusing `known` ones), or None if it does not
    parse. A chunk that does not parse alone (a bracket, a string or a decorator running on)
    is joined with the next one."""
    lines = source.split("\n")
    starts = [n for n, text in enumerate(lines) if _TOP_LEVEL.match(text) and not text.startswith(_CLAUSES)]
    starts.append(len(lines))
    body: list[ast.stmt] = []
    chunks: Chunks = {}
    first, index = 0, 0
    while first < len(lines):
        while index < len(starts) and starts[index] <= first:
            index += 1
        end = starts[index] if index < len(starts) else len(lines)
        while True:
            text = "\n".join(lines[first:end])
            statements = known.get((first, text))
            if statements is None:
                try:
                    statements = ast.parse("\n" * first + text).body
                except SyntaxError:
                    statements = None
                except ValueError:  # null bytes
                    return None
            if statements is not None:
                break
            if end >= len(lines):
                return None
            index += 1
            end = starts[index] if index < len(starts) else len(lines)
        chunks[(first, text)] = statements
        body += statements
        first = end
    return ast.Module(body=body, type_ignores=[]), chunks


def parse_tolerant(source: str, known: Chunks | None = None) -> tuple[ast.Module | None, str | None]:
    """Parse `source`, repairing up to a few broken lines; returns (tree, first error message).
    `known` chunks are reused, and replaced by those of the tree made (the whole repaired text
    is one chunk)."""
    found = parse_in_chunks(source, known or {})
    if found is not None:
        tree, chunks = found
        error = None
    else:
        whole, error = _parse_repairing(source)
        if whole is None:
            return None, error
        tree, chunks = whole, {(0, source): whole.body}
    if known is not None:
        known.clear()
        known.update(chunks)
    return tree, error


def _parse_repairing(source: str) -> tuple[ast.Module | None, str | None]:
    try:
        return ast.parse(source), None
    except SyntaxError as exc:
        first_error = f"line {exc.lineno}: {exc.msg}"
        lines = source_lines(source)
        lineno = _broken_line(exc)
    except ValueError as exc:  # null bytes
        return None, str(exc)
    for _ in range(_MAX_REPAIRS):
        if not lineno or lineno > len(lines):
            return None, first_error
        broken = lines[lineno - 1]
        indent = broken[: len(broken) - len(broken.lstrip())]
        lines[lineno - 1] = f"{indent}pass"
        try:
            return ast.parse("\n".join(lines)), first_error
        except SyntaxError as exc:
            lineno = _broken_line(exc)
        except ValueError:
            return None, first_error
    return None, first_error


def _broken_line(error: SyntaxError) -> int | None:
    opened = _OPENED_ON.match(error.msg or "")
    return int(opened.group(1)) if opened else error.lineno


class Positions:
    """Turns AST (1-based line, UTF-8 byte column) positions into `Span`s of code points."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.all_ascii = all(line.isascii() for line in lines)

    def char(self, lineno: int, col: int) -> int:
        if lineno - 1 >= len(self.lines):
            return col
        text = self.lines[lineno - 1]
        if text.isascii():
            return col
        return len(text.encode("utf-8")[:col].decode("utf-8", errors="replace"))

    def span(self, node: ast.AST) -> Span:
        start_line = node.lineno  # type: ignore[attr-defined]
        end_line = node.end_lineno or start_line  # type: ignore[attr-defined]
        end_col = node.end_col_offset  # type: ignore[attr-defined]
        if self.all_ascii:
            return Span(start_line - 1, node.col_offset, end_line - 1, end_col or 0)  # type: ignore[attr-defined]
        return Span(
            start_line - 1,
            self.char(start_line, node.col_offset),  # type: ignore[attr-defined]
            end_line - 1,
            self.char(end_line, end_col if end_col is not None else 0),
        )

    def tail_span(self, node: ast.AST, length: int) -> Span:
        """The last `length` characters of a node (an attribute's name)."""
        full = self.span(node)
        return Span(full.end_line, max(full.end_char - length, 0), full.end_line, full.end_char)

    def indent_of(self, lineno: int) -> str:
        text = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return text[: len(text) - len(text.lstrip())]


def noqa_comments(lines: list[str]) -> dict[int, frozenset[str] | None]:
    """0-based line → codes named by its `# noqa: A1, B2` comment (None: a bare `# noqa`)."""
    found: dict[int, frozenset[str] | None] = {}
    for number, text in enumerate(lines):
        if "noqa" not in text:
            continue
        match = _NOQA.search(text)
        if match:
            codes = match.group("codes")
            found[number] = (
                frozenset(c.strip().upper() for c in codes.split(",")) if codes else None
            )
    return found


def names_bound(statements: list[ast.stmt]) -> frozenset[str]:
    """Every name the statements bind anywhere (assignments, parameters, functions, classes,
    imports, `global`, `except … as`, patterns), so that inserted code can avoid them."""
    found: set[str] = set()
    for node in ast.walk(ast.Module(body=statements, type_ignores=[])):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".", 1)[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            found.update(node.names)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            found.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.add(node.rest)
    return frozenset(found)

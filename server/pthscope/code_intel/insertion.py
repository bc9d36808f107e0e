"""Where inserted code goes, and the model variable in scope there.

`insertion_at(facts, line)`: after the statement on that line (at its indentation), or — on a
blank line, where one writes new code — on that line itself, indented like the block it is in
(one level deeper right after a line ending in `:`). `before(facts, statement)` is the place just
above a statement (used to freeze before the optimizer is built). `model_in_scope` is the model
variable bound most recently before that place in its function (or a parameter of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..analysis.facts import ModuleFacts, Statement
from .lost_flags import latest_assignment
from .types import Position, Range, TextEdit

Mode = Literal["after", "blank", "before"]


@dataclass(frozen=True)
class Insertion:
    line: int  # the statement's last line ("after"), the blank line, or the statement's first
    indent: str
    mode: Mode
    scope: str


def statement_at(facts: ModuleFacts, line: int) -> Statement | None:
    best: Statement | None = None
    for statement in facts.statements:
        span = statement.span
        if span.start_line <= line <= span.end_line and (
            best is None or span.start_line >= best.span.start_line
        ):
            best = statement
    return best


def insertion_at(facts: ModuleFacts, line: int) -> Insertion | None:
    statement = statement_at(facts, line)
    if statement is not None:
        return Insertion(statement.span.end_line, statement.indent, "after", statement.scope)
    if not 0 <= line < len(facts.lines) or facts.lines[line].strip():
        return None
    previous = next((n for n in range(line - 1, -1, -1) if _code(facts.lines[n])), None)
    if previous is None:
        return Insertion(line, "", "blank", facts.scope_at(line).name)
    text = facts.lines[previous]
    indent = text[: len(text) - len(text.lstrip())]
    if _code(text).endswith(":"):
        indent += "\t" if indent.startswith("\t") else "    "
    return Insertion(line, indent, "blank", facts.scope_at(previous).name)


def before(statement: Statement) -> Insertion:
    return Insertion(statement.span.start_line, statement.indent, "before", statement.scope)


def insert_edit(facts: ModuleFacts, at: Insertion, code: list[str]) -> TextEdit:
    """The edit putting `code` (unindented lines) at `at`."""
    body = "\n".join(f"{at.indent}{text}" if text else "" for text in code)
    if at.mode == "blank":
        return TextEdit(Range(Position(at.line, 0), Position(at.line, len(facts.lines[at.line]))), body)
    if at.mode == "before":
        return TextEdit(Range.at(at.line, 0), body + "\n")
    if at.line + 1 < len(facts.lines) or facts.trailing_newline:
        return TextEdit(Range.at(at.line + 1, 0), body + "\n")
    end = len(facts.lines[at.line]) if at.line < len(facts.lines) else 0
    return TextEdit(Range.at(at.line, end), "\n" + body)


def already_there(facts: ModuleFacts, at: Insertion, code: list[str]) -> bool:
    """True when the code is already right there (inserting it again would repeat it)."""
    start = at.line + 1 if at.mode == "after" else at.line - len(code) if at.mode == "before" else at.line
    near = facts.lines[max(start, 0) : max(start, 0) + len(code)]
    return [t.rstrip() for t in near] == [f"{at.indent}{c}".rstrip() for c in code]


def model_in_scope(facts: ModuleFacts, at: Insertion) -> str | None:
    """The model variable bound most recently before `at` in its function."""
    scope = next((s for s in facts.scopes if s.name == at.scope), None)
    line = statement_line(facts, at)
    best: tuple[int, str] | None = None
    for var in facts.model_vars:
        made = latest_assignment(facts, var, at.scope, line)
        if (made is not None and made.line <= line) or (
            made is None and scope is not None and var in scope.params
        ):
            rank = made.line if made is not None else -1
            if best is None or rank > best[0]:
                best = (rank, var)
    return best[1] if best else None


def statement_line(facts: ModuleFacts, at: Insertion) -> int:
    """The line whose bindings count where code goes: the first line of the statement it goes
    after or before, or the blank line."""
    found = statement_at(facts, at.line)
    return found.span.start_line if found is not None else at.line


def _code(text: str) -> str:
    """A line without its comment and surrounding space ("" for blank and comment lines)."""
    return text.split("#", 1)[0].strip()

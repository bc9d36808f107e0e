"""The plain results code_intel returns; `lsp/convert.py` converts them to lsprotocol types.

Positions are 0-based lines and characters in Unicode code points (`str` indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..analysis.facts import Span

Severity = Literal["error", "warning", "information", "hint"]
SOURCE = "pthscope"


@dataclass(frozen=True)
class Position:
    line: int
    character: int


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position

    @classmethod
    def of(cls, span: Span) -> Range:
        return cls(
            Position(span.start_line, span.start_char), Position(span.end_line, span.end_char)
        )

    @classmethod
    def of_lines(cls, first: int, last: int | None = None) -> Range:
        """Lines `first`..`last` (0-based), as a light-bulb request for a cursor line sends."""
        return cls(Position(first, 0), Position(first if last is None else last, 0))

    @classmethod
    def at(cls, line: int, character: int) -> Range:
        point = Position(line, character)
        return cls(point, point)


@dataclass(frozen=True)
class TextEdit:
    """Replace `range` of the document with `new_text` (an empty range inserts)."""

    range: Range
    new_text: str


@dataclass(frozen=True)
class Hover:
    """Markdown contents and the range of the thing hovered."""

    contents: str
    range: Range


@dataclass(frozen=True)
class RelatedInformation:
    """A place behind a finding: `file` (absolute path; the document's own or another
    workspace file), its range there, and what it says."""

    file: str
    range: Range
    message: str


@dataclass
class Diagnostic:
    """A finding with a stable code (PTH001…); `data` is echoed back to `code_actions`."""

    range: Range
    severity: Severity
    code: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    source: str = SOURCE
    related: list[RelatedInformation] = field(default_factory=list)


@dataclass
class CodeAction:
    """A light-bulb entry. `edits` is None until resolved; `data` is what resolving needs.

    `command`: the entry runs that client command instead of editing (the quick pick of a
    model's modules). `snippet`: the edit is better inserted as a snippet, with tab stops
    (`code_actions.snippet_insertion`), by a client that can."""

    title: str
    kind: str
    data: dict[str, Any]
    diagnostics: list[Diagnostic] = field(default_factory=list)
    edits: list[TextEdit] | None = None
    is_preferred: bool = False
    command: str | None = None
    snippet: bool = False

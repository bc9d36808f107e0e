"""Apply `TextEdit`s to a source text the way an editor does (all ranges refer to the original)."""

from __future__ import annotations

from pthscope.code_intel import TextEdit


def apply_edits(source: str, edits: list[TextEdit]) -> str:
    lines = source.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)

    def offset(line: int, character: int) -> int:
        if line >= len(lines):
            return len(source)
        return offsets[line] + character

    ordered = sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    )
    for edit in ordered:
        start = offset(edit.range.start.line, edit.range.start.character)
        end = offset(edit.range.end.line, edit.range.end.character)
        source = source[:start] + edit.new_text + source[end:]
    return source

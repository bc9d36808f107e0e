"""`code_intel`' plain dataclasses ↔ lsprotocol types, and positions between the two.

`code_intel` counts characters in code points (Python `str` indices) on lines split at `\\n`,
`\\r\\n` and `\\r` only, as LSP does; the client counts in the position encoding agreed at
initialize (UTF-16 for VS Code). Every converter takes the `lines` its positions refer to and
the document's `PositionCodec`. Nothing here decides what to show: that is `code_intel`' job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lsprotocol import types
from pygls.uris import from_fs_path
from pygls.workspace.position_codec import PositionCodec

from .. import code_intel
from .protocol import FIX_ALL_KIND, REQUIRES_GRAD_KIND, SAVE_LOAD_KIND

_FLAG_ACTIONS = {
    "freeze_except", "freeze_module", "unfreeze_module", "unfreeze_all", "print_parameters",
    "choose_modules",
}  # fmt: skip

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SEVERITIES = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "information": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}

def split_lines(source: str) -> list[str]:
    """The lines as LSP counts them (unlike `str.splitlines`, not at `\\f` or `\\u2028`)."""
    return _LINE_BREAK.split(source)


# ----------------------------------------------------------------------------- client → server


def server_position(
    position: types.Position, lines: Sequence[str], codec: PositionCodec
) -> code_intel.Position:
    """A client position as a line and a code-point index into that line."""
    line, units = position.line, position.character
    if line >= len(lines) or lines[line].isascii():
        return code_intel.Position(line, units)
    count = 0
    for index, char in enumerate(lines[line]):
        if count >= units:
            return code_intel.Position(line, index)
        count += codec.client_num_units(char)
    return code_intel.Position(line, len(lines[line]))


def server_range(range: types.Range, lines: Sequence[str], codec: PositionCodec) -> code_intel.Range:
    return code_intel.Range(
        server_position(range.start, lines, codec), server_position(range.end, lines, codec)
    )


# ----------------------------------------------------------------------------- server → client


def lsp_position(
    position: code_intel.Position, lines: Sequence[str], codec: PositionCodec
) -> types.Position:
    line, character = position.line, position.character
    if line < len(lines) and not lines[line].isascii():
        character = codec.client_num_units(lines[line][:character])
    return types.Position(line=line, character=character)


def lsp_range(range: code_intel.Range, lines: Sequence[str], codec: PositionCodec) -> types.Range:
    return types.Range(
        start=lsp_position(range.start, lines, codec), end=lsp_position(range.end, lines, codec)
    )


def lsp_hover(hover: code_intel.Hover, lines: Sequence[str], codec: PositionCodec) -> types.Hover:
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=hover.contents),
        range=lsp_range(hover.range, lines, codec),
    )


def lsp_diagnostic(
    diagnostic: code_intel.Diagnostic, lines: Sequence[str], codec: PositionCodec, path: str = ""
) -> types.Diagnostic:
    """`path` is the document's: related places in it are converted with its `lines`, those in
    other files (whose text is not at hand) keep their code-point characters."""
    related = [
        types.DiagnosticRelatedInformation(
            location=types.Location(
                uri=from_fs_path(r.file) or r.file,
                range=lsp_range(r.range, lines if r.file == path else (), codec),
            ),
            message=r.message,
        )
        for r in diagnostic.related
    ]
    return types.Diagnostic(
        range=lsp_range(diagnostic.range, lines, codec),
        message=diagnostic.message,
        severity=_SEVERITIES[diagnostic.severity],
        code=diagnostic.code,
        source=diagnostic.source,
        data=diagnostic.data,
        related_information=related or None,
    )


def wants_kind(kind: str, only: Sequence[str] | None) -> bool:
    """Whether a client that asked for kinds `only` wants `kind` (`refactor` covers
    `refactor.rewrite…`); fix-all is sent only when asked for by kind."""
    if not only:
        return kind != FIX_ALL_KIND
    return any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def lsp_code_action_kind(action: code_intel.CodeAction) -> str:
    if action.kind == "quickfix":
        return types.CodeActionKind.QuickFix
    if action.kind == "source":
        return FIX_ALL_KIND
    return REQUIRES_GRAD_KIND if action.data.get("action") in _FLAG_ACTIONS else SAVE_LOAD_KIND


def lsp_code_action(
    action: code_intel.CodeAction,
    uri: str,
    lines: Sequence[str],
    codec: PositionCodec,
    edit: types.WorkspaceEdit | None = None,
    command: types.Command | None = None,
) -> types.CodeAction:
    """The light-bulb entry; `data` carries the document's URI so resolve can find it (an
    entry that runs a command has nothing to resolve)."""
    return types.CodeAction(
        title=action.title,
        kind=lsp_code_action_kind(action),
        diagnostics=[lsp_diagnostic(d, lines, codec) for d in action.diagnostics] or None,
        is_preferred=action.is_preferred or None,
        edit=edit,
        command=command,
        data=None if command is not None else {"uri": uri, **action.data},
    )


def lsp_text_edit(
    edit: code_intel.TextEdit, lines: Sequence[str], codec: PositionCodec
) -> types.TextEdit:
    return types.TextEdit(range=lsp_range(edit.range, lines, codec), new_text=edit.new_text)


def lsp_workspace_edit(
    uri: str,
    version: int | None,
    edits: Sequence[code_intel.TextEdit],
    lines: Sequence[str],
    codec: PositionCodec,
    document_changes: bool,
) -> types.WorkspaceEdit:
    """Edits of one document; versioned (so a stale edit is refused) when the client can."""
    text_edits: list[Any] = [lsp_text_edit(e, lines, codec) for e in edits]
    if document_changes:
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=text_edits)]
        )
    return types.WorkspaceEdit(changes={uri: text_edits})

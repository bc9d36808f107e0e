"""The Python-file features: hover, diagnostics, code actions and the freezing-code command.

`PythonFiles` keeps, per open Python document, its last analysis (`analysis`) and the
checkpoints it links (linked_checkpoints.py); `code_intel` answers from those, and convert.py
turns its answers into LSP types. The server (server.py) creates it on the first Python
request, so that starting the server does not import the analysis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from .. import analysis, code_intel
from . import convert
from . import protocol as p
from .linked_checkpoints import LinkedCheckpoints

if TYPE_CHECKING:
    from ..reader.model_view import ModelView
    from .server import PthscopeServer

log = logging.getLogger("pthscope")

DIAGNOSTICS_DELAY_SECONDS = 0.15  # after the last change, before analysing and publishing
# How long a hover or an edit waits for a linked checkpoint that is being read.
LINK_WAIT_SECONDS = 2.0
_REQUIRES_GRAD_ACTIONS = {
    "freezeAllExcept": "freeze_except",
    "freezeModule": "freeze_module",
    "unfreezeAll": "unfreeze_all",
    "printParameters": "print_parameters",
}


@dataclass
class PythonDocument:
    """The last analysis of one open Python document."""

    source: str
    version: int | None
    facts: analysis.ModuleFacts
    # False when the text did not parse even with repairs: `facts` are from an earlier text
    # (hovers still use them; diagnostics and edits wait for a text that parses).
    current: bool
    # The diagnostics of `facts` and the checkpoints they were computed with.
    _found: tuple[list[tuple[str, ModelView]], list[code_intel.Diagnostic]] | None = None

    def diagnostics(self, checkpoints: dict[str, ModelView]) -> list[code_intel.Diagnostic]:
        """`code_intel.diagnostics`, computed once per text and set of linked checkpoints (the
        light bulb asks for them on every cursor move)."""
        linked = list(checkpoints.items())
        known = self._found
        if known is not None and len(known[0]) == len(linked) and all(
            a[0] == b[0] and a[1] is b[1] for a, b in zip(known[0], linked, strict=True)
        ):
            return known[1]
        found = code_intel.diagnostics(self.facts, checkpoints)
        self._found = (linked, found)
        return found

    def current_lines(self) -> list[str]:
        """The lines of the text as it is now (client positions refer to them)."""
        return self.facts.lines if self.current else convert.split_lines(self.source)


class PythonFiles:
    """The open Python documents of one server, their analyses and linked checkpoints."""

    def __init__(self, ls: PthscopeServer) -> None:
        self.ls = ls
        self.links = LinkedCheckpoints(ls.store, self._linked_checkpoint_read)
        self.documents: dict[str, PythonDocument] = {}
        self._publishing: dict[str, asyncio.Task[None]] = {}

    def document(self, uri: str) -> TextDocument | None:
        """The open document at `uri` if it is Python source."""
        workspace = self.ls.workspace
        if uri not in workspace.text_documents:
            return None
        document = workspace.get_text_document(uri)
        if document.language_id == "python" or uri.endswith((".py", ".pyi")):
            return document
        return None

    def analyzed(self, uri: str) -> tuple[TextDocument, PythonDocument] | None:
        """The open Python document at `uri` and its analysis, or None."""
        document = self.document(uri)
        return (document, self.analyze(document)) if document is not None else None

    def analyze(self, document: TextDocument) -> PythonDocument:
        """The document's facts, analysed again only when its text changed."""
        known = self.documents.get(document.uri)
        source = document.source
        if known is not None and known.source == source:
            known.version = document.version
            return known
        previous = known.facts if known is not None else None
        facts = analysis.analyze(source, document.path, self._workspace_folders(), previous)
        current = previous is None or facts.lines is not previous.lines
        state = PythonDocument(source, document.version, facts, current)
        self.documents[document.uri] = state
        return state

    async def linked_checkpoints(
        self, uri: str, facts: analysis.ModuleFacts, wait: float = 0.0
    ) -> dict[str, ModelView]:
        """The read checkpoints the document links; waits up to `wait` s for those being read."""
        found = self.links.checkpoints(uri, facts)
        if wait > 0:
            await self.links.wait(self.links.files(uri, facts), wait)
            found = self.links.checkpoints(uri, facts)
        return found

    def schedule_diagnostics(self, uri: str, delay: float = 0.0) -> None:
        """Publish the document's diagnostics after `delay` s, unless it changes again first."""
        pending = self._publishing.pop(uri, None)
        if pending is not None:
            pending.cancel()
        task = asyncio.create_task(self._publish_diagnostics(uri, delay))
        self._publishing[uri] = task
        task.add_done_callback(
            lambda done: self._publishing.pop(uri) if self._publishing.get(uri) is done else None
        )

    def schedule_all(self) -> None:
        for uri in self.documents:
            self.schedule_diagnostics(uri)

    async def _publish_diagnostics(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        document = self.document(uri)
        if document is None:
            return
        try:
            state = self.analyze(document)
            if not state.current:
                return  # keep the last ones until the text parses again
            found = state.diagnostics(self.links.checkpoints(uri, state.facts))
        except Exception:  # a bug in analysis/code_intel must not stop the server
            log.exception("diagnostics for %s failed", uri)
            return
        lines, codec = state.facts.lines, document.position_codec
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=[convert.lsp_diagnostic(d, lines, codec) for d in found],
                version=document.version,
            )
        )

    def close(self, uri: str) -> None:
        pending = self._publishing.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.documents.pop(uri, None)
        self.links.forget(uri)
        self.ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def _linked_checkpoint_read(self, file: str) -> None:
        for uri in self.links.documents_linking(file):
            self.schedule_diagnostics(uri)

    def _workspace_folders(self) -> tuple[str, ...]:
        workspace = self.ls.workspace
        folders = [to_fs_path(f.uri) for f in workspace.folders.values()]
        if not folders and workspace.root_path:
            folders.append(workspace.root_path)
        return tuple(f for f in folders if f)

    # ------------------------------------------------------------------ the requests

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        found = self.analyzed(params.text_document.uri)
        if found is None:
            return None
        document, state = found
        checkpoints = await self.linked_checkpoints(document.uri, state.facts, LINK_WAIT_SECONDS)
        at = convert.server_position(params.position, state.current_lines(), document.position_codec)
        answer = code_intel.hover(state.facts, at.line, at.character, checkpoints)
        return convert.lsp_hover(answer, state.facts.lines, document.position_codec) if answer else None

    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        found = self.analyzed(params.text_document.uri)
        if found is None or not found[1].current:
            return None
        document, state = found
        facts, only = state.facts, params.context.only
        checkpoints = self.links.checkpoints(document.uri, facts)
        at = convert.server_range(params.range, facts.lines, document.position_codec)
        offered = code_intel.code_actions(facts, at, checkpoints, state.diagnostics(checkpoints))
        if only and convert.wants_kind(p.FIX_ALL_KIND, only):
            offered += code_intel.fix_all_actions(facts, checkpoints)
        return self._lsp_code_actions(document, facts, checkpoints, offered, only) or None

    async def resolve_code_action(self, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        found = self.analyzed(str(data.get("uri", "")))
        if found is None or not found[1].current:
            return action  # no edit: the document is closed or does not parse now
        document, state = found
        checkpoints = await self.linked_checkpoints(document.uri, state.facts, LINK_WAIT_SECONDS)
        resolved = code_intel.resolve_code_action(state.facts, data, checkpoints)
        action.edit = self._workspace_edit(document, resolved.edits or [], state.facts.lines)
        return action

    async def insert_requires_grad_code(
        self, args: p.InsertRequiresGradCodeArgs
    ) -> p.InsertRequiresGradCodeResult:
        found = self.analyzed(args.uri)
        if found is None or not found[1].current:
            why = "is not an open Python file" if found is None else "does not parse; fix it first"
            return p.InsertRequiresGradCodeResult(False, f"{args.uri} {why}")
        document, state = found
        name = _REQUIRES_GRAD_ACTIONS[args.action]
        action = code_intel.requires_grad_action(state.facts, args.line, name, args.module)
        if action is None or not action.edits:
            why = f"no model variable in scope at line {args.line + 1}, or the code is already there"
            return p.InsertRequiresGradCodeResult(False, why)
        edit = self._workspace_edit(document, action.edits, state.facts.lines)
        response = await self.ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=action.title)
        )
        if response.applied:
            return p.InsertRequiresGradCodeResult(True, action.title)
        why = response.failure_reason or "the editor did not apply the edit"
        return p.InsertRequiresGradCodeResult(False, why)

    def _workspace_edit(
        self, document: TextDocument, edits: list[code_intel.TextEdit], lines: list[str]
    ) -> types.WorkspaceEdit:
        workspace = self.ls.client_capabilities.workspace
        versioned = bool(
            workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes
        )
        return convert.lsp_workspace_edit(
            document.uri, document.version, edits, lines, document.position_codec, versioned
        )

    def _lsp_code_actions(
        self,
        document: TextDocument,
        facts: analysis.ModuleFacts,
        checkpoints: dict[str, ModelView],
        offered: list[code_intel.CodeAction],
        only: Sequence[str] | None,
    ) -> list[types.CodeAction]:
        """The actions of the kinds asked for; with their edits if the client cannot resolve."""
        codec = document.position_codec
        wanted = [a for a in offered if convert.wants_kind(convert.lsp_code_action_kind(a), only)]
        if self._resolves_edits_lazily():
            return [convert.lsp_code_action(a, document.uri, facts.lines, codec) for a in wanted]
        out = []
        for action in wanted:
            edits = code_intel.resolve_code_action(facts, action.data, checkpoints).edits
            if edits:
                edit = self._workspace_edit(document, edits, facts.lines)
                out.append(convert.lsp_code_action(action, document.uri, facts.lines, codec, edit))
        return out

    def _resolves_edits_lazily(self) -> bool:
        """Whether the client asks codeAction/resolve for `edit` (else edits come in the list)."""
        text_document = self.ls.client_capabilities.text_document
        code_action = text_document.code_action if text_document else None
        support = code_action.resolve_support if code_action else None
        return bool(support and "edit" in support.properties)

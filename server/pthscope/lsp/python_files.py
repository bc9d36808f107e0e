"""The Python-file features: hover, diagnostics, code actions and document links (the commands
are in python_commands.py).

`PythonFiles` keeps, per open Python document, its analyses (document_analysis.py: made in a
worker thread; a request outside the lines changed since the newest one answers from it, with
its positions mapped) and the checkpoints it links (linked_checkpoints.py); `code_intel`
answers from those, and convert.py turns its answers into LSP types. The server (server.py)
creates it on the first Python request, so that starting the server does not import the
analysis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from .. import analysis, code_intel
from ..code_intel.linking import LinkedFiles
from ..code_intel.markdown import OPEN_CHECKPOINT, command_target
from . import convert
from . import protocol as p
from .document_analysis import Analyses, LineMap, PythonDocument
from .linked_checkpoints import LinkedCheckpoints

if TYPE_CHECKING:
    from .server import PthscopeServer

log = logging.getLogger("pthscope")

DIAGNOSTICS_DELAY_SECONDS = 0.15  # after the last change, before publishing
# How long a hover or an edit waits for a linked checkpoint that is being read.
LINK_WAIT_SECONDS = 2.0
# How long a request waits for the analysis of a changed line.
ANALYSIS_WAIT_SECONDS = 5.0


class PythonFiles:
    """The open Python documents of one server, their analyses and linked checkpoints."""

    def __init__(self, ls: PthscopeServer) -> None:
        self.ls = ls
        self.links = LinkedCheckpoints(ls.store, self._linked_checkpoint_read)
        self.analyses = Analyses(self.workspace_folders)
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

    async def analyzed(self, uri: str) -> tuple[TextDocument, PythonDocument] | None:
        """The open Python document at `uri` and the analysis of its text as it is now."""
        document = self.document(uri)
        if document is None:
            return None
        try:
            state = await asyncio.wait_for(self.analyses.current(document), ANALYSIS_WAIT_SECONDS)
        except TimeoutError:
            log.warning("analysing %s took over %s s", uri, ANALYSIS_WAIT_SECONDS)
            return None
        return document, state

    async def at_line(
        self, uri: str, line: int
    ) -> tuple[TextDocument, PythonDocument, LineMap | None] | None:
        """An analysis that can answer for `line` now: the newest, when the line is unchanged
        since (with the map of its lines), else the current one."""
        document = self.document(uri)
        if document is None:
            return None
        usable = self.analyses.usable(document, line)
        if usable is not None:
            return document, usable[0], usable[1]
        found = await self.analyzed(uri)
        return (found[0], found[1], None) if found is not None else None

    def changed(self, uri: str, delay: float = 0.0) -> None:
        """The document was opened, changed or saved: analyse it now, publish after `delay`."""
        document = self.document(uri)
        if document is None:
            return
        self.analyses.submit(document)
        self.schedule_diagnostics(uri, delay)

    def linked(self, uri: str, facts: analysis.ModuleFacts) -> LinkedFiles:
        """The read checkpoints the document links (reads of the others start)."""
        return LinkedFiles(
            self.links.checkpoints(uri, facts), self.links.active, self.links.files(uri, facts)
        )

    async def linked_waiting(self, uri: str, facts: analysis.ModuleFacts) -> LinkedFiles:
        """As `linked`, after waiting (at most LINK_WAIT_SECONDS) for those being read."""
        self.linked(uri, facts)  # starts the reads
        await self.links.wait(self.links.files(uri, facts), LINK_WAIT_SECONDS)
        return self.linked(uri, facts)

    async def checks_made(self, uri: str, state: PythonDocument) -> LinkedFiles:
        """The read checkpoints the document links, after the comparisons of its models with
        them are made (in the analysis thread: 30,000 tensors take too long for the loop)."""
        linked = self.linked(uri, state.facts)
        if not code_intel.checks_ready(state.facts, linked):
            await self.analyses.run(code_intel.prepare_checks, state.facts, linked)
        return linked

    def elsewhere(self, uri: str) -> list[tuple[analysis.ModuleFacts, LinkedFiles]]:
        """The newest analyses of the other open Python documents that load a model, with their
        linked files (a layer of a class in this file may be checked by a script loading it)."""
        found = []
        for other in list(self.ls.workspace.text_documents):
            state = self.analyses.newest(other) if other != uri else None
            if state is not None and state.facts.expected:
                found.append((state.facts, self.linked(other, state.facts)))
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
        for uri in list(self.ls.workspace.text_documents):
            if self.document(uri) is not None:
                self.schedule_diagnostics(uri)

    async def _publish_diagnostics(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        found_state = await self.analyzed(uri)
        if found_state is None:
            return
        document, state = found_state
        try:
            if not state.current:
                return  # keep the last ones until the text parses again
            linked = await self.checks_made(uri, state)
            found = state.diagnostics(linked)
        except Exception:  # a bug in analysis/code_intel must not stop the server
            log.exception("diagnostics for %s failed", uri)
            return
        lines, codec = state.facts.lines, document.position_codec
        self.ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=[convert.lsp_diagnostic(d, lines, codec, state.facts.file_path) for d in found],
                version=document.version,
            )
        )

    def close(self, uri: str) -> None:
        pending = self._publishing.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.analyses.forget(uri)
        self.links.forget(uri)
        self.ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def shutdown(self) -> None:
        self.analyses.shutdown()

    def _linked_checkpoint_read(self, file: str) -> None:
        documents = self.links.documents_linking(file)
        log.info("linked %s to %d document(s)", file, len(documents))
        for uri in documents:
            self.schedule_diagnostics(uri)

    def workspace_folders(self) -> tuple[str, ...]:
        workspace = self.ls.workspace
        folders = [to_fs_path(f.uri) for f in workspace.folders.values()]
        if not folders and workspace.root_path:
            folders.append(workspace.root_path)
        return tuple(f for f in folders if f)

    def client_commands(self) -> bool:
        """Whether the client has our commands for code actions (the modules' quick pick, the
        snippet insertion): it says so in `capabilities.experimental`."""
        experimental = self.ls.client_capabilities.experimental
        return isinstance(experimental, dict) and bool(experimental.get(p.CLIENT_COMMANDS_CAPABILITY))

    # ------------------------------------------------------------------ the requests

    async def hover(self, params: types.HoverParams) -> types.Hover | None:
        found = await self.at_line(params.text_document.uri, params.position.line)
        if found is None:
            return None
        document, state, mapped = found
        checkpoints = await self.linked_waiting(document.uri, state.facts)
        lines = convert.split_lines(document.source)
        at = convert.server_position(params.position, lines, document.position_codec)
        line = mapped.to_old(at.line) if mapped is not None else at.line
        if line is None:
            return None
        answer = code_intel.hover(state.facts, line, at.character, checkpoints, self.elsewhere(document.uri))
        if answer is None:
            return None
        hover = convert.lsp_hover(answer, state.facts.lines, document.position_codec)
        return _shifted(hover, mapped) if mapped is not None else hover

    async def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        found = await self.at_line(uri, params.range.start.line)
        if found is None or not found[1].current:
            return None
        document, state, mapped = found
        facts, only = state.facts, params.context.only
        lines = convert.split_lines(document.source)
        at = convert.server_range(params.range, lines, document.position_codec)
        if mapped is not None:
            first, last = mapped.to_old(at.start.line), mapped.to_old(at.end.line)
            if first is None or last is None:
                found_now = await self.analyzed(uri)
                if found_now is None:
                    return None
                document, state = found_now
                facts, mapped = state.facts, None
            else:
                at = code_intel.Range(
                    code_intel.Position(first, at.start.character),
                    code_intel.Position(last, at.end.character),
                )
        checkpoints = self.linked(uri, facts)
        offered = code_intel.code_actions(facts, at, checkpoints, state.diagnostics(checkpoints))
        if only and convert.wants_kind(p.FIX_ALL_KIND, only):
            offered += code_intel.fix_all_actions(facts, checkpoints)
        for action in offered:  # where it was listed, to find it again if the text changes
            action.data["generation"] = state.generation
            action.data["at"] = [at.start.line, at.end.line]
        actions = self._lsp_code_actions(document, state, checkpoints, offered, only, mapped)
        return [_shifted(a, mapped) for a in actions] if mapped is not None else actions or None

    async def resolve_code_action(self, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        found = await self.analyzed(str(data.get("uri", "")))
        if found is None or not found[1].current:
            return action  # no edit: the document is closed or does not parse now
        document, state = found
        await self.linked_waiting(document.uri, state.facts)
        checkpoints = await self.checks_made(document.uri, state)
        fresh = self.fresh_action_data(document, state, data, checkpoints)
        resolved = code_intel.resolve_code_action(state.facts, fresh, checkpoints) if fresh else None
        edits = resolved.edits or [] if resolved is not None else []  # [] when it is gone
        action.edit = self.workspace_edit(document, edits, state.facts.lines)
        return action

    def fresh_action_data(
        self,
        document: TextDocument,
        state: PythonDocument,
        data: dict[str, Any],
        checkpoints: LinkedFiles,
    ) -> dict[str, Any] | None:
        """`data` of an entry listed from an earlier analysis, found again (by title, where it
        was listed) in the current one; None when it is gone."""
        generation = data.get("generation")
        if generation in (None, state.generation):
            return data
        listed = self.analyses.generation(document.uri, int(generation))
        where = data.get("at")
        if listed is None or not isinstance(where, list) or len(where) != 2:
            return None
        mapped = self.analyses.map_between(listed, document)
        first, last = (mapped.to_new(int(n)) for n in where)
        if first is None or last is None:
            return None
        at = code_intel.Range(code_intel.Position(first, 0), code_intel.Position(last, 0))
        offered = code_intel.code_actions(state.facts, at, checkpoints, state.diagnostics(checkpoints))
        offered += code_intel.fix_all_actions(state.facts, checkpoints)
        same = next((a for a in offered if a.title == data.get("title")), None)
        return same.data if same is not None else None

    async def document_links(self, params: types.DocumentLinkParams) -> list[types.DocumentLink] | None:
        """Each checkpoint path naming a file that exists: Ctrl+click opens its page."""
        found = await self.analyzed(params.text_document.uri)
        if found is None:
            return None
        document, state = found
        facts, codec = state.facts, document.position_codec
        existing = set(self.links.files(document.uri, facts))
        links = []
        for path in facts.paths:
            file = next((c for c in path.candidates if c in existing), None)
            if file is None:
                continue
            links.append(
                types.DocumentLink(
                    range=convert.lsp_range(code_intel.Range.of(path.span), facts.lines, codec),
                    target=command_target(OPEN_CHECKPOINT, [file]),
                    tooltip="Open in pthscope",
                )
            )
        return links or None

    def workspace_edit(
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
        state: PythonDocument,
        checkpoints: LinkedFiles,
        offered: list[code_intel.CodeAction],
        only: Sequence[str] | None,
        mapped: LineMap | None = None,
    ) -> list[types.CodeAction]:
        """The actions of the kinds asked for: commands for a client that has ours, else edits
        (with them in the list if the client cannot resolve them)."""
        facts, codec = state.facts, document.position_codec
        commands = self.client_commands()
        wanted = [a for a in offered if convert.wants_kind(convert.lsp_code_action_kind(a), only)]
        out = []
        for action in wanted:
            if action.command is not None or (action.snippet and commands):
                if not commands:
                    continue  # the quick pick needs the client's command
                line = int(action.data["line"])
                line = (mapped.to_new(line) if mapped is not None else line) or line
                command = _client_command(action, document.uri, document.version, line)
                out.append(convert.lsp_code_action(action, document.uri, facts.lines, codec, command=command))
            elif self._resolves_edits_lazily():
                out.append(convert.lsp_code_action(action, document.uri, facts.lines, codec))
            else:
                edits = code_intel.resolve_code_action(facts, action.data, checkpoints).edits
                if edits:
                    edit = self.workspace_edit(document, edits, facts.lines)
                    out.append(convert.lsp_code_action(action, document.uri, facts.lines, codec, edit))
        return out

    def _resolves_edits_lazily(self) -> bool:
        """Whether the client asks codeAction/resolve for `edit` (else edits come in the list)."""
        text_document = self.ls.client_capabilities.text_document
        code_action = text_document.code_action if text_document else None
        support = code_action.resolve_support if code_action else None
        return bool(support and "edit" in support.properties)


def _client_command(
    action: code_intel.CodeAction, uri: str, version: int | None, line: int
) -> types.Command:
    """The client command an entry runs, with what the server needs back from it (the line of
    the document's `version`)."""
    args: dict[str, Any] = {"uri": uri, "line": line, "version": version}
    if action.command == code_intel.CHOOSE_MODULES:
        return types.Command(title=action.title, command=p.CHOOSE_MODULES, arguments=[args])
    args |= {"action": action.data["action"], "var": action.data["var"]}
    return types.Command(title=action.title, command=p.INSERT_SNIPPET, arguments=[args])


def _shifted(found: Any, mapped: LineMap) -> Any:
    """An answer computed on an earlier analysis, with its lines moved to the text as it is now
    (every range in it lies on lines that did not change)."""
    if isinstance(found, types.Range):
        start, end = mapped.to_new(found.start.line), mapped.to_new(found.end.line)
        found.start.line = start if start is not None else found.start.line
        found.end.line = end if end is not None else found.end.line
        return found
    if isinstance(found, types.Hover):
        if found.range is not None:
            _shifted(found.range, mapped)
        return found
    if isinstance(found, types.CodeAction):
        for diagnostic in found.diagnostics or []:
            _shifted(diagnostic.range, mapped)
        return found
    return found

"""The pthscope language server: pygls wiring only (`pthscope lsp` runs `main()` on stdio).

The custom `pthscope/*` requests (protocol.py) are answered from a `CheckpointIndex` that the
`CheckpointStore` keeps per file; parsing happens in an isolated worker process
(worker/client.py), never here. Python-file features — hover, diagnostics, code actions and
the `pthscope.insertRequiresGradCode` command — come from `analysis` (the source) and `code_intel`
(source + linked checkpoints, kept read by linked_checkpoints.py); convert.py turns their
answers into LSP types. Logs go to the client's output channel through `window/logMessage`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from .. import __version__, analysis, code_intel
from ..worker.client import WorkerClient, WorkerFailure, WorkerLimits
from ..worker.index import CheckpointIndex
from ..worker.store import CheckpointStore
from . import convert
from . import protocol as p
from .linked_checkpoints import Json, LinkedCheckpoints
from .options import InitializationOptions, parse_initialization_options

log = logging.getLogger("pthscope")

_LOG_MESSAGE_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}
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
    _found: tuple[list[tuple[str, Json]], list[code_intel.Diagnostic]] | None = None

    def diagnostics(self, checkpoints: dict[str, Json]) -> list[code_intel.Diagnostic]:
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


class PthscopeServer(LanguageServer):
    """Holds the options, the worker, the cache of parsed checkpoints, and per open Python
    document its last analysis and the checkpoints it links."""

    def __init__(self) -> None:
        super().__init__(
            "pthscope",
            __version__,
            protocol_cls=p.PthscopeProtocol,
            converter_factory=lambda: p.register_protocol_hooks(default_converter()),
        )
        self.options = InitializationOptions()
        self.worker, self.store = _worker_and_store(self.options)
        self.links = LinkedCheckpoints(self.store, self._linked_checkpoint_read)
        self.documents: dict[str, PythonDocument] = {}
        self._publishing: dict[str, asyncio.Task[None]] = {}

    def configure(self, options: InitializationOptions) -> None:
        """Apply the options: a new worker (started on first use) and an empty cache."""
        self.worker.kill()
        self.options = options
        self.worker, self.store = _worker_and_store(options)
        self.links = LinkedCheckpoints(self.store, self._linked_checkpoint_read)
        log.setLevel(options.log_level.upper())

    # ------------------------------------------------------------------ Python documents

    def python_document(self, uri: str) -> TextDocument | None:
        """The open document at `uri` if it is Python source."""
        if uri not in self.workspace.text_documents:
            return None
        document = self.workspace.get_text_document(uri)
        if document.language_id == "python" or uri.endswith((".py", ".pyi")):
            return document
        return None

    def analyzed(self, uri: str) -> tuple[TextDocument, PythonDocument] | None:
        """The open Python document at `uri` and its analysis, or None."""
        document = self.python_document(uri)
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
    ) -> dict[str, Json]:
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

    async def _publish_diagnostics(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        document = self.python_document(uri)
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
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                diagnostics=[convert.lsp_diagnostic(d, lines, codec) for d in found],
                version=document.version,
            )
        )

    def close_document(self, uri: str) -> None:
        pending = self._publishing.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self.documents.pop(uri, None)
        self.links.forget(uri)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def _linked_checkpoint_read(self, file: str) -> None:
        for uri in self.links.documents_linking(file):
            self.schedule_diagnostics(uri)

    def _workspace_folders(self) -> tuple[str, ...]:
        folders = [to_fs_path(f.uri) for f in self.workspace.folders.values()]
        if not folders and self.workspace.root_path:
            folders.append(self.workspace.root_path)
        return tuple(f for f in folders if f)

    def workspace_edit(
        self, document: TextDocument, edits: list[code_intel.TextEdit], lines: list[str]
    ) -> types.WorkspaceEdit:
        workspace = self.client_capabilities.workspace
        versioned = bool(
            workspace and workspace.workspace_edit and workspace.workspace_edit.document_changes
        )
        return convert.lsp_workspace_edit(
            document.uri, document.version, edits, lines, document.position_codec, versioned
        )

    def lsp_code_actions(
        self,
        document: TextDocument,
        facts: analysis.ModuleFacts,
        checkpoints: dict[str, Json],
        offered: list[code_intel.CodeAction],
        only: Sequence[str] | None,
    ) -> list[types.CodeAction]:
        """The actions of the kinds asked for; with their edits if the client cannot resolve."""
        codec = document.position_codec
        wanted = [a for a in offered if convert.wants_kind(convert.lsp_code_action_kind(a), only)]
        if self.resolves_edits_lazily():
            return [convert.lsp_code_action(a, document.uri, facts.lines, codec) for a in wanted]
        out = []
        for action in wanted:
            edits = code_intel.resolve_code_action(facts, action.data, checkpoints).edits
            if edits:
                edit = self.workspace_edit(document, edits, facts.lines)
                out.append(convert.lsp_code_action(action, document.uri, facts.lines, codec, edit))
        return out

    def resolves_edits_lazily(self) -> bool:
        """Whether the client asks codeAction/resolve for `edit` (else edits come in the list)."""
        text_document = self.client_capabilities.text_document
        code_action = text_document.code_action if text_document else None
        support = code_action.resolve_support if code_action else None
        return bool(support and "edit" in support.properties)

    async def checkpoint(self, file: str, token: p.ProgressToken | None) -> CheckpointIndex:
        """The file's index; reports progress while the file has to be read."""
        index = self.store.cached(file)
        if index is not None:
            return index
        async with self._progress(token, f"Reading {os.path.basename(file)}"):
            return await self.store.load(file)

    @asynccontextmanager
    async def _progress(self, token: p.ProgressToken | None, title: str) -> AsyncIterator[None]:
        """`$/progress` begin/end around a read: on the client's token, or one we create."""
        if token is None and self._client_shows_progress():
            token = str(uuid.uuid4())
            try:
                await self.work_done_progress.create_async(token)
            except Exception as error:  # the client refused; read without progress
                log.info("no progress shown: window/workDoneProgress/create failed: %s", error)
                token = None
        if token is None:
            yield
            return
        self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))
        try:
            yield
        finally:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd())

    def _client_shows_progress(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    def shutdown(self) -> None:
        self.worker.kill()
        super().shutdown()


def _worker_and_store(options: InitializationOptions) -> tuple[WorkerClient, CheckpointStore]:
    worker = WorkerClient(WorkerLimits(
        time_seconds=options.parse_time_limit_seconds,
        memory_bytes=options.parse_memory_limit_mib << 20,
    ))
    return worker, CheckpointStore(worker, options.cache_size)


def node_or_error(index: CheckpointIndex, path: list[p.PathElement]) -> dict[str, Any]:
    """The node at `path`, or an InvalidParams error saying there is none."""
    node = index.node(path)
    if node is not None:
        return node
    reason = f"path {json.dumps(path)} names no node in {index.checkpoint['file']}"
    if index.root is None:
        reason += " (nothing could be read from it; see the errors of pthscope/open)"
    raise JsonRpcInvalidParams(reason)


server = PthscopeServer()


@server.feature(types.INITIALIZE)
def initialize(ls: PthscopeServer, params: types.InitializeParams) -> None:
    if not any(isinstance(h, ClientLogHandler) for h in log.handlers):
        log.addHandler(ClientLogHandler(ls, asyncio.get_running_loop()))
    options, problems = parse_initialization_options(params.initialization_options)
    ls.configure(options)
    for problem in problems:
        log.warning("%s", problem)
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"pthscope: {problem}")
        )


@server.feature(types.SHUTDOWN)
def stop_worker(ls: PthscopeServer, _params: None) -> None:
    ls.worker.kill()


@server.feature(p.OPEN)
async def open_checkpoint(ls: PthscopeServer, params: p.OpenParams) -> p.OpenResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    root = index.root
    return p.OpenResult(
        **index.overview(),
        root=index.summary(root) if root else None,
        children=index.children(root, 0, p.PAGE_SIZE).items if root else [],
    )


@server.feature(p.CHILDREN)
async def children(ls: PthscopeServer, params: p.ChildrenParams) -> p.ChildrenResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    node = node_or_error(index, params.path)
    page = index.children(node, params.offset, params.limit)
    return p.ChildrenResult(children=page.items, total=page.total)


@server.feature(p.DETAILS)
async def details(ls: PthscopeServer, params: p.DetailsParams) -> p.DetailsResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    node = node_or_error(index, params.path)
    return p.DetailsResult(node=index.summary(node), tied=index.tied(node))


@server.feature(p.SEARCH)
async def search(ls: PthscopeServer, params: p.SearchParams) -> p.SearchResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    page = index.search(params.query, params.limit)
    return p.SearchResult(matches=page.items, total=page.total)


@server.feature(p.TENSORS)
async def tensors(ls: PthscopeServer, params: p.TensorsParams) -> p.TensorsResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    page = index.tensor_page(
        params.offset, params.limit, params.filter, params.sort, params.descending
    )
    return p.TensorsResult(tensors=page.items, total=page.total)


@server.feature(p.STATS)
async def stats(ls: PthscopeServer, params: p.StatsParams) -> p.StatsResult:
    index = await ls.checkpoint(params.file, params.work_done_token)
    node = node_or_error(index, params.path)
    if node["kind"] != "tensor":
        raise JsonRpcInvalidParams(f"path {json.dumps(params.path)} names a {node['kind']}, not a tensor")
    try:
        answer = await ls.worker.tensor_stats(params.file, index.tensors[node["tensor"]]["path"])
    except WorkerFailure as failure:
        return p.StatsResult(error=str(failure))
    return p.StatsResult(stats=answer.get("stats"), error=answer.get("error"))


@server.feature(p.SET_ACTIVE_CHECKPOINT)
def set_active_checkpoint(
    ls: PthscopeServer, params: p.SetActiveCheckpointParams
) -> p.SetActiveCheckpointResult:
    file = ls.links.set_active(params.file)
    for uri in ls.documents:
        ls.schedule_diagnostics(uri)
    return p.SetActiveCheckpointResult(file=file)


# ----------------------------------------------------------------------------- Python files


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: PthscopeServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.schedule_diagnostics(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: PthscopeServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.schedule_diagnostics(params.text_document.uri, DIAGNOSTICS_DELAY_SECONDS)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: PthscopeServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.schedule_diagnostics(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: PthscopeServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.close_document(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: PthscopeServer, params: types.HoverParams) -> types.Hover | None:
    found = ls.analyzed(params.text_document.uri)
    if found is None:
        return None
    document, state = found
    checkpoints = await ls.linked_checkpoints(document.uri, state.facts, LINK_WAIT_SECONDS)
    at = convert.server_position(params.position, state.current_lines(), document.position_codec)
    answer = code_intel.hover(state.facts, at.line, at.character, checkpoints)
    return convert.lsp_hover(answer, state.facts.lines, document.position_codec) if answer else None


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=convert.CODE_ACTION_KINDS, resolve_provider=True),
)
def code_action(
    ls: PthscopeServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    found = ls.analyzed(params.text_document.uri)
    if found is None or not found[1].current:
        return None
    document, state = found
    facts, only = state.facts, params.context.only
    checkpoints = ls.links.checkpoints(document.uri, facts)
    at = convert.server_range(params.range, facts.lines, document.position_codec)
    offered = code_intel.code_actions(facts, at, checkpoints, state.diagnostics(checkpoints))
    if only and convert.wants_kind(convert.FIX_ALL_KIND, only):
        offered += code_intel.fix_all_actions(facts, checkpoints)
    return ls.lsp_code_actions(document, facts, checkpoints, offered, only) or None


@server.feature(types.CODE_ACTION_RESOLVE)
async def resolve_code_action(ls: PthscopeServer, action: types.CodeAction) -> types.CodeAction:
    data = action.data if isinstance(action.data, dict) else {}
    found = ls.analyzed(str(data.get("uri", "")))
    if found is None or not found[1].current:
        return action  # no edit: the document is closed or does not parse now
    document, state = found
    checkpoints = await ls.linked_checkpoints(document.uri, state.facts, LINK_WAIT_SECONDS)
    resolved = code_intel.resolve_code_action(state.facts, data, checkpoints)
    action.edit = ls.workspace_edit(document, resolved.edits or [], state.facts.lines)
    return action


@server.command(p.INSERT_REQUIRES_GRAD_CODE)
async def insert_requires_grad_code(
    ls: PthscopeServer, args: p.InsertRequiresGradCodeArgs
) -> p.InsertRequiresGradCodeResult:
    found = ls.analyzed(args.uri)
    if found is None or not found[1].current:
        why = "is not an open Python file" if found is None else "does not parse; fix it first"
        return p.InsertRequiresGradCodeResult(False, f"{args.uri} {why}")
    document, state = found
    name = _REQUIRES_GRAD_ACTIONS[args.action]
    action = code_intel.requires_grad_action(state.facts, args.line, name, args.module)
    if action is None or not action.edits:
        why = f"no model variable in scope at line {args.line + 1}, or the code is already there"
        return p.InsertRequiresGradCodeResult(False, why)
    edit = ls.workspace_edit(document, action.edits, state.facts.lines)
    response = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(edit=edit, label=action.title)
    )
    if response.applied:
        return p.InsertRequiresGradCodeResult(True, action.title)
    why = response.failure_reason or "the editor did not apply the edit"
    return p.InsertRequiresGradCodeResult(False, why)


class ClientLogHandler(logging.Handler):
    """Sends log records to the client's output channel as `window/logMessage`."""

    def __init__(self, ls: LanguageServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.ls = ls
        self.loop = loop
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        message = types.LogMessageParams(
            type=_LOG_MESSAGE_TYPES.get(record.levelno, types.MessageType.Log),
            message=self.format(record),
        )
        if threading.current_thread() is threading.main_thread():
            self.ls.window_log_message(message)
        else:  # only the loop's thread may write to the client
            self.loop.call_soon_threadsafe(self.ls.window_log_message, message)


def main() -> int:
    """Serve LSP on stdin/stdout until the client says exit."""
    log.setLevel(logging.INFO)
    log.propagate = False
    server.start_io()
    return 0

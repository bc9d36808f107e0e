"""The pthscope language server: pygls wiring only (`pthscope lsp` runs `main()` on stdio).

The custom `pthscope/*` requests (protocol.py) are answered from a `CheckpointIndex` that the
`CheckpointStore` keeps per file; parsing happens in an isolated worker process
(worker_client.py), never here. Python-file features — hover, code actions, diagnostics —
come from `analysis`/`actions` and are registered in this module next to the requests.
Logs go to the client's output channel through `window/logMessage`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter

from . import __version__
from . import protocol as p
from .checkpoint_index import CheckpointIndex
from .checkpoint_store import CheckpointStore
from .initialization_options import InitializationOptions, parse_initialization_options
from .worker_client import WorkerClient, WorkerLimits

log = logging.getLogger("pthscope")

_LOG_MESSAGE_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}


class PthscopeServer(LanguageServer):
    """Holds the options, the worker and the cache of parsed checkpoints."""

    def __init__(self) -> None:
        super().__init__(
            "pthscope",
            __version__,
            protocol_cls=p.PthscopeProtocol,
            converter_factory=lambda: p.register_protocol_hooks(default_converter()),
        )
        self.options = InitializationOptions()
        self.worker, self.store = _worker_and_store(self.options)

    def configure(self, options: InitializationOptions) -> None:
        """Apply the options: a new worker (started on first use) and an empty cache."""
        self.worker.kill()
        self.options = options
        self.worker, self.store = _worker_and_store(options)
        log.setLevel(options.log_level.upper())

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


# Python-file features (hover, codeAction, publishDiagnostics on Python sources; issue 4)
# are registered here, each handler calling into `analysis` and `actions`.


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

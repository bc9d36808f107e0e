"""The pthscope language server: pygls wiring only (`pthscope lsp` runs `main()` on stdio).

The custom `pthscope/*` requests (protocol.py) are answered by the structure worker, which
parses each file in its own process and keeps what it parsed (worker/); `pthscope/stats` asks it
where the tensor's bytes are and hands that to the values worker. Scans, module statistics,
diffs and conversions run batch by batch with progress (value_work.py); the last scan of a file
marks what the other requests send about it. Python-file features — hover, diagnostics, code
actions, document links (python_files.py) and their commands (python_commands.py) — and the
value work are imported on first use (as are `analysis`, `code_intel` and `values`), so that
the server starts as fast as pygls itself. Logs go to the client's output channel through
`window/logMessage`.
"""

# ruff: noqa: E402  (our imports come after gc.freeze(), below)
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter

# pygls and lsprotocol are some 50,000 objects that live as long as the server: out of the
# collector's sight from now on (each full collection would walk them again, ~20 ms).
gc.freeze()

from .. import __version__
from ..worker import InvalidRequest
from ..worker.client import WORKER_MODULE, WorkerClient, WorkerFailure
from ..worker.store import CheckpointStore
from . import protocol as p
from .options import (
    InitializationOptions,
    parse_initialization_options,
    structure_arguments,
    worker_limits,
)

if TYPE_CHECKING:
    from .python_files import PythonFiles
    from .value_work import ValueWork

log = logging.getLogger("pthscope")

_VALUES_WARM_UP_DELAY_SECONDS = 1.5

_LOG_MESSAGE_TYPES = {
    logging.ERROR: types.MessageType.Error,
    logging.WARNING: types.MessageType.Warning,
    logging.INFO: types.MessageType.Info,
}


class PthscopeServer(LanguageServer):
    """Holds the options, the two workers, the store of what the structure worker parsed, and
    (once a Python document needs them) the Python-file features."""

    def __init__(self, worker_module: str = WORKER_MODULE) -> None:
        super().__init__(
            "pthscope",
            __version__,
            protocol_cls=p.PthscopeProtocol,
            converter_factory=lambda: p.register_protocol_hooks(default_converter()),
        )
        self.worker_module = worker_module
        self.options = InitializationOptions()
        self._python: PythonFiles | None = None
        self._value_work: ValueWork | None = None
        self._start_workers()

    def configure(self, options: InitializationOptions, early_structure: subprocess.Popen[bytes] | None = None) -> None:
        """Apply the options: new workers (started on first use; the structure worker may be one
        started early for these options) and nothing parsed."""
        self.stop_workers()
        self.options = options
        self._start_workers(early_structure)
        log.setLevel(options.log_level.upper())

    def _start_workers(self, early_structure: subprocess.Popen[bytes] | None = None) -> None:
        limits = worker_limits(self.options)
        self.structure = WorkerClient("structure", limits, self.worker_module, structure_arguments(self.options),
                                      early_structure)
        self.values = WorkerClient("values", limits, self.worker_module)
        self.store = CheckpointStore(self.structure, self.options.cache_size)
        if self._python is not None:
            self._python.shutdown()
        self._python = None

    def stop_workers(self) -> None:
        self.structure.kill()
        self.values.kill()

    @property
    def value_work(self) -> ValueWork:
        """Scans, module statistics, diffs and conversions (imported and made on first use)."""
        if self._value_work is None:
            from .value_work import ValueWork

            self._value_work = ValueWork(self)
        return self._value_work

    @property
    def python(self) -> PythonFiles:
        """The Python-file features (imported and made on first use)."""
        if self._python is None:
            from .python_files import PythonFiles

            self._python = PythonFiles(self)
        return self._python

    async def ask(self, method: str, params: Any, **more: Any) -> Any:
        """The structure worker's answer to a `pthscope/*` request (its params, and `more`);
        progress is reported while the file has to be read, and a path the file lacks is an
        InvalidParams error."""
        fields = {**attrs.asdict(params), **more}
        token = fields.pop("work_done_token", None)
        file = fields.pop("file")
        try:
            if self.store.is_ready(file):
                result = await self.store.ask(file, method, fields)
            else:
                async with self._progress(token, f"Reading {os.path.basename(file)}"):
                    result = await self.store.ask(file, method, fields)
        except InvalidRequest as invalid:
            raise JsonRpcInvalidParams(str(invalid)) from None
        if self._value_work is not None:  # else no scan ran: nothing to mark
            self._value_work.mark(method, file, result)
        return result

    async def work(self, token: p.ProgressToken | None, title: str, job: Callable[[Any], Any]) -> Any:
        """Run a long value job with `$/progress` (percentage and message after each batch); a path
        the file lacks is an InvalidParams error."""
        try:
            async with self._progress(token, title, percentage=True) as report:
                return await job(report)
        except InvalidRequest as invalid:
            raise JsonRpcInvalidParams(str(invalid)) from None

    @asynccontextmanager
    async def _progress(self, token: p.ProgressToken | None, title: str, percentage: bool = False
                        ) -> AsyncIterator[Callable[[str, int | None], None]]:
        """`$/progress` begin/end around long work, on the client's token or one we create; what
        it yields reports a message (and a percentage) in between."""
        if token is None and self._client_shows_progress():
            token = str(uuid.uuid4())
            try:
                await self.work_done_progress.create_async(token)
            except Exception as error:  # the client refused; work without progress
                log.info("no progress shown: window/workDoneProgress/create failed: %s", error)
                token = None
        if token is None:
            yield lambda _message, _percentage: None
            return
        shown = token

        def report(message: str, done: int | None) -> None:
            self.work_done_progress.report(shown, types.WorkDoneProgressReport(message=message, percentage=done))

        self.work_done_progress.begin(shown, types.WorkDoneProgressBegin(
            title=title, cancellable=percentage, percentage=0 if percentage else None))
        try:
            yield report
        finally:
            self.work_done_progress.end(shown, types.WorkDoneProgressEnd())

    def _client_shows_progress(self) -> bool:
        window = self.client_capabilities.window
        return bool(window and window.work_done_progress)

    def shutdown(self) -> None:
        self.stop_workers()
        super().shutdown()


server = PthscopeServer()


@server.feature(types.INITIALIZE)
def initialize(ls: PthscopeServer, params: types.InitializeParams) -> None:
    if not any(isinstance(h, ClientLogHandler) for h in log.handlers):
        log.addHandler(ClientLogHandler(ls, asyncio.get_running_loop()))
        started = _process_started_at()
        if started is not None:
            _log_startup("server process started", started)
        _log_startup("server imported", _imported_at)
        _log_startup("server initializing", time.time())
    options, problems = parse_initialization_options(params.initialization_options)
    if options != ls.options:  # else keep the workers main() made (the early one among them)
        ls.configure(options)
    ls.structure.warm_up()  # the first page's file is read by it: start it with the server
    for problem in problems:
        log.warning("%s", problem)
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"pthscope: {problem}")
        )


@server.feature(types.SHUTDOWN)
def stop_workers(ls: PthscopeServer, _params: None) -> None:
    ls.stop_workers()


@server.feature(p.OPEN)
async def open_checkpoint(ls: PthscopeServer, params: p.OpenParams) -> p.OpenResult:
    from ..reader.safety import safety_verdict
    from .environment import unimportable_modules

    opened = await ls.ask("open", params, limit=p.PAGE_SIZE)
    folders = [folder.uri for folder in ls.workspace.folders.values()]
    # A loader that takes only its own types (torch.jit.load) imports nothing from Python.
    imported = [] if opened["loader"]["own_types_only"] else opened["globals"]
    unimportable = unimportable_modules(imported, map(_uri_path, folders))
    safety = safety_verdict(opened["globals"], opened["loader"], [e["kind"] for e in opened["errors"]], unimportable)
    result = p.OpenResult(**opened, unimportable=unimportable, safety=safety.to_json() if safety else None)
    if result.root is not None:
        # The page offers statistics: have the values worker ready for them, once the page has
        # drawn (starting it at once competed with that for the CPU).
        asyncio.get_running_loop().call_later(_VALUES_WARM_UP_DELAY_SECONDS, ls.values.warm_up)
    return result


@server.feature(p.CHILDREN)
async def children(ls: PthscopeServer, params: p.ChildrenParams) -> p.ChildrenResult:
    return p.ChildrenResult(**await ls.ask("children", params))


@server.feature(p.DETAILS)
async def details(ls: PthscopeServer, params: p.DetailsParams) -> p.DetailsResult:
    return p.DetailsResult(**await ls.ask("details", params))


@server.feature(p.SEARCH)
async def search(ls: PthscopeServer, params: p.SearchParams) -> p.SearchResult:
    return p.SearchResult(**await ls.ask("search", params))


@server.feature(p.TENSORS)
async def tensors(ls: PthscopeServer, params: p.TensorsParams) -> p.TensorsResult:
    return p.TensorsResult(**await ls.ask("tensors", params))


@server.feature(p.STATS)
async def stats(ls: PthscopeServer, params: p.StatsParams) -> p.StatsResult:
    located = await ls.ask("locate", params)
    doing = f"computing statistics of {located['key']} in {params.file}"
    try:
        answer = await ls.values.request("stats", located, doing, long=True)
    except WorkerFailure as failure:
        return p.StatsResult(error=str(failure))
    return p.StatsResult(**json.loads(answer))


def request_failed(message: str) -> JsonRpcException:
    """LSP's RequestFailed: the params were fine, the file could not be read."""
    return JsonRpcException(message, code=p.REQUEST_FAILED)


@server.feature(p.SCAN)
async def scan(ls: PthscopeServer, params: p.ScanParams) -> p.ScanResult:
    title = f"Scanning {os.path.basename(params.file)} for NaN/Inf"
    try:
        return p.ScanResult(**await ls.work(params.work_done_token, title,
                                            lambda report: ls.value_work.scan(params.file, report)))
    except ValueError as error:
        raise request_failed(str(error)) from None


@server.feature(p.MODULE_STATS)
async def module_stats(ls: PthscopeServer, params: p.ModuleStatsParams) -> p.ModuleStatsResult:
    try:
        stats = await ls.work(params.work_done_token, f"Statistics in {os.path.basename(params.file)}",
                              lambda report: ls.value_work.module_stats(params.file, params.path, report))
    except ValueError as error:
        return p.ModuleStatsResult(error=str(error))
    return p.ModuleStatsResult(stats=stats)


@server.feature(p.DIFF)
async def diff(ls: PthscopeServer, params: p.DiffParams) -> p.DiffResult:
    token = params.partial_result_token

    def partial(value: dict[str, Any]) -> None:
        if token is not None:
            ls.progress(types.ProgressParams(token=token, value=value))

    title = f"Comparing {os.path.basename(params.a)} with {os.path.basename(params.b)}"
    try:
        result = await ls.work(params.work_done_token, title, lambda report: ls.value_work.diff(
            params.a, params.b, params.values, report, partial))
    except ValueError as error:
        raise request_failed(str(error)) from None
    return p.DiffResult(**result)


@server.feature(p.CONVERT)
async def convert(ls: PthscopeServer, params: p.ConvertParams) -> p.ConvertResult:
    title = f"Writing {os.path.basename(params.out)}"
    try:
        return p.ConvertResult(**await ls.work(params.work_done_token, title, lambda report: ls.value_work.convert(
            params.file, params.out, params.all, report)))
    except (ValueError, OSError) as error:
        return p.ConvertResult(error=str(error))


@server.feature(p.REVEAL)
async def reveal(ls: PthscopeServer, params: p.RevealParams) -> p.RevealResult:
    return p.RevealResult(**await ls.ask("reveal", params))


@server.feature(p.ENVIRONMENT)
def environment(_ls: PthscopeServer, _params: p.EnvironmentParams) -> p.EnvironmentResult:
    from .environment import server_environment

    return server_environment()


@server.feature(p.SET_ACTIVE_CHECKPOINT)
def set_active_checkpoint(
    ls: PthscopeServer, params: p.SetActiveCheckpointParams
) -> p.SetActiveCheckpointResult:
    file = ls.python.links.set_active(params.file)
    ls.python.schedule_all()
    return p.SetActiveCheckpointResult(file=file)


# ----------------------------------------------------------------------------- Python files


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: PthscopeServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.python.changed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: PthscopeServer, params: types.DidChangeTextDocumentParams) -> None:
    from .python_files import DIAGNOSTICS_DELAY_SECONDS

    ls.python.changed(params.text_document.uri, DIAGNOSTICS_DELAY_SECONDS)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: PthscopeServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.python.changed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: PthscopeServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.python.close(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: PthscopeServer, params: types.HoverParams) -> types.Hover | None:
    return await ls.python.hover(params)


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=p.CODE_ACTION_KINDS, resolve_provider=True),
)
async def code_action(
    ls: PthscopeServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    return await ls.python.code_actions(params)


@server.feature(types.CODE_ACTION_RESOLVE)
async def resolve_code_action(ls: PthscopeServer, action: types.CodeAction) -> types.CodeAction:
    return await ls.python.resolve_code_action(action)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_LINK, types.DocumentLinkOptions(resolve_provider=False))
async def document_link(
    ls: PthscopeServer, params: types.DocumentLinkParams
) -> list[types.DocumentLink] | None:
    return await ls.python.document_links(params)


@server.command(p.INSERT_REQUIRES_GRAD_CODE)
async def insert_requires_grad_code(
    ls: PthscopeServer, args: p.InsertRequiresGradCodeArgs
) -> p.InsertRequiresGradCodeResult:
    from .python_commands import insert_requires_grad_code

    return await insert_requires_grad_code(ls.python, args)


@server.command(p.LIST_MODULES)
async def list_modules(ls: PthscopeServer, args: p.ListModulesArgs) -> p.ListModulesResult:
    from .python_commands import list_modules

    return await list_modules(ls.python, args)


@server.command(p.SNIPPET_EDIT)
async def snippet_edit(ls: PthscopeServer, args: p.SnippetEditArgs) -> p.SnippetEditResult:
    from .python_commands import snippet_edit

    return await snippet_edit(ls.python, args)


def _uri_path(uri: str) -> str:
    from pygls.uris import to_fs_path

    return to_fs_path(uri) or uri


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


_imported_at = time.time()


def _process_started_at() -> float | None:
    """When this process started (epoch seconds, to 10 ms), where /proc says."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
            booted_ago = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - booted_ago + ticks / os.sysconf("SC_CLK_TCK")


def _log_startup(mark: str, at: float) -> None:
    """A cold-start mark in the client's format (benchmarks/bench_cold_start.mjs reads it):
    milliseconds since this process started."""
    started = _process_started_at()
    since = "" if started is None else f" +{round((at - started) * 1000)} ms"
    log.info("startup: %s%s at %d", mark, since, round(at * 1000))


def main(worker_module: str = WORKER_MODULE, early_structure: subprocess.Popen[bytes] | None = None) -> int:
    """Serve LSP on stdin/stdout until the client says exit. `worker_module` runs the workers
    (`python -m MODULE`); only tests pass another, to start theirs. `early_structure` is a
    structure worker started with the default options before the server was imported."""
    log.setLevel(logging.INFO)
    log.propagate = False
    server.worker_module = worker_module
    server.configure(server.options, early_structure)
    server.start_io()
    return 0

"""Drive one isolated worker process (`process.py`) from the server's event loop.

`WorkerClient.request(method, params, doing)` sends a request with an id and awaits its reply;
replies are matched by id, so requests are answered in whatever order the worker finishes them.
Whatever goes wrong inside the worker — a request past the time limit, running out of its
memory limit, a crash — comes back as a `WorkerFailure` whose message says what happened while
doing what; the worker is then killed and the next request starts a fresh one. The other
requests that were waiting on a worker killed for one of them are sent again, once, to the
next. Cancelling a `long` request (a parse, a statistics computation) kills the worker too, so
long work never outlives its request; cancelling a quick one only forgets its reply.

A worker may also be started before the server's event loop runs (`start_early`: its start
overlaps the server's own imports); the client whose command it was started with adopts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pthscope

from . import InvalidRequest

log = logging.getLogger(__name__)

_STARTUP_SECONDS = 20.0
# The folder holding the `pthscope` package (and, in the extension and the repository, the
# launcher script): the worker's working directory, never a workspace.
_PACKAGE_PARENT = Path(pthscope.__file__).resolve().parent.parent
WORKER_MODULE = "pthscope.worker"
# glibc reserves 64 MiB of address space per thread's malloc arena; the worker's few threads
# would take a quarter of its memory limit before it reads anything. One arena: the GIL
# serialises them anyway.
_WORKER_ENVIRONMENT = {"MALLOC_ARENA_MAX": "1"}


def worker_command(memory_limit: int, module: str = WORKER_MODULE, arguments: tuple[str, ...] = ()) -> list[str]:
    """A worker's command line: isolated (`-I`: no script folder, working directory, PYTHON*
    variable or user site on sys.path), through the launcher next to the package, which puts the
    bundled libraries first and runs `site` itself (`-S`; see pthscope_launch.py); an installed
    pthscope without the launcher uses `-I -m`. `module` runs it (tests pass their own)."""
    launcher = _PACKAGE_PARENT / "pthscope_launch.py"
    entry = ["-I", "-S", str(launcher), module] if launcher.is_file() else ["-I", "-m", module]
    return [sys.executable, *entry, "--memory-limit", str(memory_limit), *arguments]


def _spawn_options() -> dict[str, Any]:
    """Where and with what environment every worker runs, however it is started."""
    return {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "cwd": _PACKAGE_PARENT,
            "env": {**os.environ, **_WORKER_ENVIRONMENT}}


def start_early(command: list[str]) -> subprocess.Popen[bytes]:
    """Start a worker now, outside any event loop; give it to the WorkerClient that would run
    `command` (`WorkerClient.command`), which adopts it on first use."""
    return subprocess.Popen(command, bufsize=0, **_spawn_options())


@dataclass(frozen=True)
class WorkerLimits:
    time_seconds: float
    memory_bytes: int


class WorkerFailure(Exception):
    """The worker could not answer; the message is for the user."""


class _Restarted(Exception):
    """The worker was killed for another request: this one may be sent again."""


def format_bytes(n: int) -> str:
    """2147483648 → "2 GiB", 100663296 → "96 MiB"."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"worker crashed (signal {-returncode}, {name})"
    return f"worker exited unexpectedly (exit code {returncode})"


@dataclass
class _Pending:
    future: asyncio.Future[tuple[str, bytes]]
    doing: str


class _WorkerProcess(Protocol):
    """What we use of asyncio's Process (and of an adopted early one)."""

    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    pid: int

    @property
    def returncode(self) -> int | None: ...
    def kill(self) -> None: ...
    async def wait(self) -> int: ...


class _AdoptedProcess:
    """A worker started by `start_early`, its pipes connected to the running event loop."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader) -> None:
        self.popen = popen
        self.stdin: asyncio.StreamWriter | None = stdin
        self.stdout: asyncio.StreamReader | None = stdout
        self.pid = popen.pid

    @classmethod
    async def adopt(cls, popen: subprocess.Popen[bytes]) -> _AdoptedProcess:
        assert popen.stdin is not None and popen.stdout is not None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, popen.stdin)
        return cls(popen, asyncio.StreamWriter(transport, protocol, reader, loop), reader)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        self.popen.kill()
        if self.stdin is not None:
            self.stdin.close()

    async def wait(self) -> int:
        return await asyncio.to_thread(self.popen.wait)


class _Process:
    """One running worker: its process, its pending requests and the task reading its replies."""

    def __init__(self, process: _WorkerProcess) -> None:
        self.process = process
        self.pending: dict[int, _Pending] = {}
        self.reader: asyncio.Task[None] | None = None

    def fail_all(self, error_for: Any) -> None:
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(error_for(pending))
        self.pending.clear()


class WorkerClient:
    """One worker process at a time (`role`: "structure" or "values"), many requests in flight."""

    def __init__(self, role: str, limits: WorkerLimits, module: str = WORKER_MODULE,
                 arguments: tuple[str, ...] = (), early: subprocess.Popen[bytes] | None = None) -> None:
        self.role = role
        self.limits = limits
        self.module = module
        self.arguments = arguments
        self.generation = 0  # how many workers were started: a new one holds nothing yet
        self._worker: _Process | None = None
        self._early = early
        if early is not None and early.args != self.command:  # started for other options
            self._drop_early()
        self._starting: asyncio.Lock = asyncio.Lock()
        self._warming: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    async def request(self, method: str, params: dict[str, Any], doing: str, long: bool = False) -> bytes:
        """The JSON of the worker's answer. Raises WorkerFailure, or InvalidRequest."""
        try:
            return await self._request_once(method, params, doing, long)
        except _Restarted:
            return await self._request_once(method, params, doing, long)

    async def _request_once(self, method: str, params: dict[str, Any], doing: str, long: bool) -> bytes:
        worker = await self._running()
        request_id = next(self._ids)
        future: asyncio.Future[tuple[str, bytes]] = asyncio.get_running_loop().create_future()
        worker.pending[request_id] = _Pending(future, doing)
        seconds = self.limits.time_seconds
        try:
            assert worker.process.stdin is not None
            line = json.dumps({"id": request_id, "method": method, "params": params}).encode() + b"\n"
            worker.process.stdin.write(line)
            await worker.process.stdin.drain()
            kind, body = await asyncio.wait_for(asyncio.shield(future), seconds)
        except asyncio.TimeoutError:
            worker.pending.pop(request_id, None)
            self._kill(worker, f"a request took longer than {seconds:g} s ({doing})")
            raise WorkerFailure(f"worker timed out after {seconds:g} s {doing}") from None
        except (ConnectionError, RuntimeError) as error:  # its stdin is gone: it died
            worker.pending.pop(request_id, None)
            self._kill(worker, "it stopped reading")
            raise WorkerFailure(f"worker stopped {doing}") from error
        except asyncio.CancelledError:
            worker.pending.pop(request_id, None)
            if long:
                log.info("%s cancelled; stopping the %s worker %d", doing, self.role, worker.process.pid)
                self._kill(worker, f"{doing} was cancelled")
            raise
        if kind == "result":
            return body
        if kind == "invalid":
            raise InvalidRequest(json.loads(body)["message"])
        reply = json.loads(body)
        self._kill(worker, "it failed")  # after a MemoryError or a bug, start afresh
        if reply.get("reason") == "memory":
            limit = format_bytes(self.limits.memory_bytes)
            raise WorkerFailure(f"worker ran out of memory (limit {limit}) {doing}")
        log.error("worker failed %s:\n%s", doing, reply.get("traceback", ""))
        raise WorkerFailure(f"pthscope failed {doing}: {reply.get('message')}")

    def warm_up(self) -> None:
        """Start the worker in the background, if it is not running, for a request to come."""
        if (self._worker is None or self._worker.process.returncode is not None) and self._warming is None:
            self._warming = asyncio.create_task(self._warm_up())

    async def _warm_up(self) -> None:
        try:
            await self._running()
        except WorkerFailure as failure:  # the request that needs it will say so
            log.info("%s", failure)
        finally:
            self._warming = None

    async def _running(self) -> _Process:
        async with self._starting:
            worker = self._worker
            if worker is None or worker.process.returncode is not None:  # never started, or died idle
                worker = self._worker = await self._start()
            return worker

    @property
    def command(self) -> list[str]:
        return worker_command(self.limits.memory_bytes, self.module, ("--serve", self.role, *self.arguments))

    async def _start(self) -> _Process:
        command = self.command
        early, self._early = self._early, None
        process: _WorkerProcess
        if early is not None and early.poll() is None:
            process = await _AdoptedProcess.adopt(early)
        else:
            process = await asyncio.create_subprocess_exec(*command, **_spawn_options())
        assert process.stdout is not None
        try:
            _, kind, _ = await asyncio.wait_for(_read_frame(process.stdout), _STARTUP_SECONDS)
            if kind != "ready":
                raise ValueError(f"worker said {kind!r} instead of 'ready'")
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            _kill(process)
            raise WorkerFailure(
                f"worker did not start ({' '.join(command)}); see the pthscope output for its error"
            ) from error
        except asyncio.CancelledError:
            _kill(process)
            raise
        self.generation += 1
        log.info("%s worker %d started (time limit %g s, memory limit %s)", self.role, process.pid,
                 self.limits.time_seconds, format_bytes(self.limits.memory_bytes))
        worker = _Process(process)
        worker.reader = asyncio.create_task(self._read_replies(worker))
        return worker

    async def _read_replies(self, worker: _Process) -> None:
        assert worker.process.stdout is not None
        try:
            while True:
                request_id, kind, body = await _read_frame(worker.process.stdout)
                pending = worker.pending.pop(int(request_id), None)
                if pending is not None and not pending.future.done():
                    pending.future.set_result((kind, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            returncode = await worker.process.wait()
            log.info("%s worker %d ended: %s", self.role, worker.process.pid, describe_exit(returncode))
            if self._worker is worker:
                self._worker = None
            worker.fail_all(lambda p: WorkerFailure(f"{describe_exit(returncode)} {p.doing}"))
        except ValueError as error:  # not a frame: the worker's output is corrupt
            self._kill(worker, "it sent an unreadable reply")
            log.error("%s worker sent an unreadable reply: %s", self.role, error)

    def _kill(self, worker: _Process, why: str) -> None:
        """Stop `worker`; the requests still waiting on it will be sent to the next one."""
        if self._worker is worker:
            self._worker = None
        _kill(worker.process)
        if worker.reader is not None:
            worker.reader.cancel()
        worker.fail_all(lambda _: _Restarted(why))

    def kill(self) -> None:
        """Stop the worker now; the next request starts a new one."""
        self._drop_early()
        if self._worker is not None:
            self._kill(self._worker, "the server stopped it")

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.kill()
            early.wait()


def _kill(process: _WorkerProcess) -> None:
    """Kill a worker that may already have exited on its own."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


async def _read_frame(stream: asyncio.StreamReader) -> tuple[str, str, bytes]:
    """One `<id> <kind> <length>\\n<body>` frame from the worker."""
    header = await stream.readline()
    if not header:
        raise asyncio.IncompleteReadError(header, None)
    request_id, kind, length = header.split()
    return request_id.decode(), kind.decode(), await stream.readexactly(int(length))

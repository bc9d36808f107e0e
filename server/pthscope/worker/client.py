"""Drive the isolated parse worker (`process.py`) from the server's event loop.

`WorkerClient.read_checkpoint(file)` sends one file to the worker process and returns the
checkpoint's JSON, undecoded (the store decodes it off the event loop). Whatever goes wrong inside the worker — a hang past the time limit, running
out of its memory limit, a crash — comes back as a `WorkerFailure` whose message says what
happened to which file; the worker is then killed and the next request starts a fresh one.
Cancelling a read kills the worker too, so a long parse never outlives its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pthscope

log = logging.getLogger(__name__)

_STARTUP_SECONDS = 20.0
# The folder holding the `pthscope` package (and, in the extension and the repository, the
# launcher script): the worker's working directory, never a workspace.
_PACKAGE_PARENT = Path(pthscope.__file__).resolve().parent.parent


def worker_command(memory_limit: int) -> list[str]:
    """The worker's command line: isolated (`-I`: no script folder, working directory, PYTHON*
    variable or user site on sys.path), through the launcher next to the package, which puts the
    bundled libraries first and runs `site` itself (`-S`; see pthscope_launch.py); an installed
    pthscope without the launcher uses `-I -m`."""
    launcher = _PACKAGE_PARENT / "pthscope_launch.py"
    if launcher.is_file():
        entry = ["-I", "-S", str(launcher), "pthscope.worker"]
    else:
        entry = ["-I", "-m", "pthscope.worker"]
    return [sys.executable, *entry, "--memory-limit", str(memory_limit)]


@dataclass(frozen=True)
class WorkerLimits:
    time_seconds: float
    memory_bytes: int


class WorkerFailure(Exception):
    """The worker could not read a file; the message is for the user."""


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


class WorkerClient:
    """One worker process at a time, used by one read at a time."""

    def __init__(self, limits: WorkerLimits) -> None:
        self.limits = limits
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def read_checkpoint(self, file: str) -> bytes:
        """The file's `Checkpoint.to_json()` as JSON bytes, read in the worker within limits."""
        return await self._request({"file": file}, "checkpoint", f"reading {file}")

    async def tensor_stats(self, file: str, path: list[str | int]) -> dict[str, Any]:
        """`values.tensor_stats` of the tensor at `path`, computed in the worker within limits:
        `{"stats": ...}` or `{"error": ...}`."""
        doing = f"computing statistics of {'.'.join(map(str, path))} in {file}"
        reply: dict[str, Any] = json.loads(await self._request({"file": file, "stats": path}, "stats", doing))
        return reply

    async def _request(self, request: dict[str, Any], expected: str, doing: str) -> bytes:
        async with self._lock:
            process = self._process
            if process is None or process.returncode is not None:  # never started, or died idle
                process = await self._start()
            try:
                return await self._ask(process, request, expected, doing)
            except asyncio.CancelledError:
                log.info("%s cancelled; stopping worker %d", doing, process.pid)
                self.kill()
                raise

    async def _ask(self, process: asyncio.subprocess.Process, request: dict[str, Any], expected: str,
                   doing: str) -> bytes:
        assert process.stdin is not None and process.stdout is not None
        seconds = self.limits.time_seconds
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            await process.stdin.drain()
            kind, body = await asyncio.wait_for(_read_frame(process.stdout), seconds)
        except asyncio.TimeoutError:
            self.kill()
            raise WorkerFailure(f"worker timed out after {seconds:g} s {doing}") from None
        except ValueError as error:  # not a frame: the worker's output is corrupt
            self.kill()
            raise WorkerFailure(f"worker sent an unreadable reply {doing}") from error
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            returncode = await process.wait()
            self._process = None
            log.info("worker %d ended: %s", process.pid, describe_exit(returncode))
            raise WorkerFailure(f"{describe_exit(returncode)} {doing}") from error
        if kind == expected:
            return body
        self.kill()  # after a MemoryError or a reader bug, start afresh
        reply = json.loads(body)
        if reply["reason"] == "memory":
            limit = format_bytes(self.limits.memory_bytes)
            raise WorkerFailure(f"worker ran out of memory (limit {limit}) {doing}")
        log.error("worker failed %s:\n%s", doing, reply.get("traceback", ""))
        raise WorkerFailure(f"reader failed on {request['file']}: {reply.get('message')}")

    async def _start(self) -> asyncio.subprocess.Process:
        command = worker_command(self.limits.memory_bytes)
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=_PACKAGE_PARENT,
        )
        assert process.stdout is not None
        try:
            kind, _ = await asyncio.wait_for(_read_frame(process.stdout), _STARTUP_SECONDS)
            if kind != "ready":
                raise ValueError(f"worker said {kind!r} instead of 'ready'")
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as error:
            _kill(process)
            raise WorkerFailure(
                f"worker did not start ({' '.join(command)}); "
                "see the pthscope output for its error"
            ) from error
        except asyncio.CancelledError:
            _kill(process)
            raise
        log.info(
            "worker %d started (time limit %g s, memory limit %s)",
            process.pid, self.limits.time_seconds, format_bytes(self.limits.memory_bytes),
        )
        self._process = process
        return process

    def kill(self) -> None:
        """Stop the worker now; the next read starts a new one."""
        process, self._process = self._process, None
        if process is not None:
            _kill(process)


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill a worker that may already have exited on its own."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()


async def _read_frame(stream: asyncio.StreamReader) -> tuple[str, bytes]:
    """One `<kind> <length>\\n<body>` frame from the worker."""
    header = await stream.readline()
    if not header:
        raise asyncio.IncompleteReadError(header, None)
    kind, length = header.split()
    return kind.decode(), await stream.readexactly(int(length))

"""The isolated parse worker: `python -m pthscope.worker --memory-limit BYTES`.

The language server never parses a checkpoint in its own process. It starts this worker, which
caps its own address space, says `ready`, then reads one request per line on stdin
(`{"file": path}`) and answers each with one frame on stdout: a line `<kind> <length>`, then
that many bytes of JSON. A `checkpoint` frame holds `Checkpoint.to_json()`; a request
`{"file": path, "stats": tensor path}` is answered by a `stats` frame holding
`values.tensor_stats` (`{"stats": ...}` or `{"error": ...}`); a `failure` frame
holds `{"reason": "memory"}` or `{"reason": "error", "message": ..., "traceback": ...}`.
A worker that hangs or dies is the server's problem (`client.py`): it kills it and
starts another. The worker exits when stdin closes or its parent goes away.

For tests only, `PTHSCOPE_TEST_WORKER_FAULT=segfault:<file name>,memory:<file name>` makes the
worker kill itself with SIGSEGV, or exhaust its memory limit outside the reader, when asked to
read a file of that name; no file can do either on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, BinaryIO

from pthscope.gc_pause import gc_paused
from pthscope.reader import audit, inspect
from pthscope.values import tensor_stats

TEST_FAULT_VARIABLE = "PTHSCOPE_TEST_WORKER_FAULT"
_PARENT_POLL_SECONDS = 1.0
_WATCHDOG_STACK_BYTES = 256 * 1024


def write_frame(out: BinaryIO, kind: str, message: dict[str, Any] | None = None) -> None:
    body = json.dumps(message, separators=(",", ":")).encode() if message is not None else b""
    out.write(b"%s %d\n" % (kind.encode(), len(body)))
    out.write(body)
    out.flush()


def limit_memory(limit_bytes: int) -> None:
    """Cap this process's address space so that a runaway parse raises MemoryError."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; the time limit still applies.
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def exit_when_orphaned() -> None:
    """Exit if the server dies without closing our stdin (e.g. while a parse hangs)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_SECONDS)
        os._exit(1)

    threading.stack_size(_WATCHDOG_STACK_BYTES)
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _apply_test_fault(file: str) -> None:
    for fault in os.environ.get(TEST_FAULT_VARIABLE, "").split(","):
        kind, _, name = fault.partition(":")
        if os.path.basename(file) != name:
            continue
        if kind == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if kind == "memory":
            hog = [bytearray(1 << 20) for _ in range(1 << 20)]  # 1 TiB, a MiB at a time
            del hog


def answer(file: str, replies: BinaryIO) -> None:
    """Write the frame for one request: the checkpoint's JSON, or why it could not be made."""
    try:
        _apply_test_fault(file)
        write_frame(replies, "checkpoint", inspect(file).to_json())
    except MemoryError:
        write_frame(replies, "failure", {"reason": "memory"})
    except Exception as error:  # a reader bug; the reader itself reports bad files as values
        write_frame(replies, "failure", {
            "reason": "error",
            "message": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        })


def answer_stats(file: str, path: list[Any], replies: BinaryIO) -> None:
    """Write a `stats` frame: `{stats}` or `{error}` for the tensor at `path` (values/)."""
    try:
        write_frame(replies, "stats", tensor_stats(file, path))
    except MemoryError:
        write_frame(replies, "failure", {"reason": "memory"})


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    write_frame(replies, "ready")
    for line in requests:
        request = json.loads(line)
        if "stats" in request:
            answer_stats(request["file"], request["stats"], replies)
            continue
        with gc_paused():
            answer(request["file"], replies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pthscope.worker")
    parser.add_argument("--memory-limit", type=int, required=True, help="address space, bytes")
    args = parser.parse_args(argv)
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the frames
    exit_when_orphaned()
    limit_memory(args.memory_limit)
    audit.install()  # nothing may import, exec, spawn or connect while a pickle is read
    try:
        serve(sys.stdin.buffer, replies)
    except BrokenPipeError:  # the server went away
        return 1
    return 0

"""The isolated workers: `python -m pthscope.worker --serve structure|values --memory-limit BYTES`.

The language server never parses a checkpoint or reads tensor values in its own process. It
starts two of these (client.py), each capping its own address space:

* the **structure** worker parses files (`reader.inspect`) and keeps what it parsed — the typed
  `Checkpoint` and its `CheckpointIndex` — for the last `--cache-size` files, each while its
  size and mtime stay the same; it answers tree, search, table, `locate` and `model` requests
  from them (index.py), parsing again only a file it does not hold (or that changed). Requests
  about files it holds are answered by two threads, so a page of one file comes while another
  file is parsed; parses take turns in the main thread.
* the **values** worker is stateless: a `stats` request carries where the tensor's bytes are
  (`values.TensorBytes`, from the structure worker's `locate`), so a long computation never
  holds up the tree, and stopping it loses nothing. So do the batches of a scan, a module's
  statistics, a diff and a conversion (values/requests.py lists both workers' value requests).

Protocol, on stdin/stdout: one request per line, `{"id": N, "method": ..., "params": {...}}`;
replies come as they are ready, in any order, each a frame: a line `<id> <kind> <length>`, then
that many bytes of JSON. Kinds: `result` (the answer), `invalid` (`{"message"}`: the request
names something the file does not have), `failure` (`{"reason": "memory"}` or
`{"reason": "error", "message", "traceback"}`). The first frame is `0 ready 0`. A worker that
hangs or dies is the server's problem: it kills it and starts another. A worker exits when
stdin closes or its parent goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, BinaryIO

from pthscope.gc_pause import gc_paused
from pthscope.reader import audit, inspect, preload
from pthscope.reader.model import Checkpoint
from pthscope.values import TensorBytes, tensor_stats
from pthscope.values.requests import STRUCTURE_REQUESTS, VALUES_REQUESTS
from pthscope.worker import InvalidRequest
from pthscope.worker.index import CheckpointIndex, answer

_PARENT_POLL_SECONDS = 1.0
_THREAD_STACK_BYTES = 1 << 20
_QUICK_THREADS = 2

# What the structure worker parses a file with, and the values worker computes with;
# tests/lsp/faulty_worker.py wraps them.
read_checkpoint: Callable[[str], Checkpoint] = inspect
compute_stats: Callable[[TensorBytes], dict[str, Any]] = tensor_stats


def answer_values(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return VALUES_REQUESTS[method](params)


compute_values: Callable[[str, dict[str, Any]], dict[str, Any]] = answer_values


class Replies:
    """Frames to the server, written whole by one thread at a time."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._lock = threading.Lock()

    def send(self, request_id: int, kind: str, body: bytes = b"") -> None:
        with self._lock:
            self.out.write(b"%d %s %d\n" % (request_id, kind.encode(), len(body)))
            self.out.write(body)
            self.out.flush()


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def read_requests(lines: BinaryIO, replies: Replies) -> Iterator[dict[str, Any]]:
    """The well-formed requests (`{"id": int, "method": str, "params": {...}}`, where `params`
    names its `file` unless the method needs none); a malformed one is answered `invalid` when it
    has an id, else named on stderr, and the worker goes on reading."""
    for line in lines:
        try:
            request = json.loads(line)
        except ValueError as error:
            print(f"pthscope worker: a request that is not JSON ({error}): {line[:200]!r}", file=sys.stderr)
            continue
        request_id = request.get("id") if isinstance(request, dict) else None
        params = request.get("params") if isinstance(request, dict) else None
        if (type(request_id) is int and isinstance(request.get("method"), str) and isinstance(params, dict)
                and isinstance(params.get("file", ""), str)):
            yield request
        elif type(request_id) is int:
            replies.send(request_id, "invalid", _encode({"message": "a malformed request"}))
        else:
            print(f"pthscope worker: a request without an id: {line[:200]!r}", file=sys.stderr)


def reply(replies: Replies, request_id: int, work: Callable[[], Any]) -> None:
    """Run one request and send its frame: the result, or why there is none."""
    try:
        replies.send(request_id, "result", _encode(work()))
    except InvalidRequest as invalid:
        replies.send(request_id, "invalid", _encode({"message": str(invalid)}))
    except MemoryError:
        replies.send(request_id, "failure", _encode({"reason": "memory"}))
    except Exception as error:  # a bug; the reader itself reports bad files as values
        replies.send(request_id, "failure", _encode({
            "reason": "error", "message": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()}))


class ParsedFiles:
    """The structure worker's cache: the index of each recently used file, while unchanged."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[str, CheckpointIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._parsing = threading.Lock()  # the reader uses process-wide state: one parse at a time

    def holds(self, file: str) -> bool:
        """Whether the file is parsed and unchanged (a request about it needs no parse)."""
        known = self._cache.get(file)
        return known is not None and (known.size, known.mtime_ns) == _stamp(file)

    def index(self, file: str) -> tuple[CheckpointIndex, bool]:
        """(the file's CheckpointIndex, whether it was parsed for this request)."""
        stamp = _stamp(file)
        with self._lock:
            known = self._cache.get(file)
            if known is not None and (known.size, known.mtime_ns) == stamp:
                self._cache.move_to_end(file)
                return known, False
        with self._parsing:
            with self._lock:  # parsed by another request meanwhile?
                known = self._cache.get(file)
                if known is not None and (known.size, known.mtime_ns) == stamp:
                    return known, False
                self._cache.pop(file, None)  # let the old one go before reading the new one
            with gc_paused():
                index = CheckpointIndex(read_checkpoint(file), *stamp)
            with self._lock:
                self._cache[file] = index
                while len(self._cache) > self.capacity:
                    self._cache.popitem(last=False)
        return index, True


def _stamp(file: str) -> tuple[int, int]:
    try:
        st = os.stat(file)
    except OSError:
        return 0, 0  # the reader reports why it cannot be opened
    return st.st_size, st.st_mtime_ns


def serve_structure(requests: BinaryIO, replies: Replies, capacity: int, memory_limit: int) -> None:
    """Answer requests about files already parsed in `_QUICK_THREADS` threads, and parse in this
    (the main) thread, whose stack is the process's own: hostile pickles can nest deeply."""
    files = ParsedFiles(capacity)
    parse_queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
    quick_queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()

    def run(request: dict[str, Any]) -> Any:
        method, params = request["method"], request["params"]
        if not isinstance(params.get("file"), str):
            raise InvalidRequest(f"{method}: the request names no file")
        if method == "load":  # parse if needed; say what was read
            started = time.perf_counter()
            index, parsed = files.index(params["file"])
            return {"parsed": parsed, "tensors": len(index.tensors), "nodes": index.node_count,
                    "seconds": time.perf_counter() - started}
        if method in STRUCTURE_REQUESTS:  # what scans, diffs and conversions need to know (values/)
            return STRUCTURE_REQUESTS[method](files.index(params["file"])[0], params)
        return answer(files.index(params["file"])[0], method, params)

    def answer_quickly() -> None:
        while (request := quick_queue.get()) is not None:
            if files.holds(request["params"].get("file", "")):
                reply(replies, request["id"], partial(run, request))
            else:  # evicted or changed meanwhile: it needs a parse
                parse_queue.put(request)

    def dispatch() -> None:
        for request in read_requests(requests, replies):
            holds = request["method"] != "load" and files.holds(request["params"].get("file", ""))
            (quick_queue if holds else parse_queue).put(request)
        for _ in range(_QUICK_THREADS):
            quick_queue.put(None)
        parse_queue.put(None)

    # Threads first: their stacks would not fit under a small memory limit.
    _thread(dispatch, "requests")
    for n in range(_QUICK_THREADS):
        _thread(answer_quickly, f"answers-{n}")
    limit_memory(memory_limit)
    replies.send(0, "ready")
    while (request := parse_queue.get()) is not None:
        reply(replies, request["id"], partial(run, request))


def serve_values(requests: BinaryIO, replies: Replies, memory_limit: int) -> None:
    limit_memory(memory_limit)
    replies.send(0, "ready")
    _import_engine()
    for request in read_requests(requests, replies):
        method, params = request["method"], request["params"]
        if method == "stats":
            reply(replies, request["id"], partial(compute_stats, TensorBytes.from_json(params)))
        elif method in VALUES_REQUESTS:
            reply(replies, request["id"], partial(compute_values, method, params))
        else:
            replies.send(request["id"], "invalid", _encode({"message": f"unknown request {method!r}"}))


def _thread(target: Callable[[], None], name: str) -> None:
    """A daemon thread with a small stack: these threads neither parse nor recurse."""
    threading.stack_size(_THREAD_STACK_BYTES)
    threading.Thread(target=target, name=name, daemon=True).start()
    threading.stack_size(0)


def _import_engine() -> None:
    """Import torch (else numpy) once, at start: every request needs it."""
    try:
        import torch  # noqa: F401
    except Exception:  # not installed, or over the memory limit: the request will say so
        with contextlib.suppress(Exception):
            import numpy  # noqa: F401


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

    _thread(watch, "parent-watchdog")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pthscope.worker")
    parser.add_argument("--serve", choices=("structure", "values"), required=True)
    parser.add_argument("--memory-limit", type=int, required=True, help="address space, bytes")
    parser.add_argument("--cache-size", type=int, default=8, help="parsed files kept (structure)")
    args = parser.parse_args(argv)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the frames
    exit_when_orphaned()
    with gc_paused():  # the reader's modules, sooner: the first page's file waits for this worker
        preload()  # under the memory limit, even importing can fail; and no import during a read
    audit.install()  # nothing may import, exec, spawn or connect while a pickle is read
    replies = Replies(out)
    try:
        if args.serve == "structure":
            serve_structure(sys.stdin.buffer, replies, args.cache_size, args.memory_limit)
        else:
            serve_values(sys.stdin.buffer, replies, args.memory_limit)
    except BrokenPipeError:  # the server went away
        return 1
    return 0

"""The server's side of the parsed checkpoints, which the structure worker keeps.

`CheckpointStore.ask(file, method, params)` answers a request about a file from the structure
worker, first having it read the file (`load`) unless it already holds it unchanged (same size
and mtime, same worker, among the last `capacity` files used). Requests for a file that is
being read wait for that read instead of starting another; the read is abandoned (and the
worker stopped) only when every one of them is cancelled. A file the worker could not read — it
crashed, hung or ran out of memory — is remembered with the reason, and requests about it are
answered here, from a checkpoint that carries the error, so that such a file costs one
time-out, not one per request. A worker that died takes what it held with it; the next
request reads the file again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .client import WorkerClient, WorkerFailure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileStamp:
    """What must stay the same for a parse to still describe the file."""

    size: int
    mtime_ns: int


def file_stamp(file: str) -> FileStamp:
    st = os.stat(file)
    return FileStamp(st.st_size, st.st_mtime_ns)


def _stamp_or_missing(file: str) -> FileStamp:
    try:
        return file_stamp(file)
    except OSError:
        return FileStamp(0, 0)  # the worker's reader says why it cannot be opened


class CheckpointStore:
    def __init__(self, worker: WorkerClient, capacity: int) -> None:
        self.worker = worker
        self.capacity = capacity
        # file → (stamp, worker generation) of what the worker holds, most recently used last.
        self._held: OrderedDict[str, tuple[FileStamp, int]] = OrderedDict()
        self._failed: dict[str, tuple[FileStamp, str]] = {}
        self._reads: dict[tuple[str, FileStamp], asyncio.Task[None]] = {}
        self._waiters: dict[tuple[str, FileStamp], int] = {}

    def is_ready(self, file: str) -> bool:
        """Whether a request about `file` would be answered without reading it first."""
        stamp = _stamp_or_missing(file)
        failed = self._failed.get(file)
        return (failed is not None and failed[0] == stamp) or self._holds(file, stamp)

    def _holds(self, file: str, stamp: FileStamp) -> bool:
        return self._held.get(file) == (stamp, self.worker.generation)

    async def ask(self, file: str, method: str, params: dict[str, Any]) -> Any:
        """The worker's answer, decoded; raises InvalidRequest for a path the file lacks."""
        return json.loads(await self.ask_json(file, method, params))

    async def ask_json(self, file: str, method: str, params: dict[str, Any]) -> bytes:
        """The worker's answer as JSON text (for callers that decode it off the event loop)."""
        stamp = _stamp_or_missing(file)
        if not self._holds(file, stamp) and not self._has_failed(file, stamp):
            await self._load(file, stamp)
        failed = self._failed.get(file)
        if failed is not None and failed[0] == stamp:
            return _answer_unreadable(file, stamp, failed[1], method, params)
        try:
            body = await self.worker.request(method, {"file": file, **params}, f"answering {method} about {file}")
        except WorkerFailure as failure:
            self._fail(file, stamp, str(failure))
            return _answer_unreadable(file, stamp, str(failure), method, params)
        self._held[file] = (stamp, self.worker.generation)
        self._held.move_to_end(file)
        return body

    def _has_failed(self, file: str, stamp: FileStamp) -> bool:
        failed = self._failed.get(file)
        return failed is not None and failed[0] == stamp

    async def _load(self, file: str, stamp: FileStamp) -> None:
        key = (file, stamp)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = asyncio.create_task(self._read(file, stamp))
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            await asyncio.shield(read)
        except asyncio.CancelledError:
            if self._waiters[key] == 1 and not read.done():
                read.cancel()  # nobody wants it any more: stop the worker
            raise
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]

    async def _read(self, file: str, stamp: FileStamp) -> None:
        try:
            body = await self.worker.request("load", {"file": file}, f"reading {file}", long=True)
        except WorkerFailure as failure:
            log.warning("%s", failure)
            self._fail(file, stamp, str(failure))
            return
        read = json.loads(body)
        if read["parsed"]:
            log.info("read %s: %d tensors, %d nodes in %.2f s", file, read["tensors"], read["nodes"], read["seconds"])
        self._failed.pop(file, None)
        self._held[file] = (stamp, self.worker.generation)
        self._held.move_to_end(file)
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)

    def _fail(self, file: str, stamp: FileStamp, message: str) -> None:
        self._failed[file] = (stamp, message)
        self._held.pop(file, None)


def _answer_unreadable(file: str, stamp: FileStamp, message: str, method: str, params: dict[str, Any]) -> bytes:
    """What the worker would answer about a file whose reader produced only this error."""
    from ..reader.model import Checkpoint, Problem
    from .index import CheckpointIndex, answer

    checkpoint = Checkpoint(file=file, format="unknown", size=stamp.size)
    checkpoint.errors.append(Problem("worker", message))
    return json.dumps(answer(CheckpointIndex(checkpoint, stamp.size, stamp.mtime_ns), method, params)).encode()

"""Parsed checkpoints kept by path, fresh as long as the file on disk is unchanged.

`CheckpointStore.load(file)` returns a `CheckpointIndex`: from the cache when the file's size
and mtime are what they were when it was read, otherwise by asking the worker. The cache holds
the most recently used few files. Requests for a file that is being read wait for that read
instead of starting another; the read is abandoned only when every one of them is cancelled.
A file the worker could not read is cached too (as a checkpoint carrying the error), so that a
file which hangs the worker costs one time-out, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

from ..reader.model import Checkpoint, Problem
from .client import WorkerClient, WorkerFailure
from .index import CheckpointIndex, load_index

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileStamp:
    """What must stay the same for a cached parse to still describe the file."""

    size: int
    mtime_ns: int


def file_stamp(file: str) -> FileStamp:
    st = os.stat(file)
    return FileStamp(st.st_size, st.st_mtime_ns)


def _error_index(file: str, size: int, kind: str, message: str) -> CheckpointIndex:
    checkpoint = Checkpoint(file=file, format="unknown", size=size)
    checkpoint.errors.append(Problem(kind, message))
    return CheckpointIndex(checkpoint.to_json())


class CheckpointStore:
    def __init__(self, worker: WorkerClient, capacity: int) -> None:
        self.worker = worker
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[FileStamp, CheckpointIndex]] = OrderedDict()
        self._reads: dict[tuple[str, FileStamp], asyncio.Task[CheckpointIndex]] = {}
        self._waiters: dict[tuple[str, FileStamp], int] = {}

    def cached(self, file: str) -> CheckpointIndex | None:
        """The cached index if the file is unchanged since it was read, else None."""
        entry = self._cache.get(file)
        try:
            if entry is None or entry[0] != file_stamp(file):
                return None
        except OSError:
            return None
        self._cache.move_to_end(file)
        return entry[1]

    async def load(self, file: str) -> CheckpointIndex:
        """The file's index, reading it in the worker unless the cache is still fresh."""
        try:
            stamp = file_stamp(file)
        except OSError as error:
            return _error_index(file, 0, "unreadable", f"cannot open the file: {error.strerror}")
        entry = self._cache.get(file)
        if entry is not None and entry[0] == stamp:
            self._cache.move_to_end(file)
            return entry[1]
        key = (file, stamp)
        read = self._reads.get(key)
        if read is None:
            read = self._reads[key] = asyncio.create_task(self._read(file, stamp))
            read.add_done_callback(lambda _: self._reads.pop(key, None))
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await asyncio.shield(read)
        except asyncio.CancelledError:
            if self._waiters[key] == 1 and not read.done():
                read.cancel()  # nobody wants it any more: stop the worker
            raise
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]

    async def _read(self, file: str, stamp: FileStamp) -> CheckpointIndex:
        started = time.perf_counter()
        try:
            checkpoint_json = await self.worker.read_checkpoint(file)
        except WorkerFailure as failure:
            log.warning("%s", failure)
            index = _error_index(file, stamp.size, "worker", str(failure))
        else:
            index = await asyncio.to_thread(load_index, checkpoint_json)
            log.info(
                "read %s: %d tensors, %d nodes in %.2f s", file, len(index.tensors),
                index.node_count, time.perf_counter() - started,
            )
        self._remember(file, stamp, index)
        return index

    def _remember(self, file: str, stamp: FileStamp, index: CheckpointIndex) -> None:
        self._cache[file] = (stamp, index)
        self._cache.move_to_end(file)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

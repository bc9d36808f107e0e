"""Which checkpoint files each open Python document links, kept read for its hovers and fixes.

A document links the first existing location of each checkpoint path its code names
(`ModuleFacts.checkpoint_paths()`, at most `MAX_FILES_PER_DOCUMENT`), plus the checkpoint the
side panel shows (`active`). Missing files link nothing. For each linked file the structure
worker (through the `CheckpointStore`) sends the code-intelligence view of what it parsed
(`reader.model_view.ModelView`), which is decoded in a thread, so no request waits on the event
loop for a parse. `checkpoints(uri, facts)` returns the views read and still fresh (same size
and mtime on disk) and starts reads for the rest; `on_loaded(file)` is called when a read
finishes, so that the server can publish the diagnostics of the documents that link the file
again. A file that cannot be read links as a view that carries the reader's errors.

What `code_intel` gets is `{normalised absolute path: ModelView}`, the same object for a file
until it changes on disk (code_intel keeps answers derived from it on it).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable

from ..analysis import ModuleFacts
from ..code_intel.compat_checks import loaded_mapping
from ..gc_pause import gc_paused
from ..reader.model_view import ModelView
from ..worker.store import CheckpointStore, FileStamp, file_stamp

log = logging.getLogger(__name__)

MAX_FILES_PER_DOCUMENT = 8
# How long a document's list of existing files is trusted before it is looked up again
# (a training run may write the file the code names while the code stays the same).
_RECHECK_SECONDS = 2.0


class LinkedCheckpoints:
    """The read checkpoints linked by open documents and the side panel, by file."""

    def __init__(self, store: CheckpointStore, on_loaded: Callable[[str], None]) -> None:
        self.store = store
        self.on_loaded = on_loaded
        self.active: str | None = None
        # uri → (the facts the files were found for, when, the files)
        self._documents: dict[str, tuple[ModuleFacts, float, tuple[str, ...]]] = {}
        self._read: dict[str, tuple[FileStamp, ModelView]] = {}
        self._reading: dict[str, asyncio.Task[None]] = {}

    def set_active(self, file: str | None) -> str | None:
        """Link `file` (the side panel's checkpoint) to every document; None unlinks it."""
        self.active = os.path.normpath(file) if file else None
        self._forget_unlinked()
        stamp = _stamp_or_none(self.active) if self.active is not None else None
        entry = self._read.get(self.active) if self.active is not None else None
        if self.active is not None and stamp is not None and (entry is None or entry[0] != stamp):
            self._start_read(self.active, stamp)
        return self.active

    def checkpoints(self, uri: str, facts: ModuleFacts) -> dict[str, ModelView]:
        """The document's linked checkpoints that have been read; starts reading the others and
        those changed on disk since (whose last reading is returned until the new one is in)."""
        found: dict[str, ModelView] = {}
        for file in self.files(uri, facts):
            stamp = _stamp_or_none(file)
            if stamp is None:  # gone: nothing to link
                continue
            entry = self._read.get(file)
            if entry is None or entry[0] != stamp:
                self._start_read(file, stamp)
            if entry is not None:
                found[file] = entry[1]
        return found

    def files(self, uri: str, facts: ModuleFacts) -> list[str]:
        """Existing files the document names, then the side panel's."""
        known = self._documents.get(uri)
        now = time.monotonic()
        if known is None or known[0] is not facts or now - known[1] > _RECHECK_SECONDS:
            named = existing_files(facts)
            self._documents[uri] = (facts, now, named)
            if known is None or known[2] != named:
                self._forget_unlinked()
        else:
            named = known[2]
        if self.active is not None and self.active not in named:
            return [*named, self.active]
        return list(named)

    def documents_linking(self, file: str) -> list[str]:
        """URIs of the documents that link `file` (all of them for the side panel's)."""
        if file == self.active:
            return list(self._documents)
        return [uri for uri, (_, _, files) in self._documents.items() if file in files]

    async def wait(self, files: Iterable[str], timeout: float) -> None:
        """Wait (at most `timeout` seconds) for the reads of these files that are under way."""
        reads = [self._reading[f] for f in files if f in self._reading]
        if reads:
            await asyncio.wait(reads, timeout=timeout)

    def forget(self, uri: str) -> None:
        """The document was closed."""
        if self._documents.pop(uri, None) is not None:
            self._forget_unlinked()

    def _start_read(self, file: str, stamp: FileStamp) -> None:
        if file in self._reading:
            return
        task = asyncio.create_task(self._read_file(file, stamp))
        self._reading[file] = task
        task.add_done_callback(lambda _: self._reading.pop(file, None))

    async def _read_file(self, file: str, stamp: FileStamp) -> None:
        try:
            answer = await self.store.ask_json(file, "model", {})
            before = self._read.get(file)
            started = time.perf_counter()
            read_stamp, view = await asyncio.to_thread(_view, answer, before[1] if before else None)
            how = "the same as before" if before is not None and view is before[1] else "decoded"
            log.info("view of %s: %s in %.0f ms", file, how, (time.perf_counter() - started) * 1000)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug, not a bad file (those come back with errors)
            log.exception("linking %s failed", file)
            read_stamp, view = stamp, _error_view(file, f"{type(error).__name__}: {error}")
        if file in self._linked():
            self._read[file] = (read_stamp, view)
            # A 30,000-tensor file is a million long-lived objects; every full collection would
            # walk them (~120 ms, e.g. in the middle of analysing an edit). Freezing moves what
            # exists now out of the collector's sight; it is still freed by reference counting.
            gc.freeze()
            self.on_loaded(file)

    def _linked(self) -> set[str]:
        linked = {file for _, _, files in self._documents.values() for file in files}
        if self.active is not None:
            linked.add(self.active)
        return linked

    def _forget_unlinked(self) -> None:
        linked = self._linked()
        for file in [f for f in self._read if f not in linked]:
            del self._read[file]


def existing_files(facts: ModuleFacts, limit: int = MAX_FILES_PER_DOCUMENT) -> tuple[str, ...]:
    """The first existing candidate of each checkpoint path (a file, or a folder torch.load names),
    in file order, without repeats."""
    found: dict[str, None] = {}
    exists: dict[tuple[str, bool], bool] = {}
    for path in facts.checkpoint_paths():
        # torch.load of a folder (a set, or a mistake) is linked too: its verdict says what loads it.
        folder_too = path.role == "load"
        for candidate in path.candidates:
            known = (candidate, folder_too)
            if known not in exists:
                exists[known] = os.path.exists(candidate) if folder_too else os.path.isfile(candidate)
            if exists[known]:
                found.setdefault(candidate, None)
                break
        if len(found) >= limit:
            break
    return tuple(found)


def _stamp_or_none(file: str) -> FileStamp | None:
    try:
        return file_stamp(file)
    except OSError:
        return None


def _view(answer: bytes, before: ModelView | None) -> tuple[FileStamp, ModelView]:
    """The stamp of the file the worker read, and its view: `before` when the view is the same
    (a training run saving the same structure again), so what was derived from it is kept."""
    digest = _view_digest(answer)
    if digest is not None and before is not None and before.memo.get(_DIGEST) == digest:
        head = json.loads(answer[: answer.find(_VIEW) + len(_VIEW)] + b"0}")
        return FileStamp(head["size"], head["mtime_ns"]), before
    with gc_paused():  # a million objects that all stay
        decoded = json.loads(answer)
        view = ModelView.from_json(decoded["view"])
        view.memo[_DIGEST] = digest
        loaded_mapping(view, ())  # the keys and shapes load_state_dict would see (compat_checks)
    return FileStamp(decoded["size"], decoded["mtime_ns"]), view


_DIGEST = "view-digest"
_VIEW = b'"view":'  # the answer is {"size": …, "mtime_ns": …, "view": {…}} (worker/index.py)


def _view_digest(answer: bytes) -> bytes | None:
    """A digest of the view's JSON (what follows the file's stamp); None if it is not found."""
    at = answer.find(_VIEW)
    return hashlib.blake2b(memoryview(answer)[at:], digest_size=16).digest() if at > 0 else None


def _error_view(file: str, message: str) -> ModelView:
    from ..reader.model import Checkpoint, Problem
    from ..reader.model_view import model_view

    checkpoint = Checkpoint(file=file, format="unknown")
    checkpoint.errors.append(Problem("internal", message))
    return model_view(checkpoint)

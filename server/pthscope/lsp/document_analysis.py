"""Each open Python document's analysis, made off the event loop.

`analysis.analyze` takes some 100 ms for a 2,000-line file; run on the event loop it would hold
up every request behind each keystroke. Here it runs in one worker thread (`submit`, on open and
on every change): one job at a time, always for the newest text of a document (a text that is
already outdated when its turn comes is skipped).

Requests do not wait for it when they need not: `usable(document, line)` gives the newest
finished analysis at once when `line` of the text as it is now lies outside what changed since
that analysis was made — lines before the change are the same, lines after it are shifted by
the change (`LineMap`) — so a hover or a light bulb right after an edit answers from it while
the new one runs. A request at a changed line awaits `current(document)`, the analysis of the
text as it is now. Diagnostics are published from current analyses only (python_files.py).

Other work too long for the event loop goes to the same thread (`run`): the comparison of a
model with the checkpoint it loads (code_intel's `prepare_checks`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pygls.workspace import TextDocument

from .. import analysis, code_intel
from ..analysis.source import source_lines
from ..reader.model_view import ModelView

log = logging.getLogger("pthscope")

T = TypeVar("T")
_KEPT = 4  # analyses of a document kept for the entries of light bulbs listed from them


# While the thread analyses, the event loop thread waits for the GIL at most this long each
# time it wants it back (Python's default, 5 ms, adds up over the reads and writes of a request).
_SWITCH_INTERVAL = 0.001


def _yielding(work: Callable[..., T], *args: Any) -> T:
    default = sys.getswitchinterval()
    sys.setswitchinterval(min(default, _SWITCH_INTERVAL))
    try:
        return work(*args)
    finally:
        sys.setswitchinterval(default)


@dataclass(frozen=True)
class LineMap:
    """Lines of an analysed text ↔ lines of the text as it is now: the first `prefix` lines and
    the last `suffix` lines are the same in both; the ones between changed."""

    prefix: int
    suffix: int
    old_count: int
    new_count: int

    def to_old(self, line: int) -> int | None:
        if line < self.prefix:
            return line
        if line >= self.new_count - self.suffix:
            return line - self.new_count + self.old_count
        return None

    def to_new(self, line: int) -> int | None:
        if line < self.prefix:
            return line
        if line >= self.old_count - self.suffix:
            return line - self.old_count + self.new_count
        return None


def line_map(old: list[str], new: list[str]) -> LineMap:
    limit = min(len(old), len(new))
    prefix = 0
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return LineMap(prefix, suffix, len(old), len(new))


@dataclass
class PythonDocument:
    """One analysis of an open Python document."""

    source: str
    version: int | None
    facts: analysis.ModuleFacts
    # False when the text did not parse even with repairs: `facts` are from an earlier text
    # (hovers still use them; diagnostics and edits wait for a text that parses).
    current: bool
    generation: int = 0  # counts the document's analyses
    # The diagnostics of `facts` and the checkpoints they were computed with.
    _found: tuple[list[tuple[str, ModelView]], list[code_intel.Diagnostic]] | None = field(
        default=None, repr=False
    )

    def diagnostics(self, checkpoints: dict[str, ModelView]) -> list[code_intel.Diagnostic]:
        """`code_intel.diagnostics`, computed once per text and set of linked checkpoints (the
        light bulb asks for them on every cursor move)."""
        linked = list(checkpoints.items())
        known = self._found
        if known is not None and len(known[0]) == len(linked) and all(
            a[0] == b[0] and a[1] is b[1] for a, b in zip(known[0], linked, strict=True)
        ):
            return known[1]
        found = code_intel.diagnostics(self.facts, checkpoints)
        if code_intel.checks_ready(self.facts, checkpoints):  # else PTH008 comes later
            self._found = (linked, found)
        return found


@dataclass
class _Job:
    source: str
    task: asyncio.Task[PythonDocument | None]


class Analyses:
    """The analyses of the open Python documents, made in a worker thread."""

    def __init__(self, folders: Callable[[], tuple[str, ...]]) -> None:
        self.folders = folders
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pthscope-analysis")
        self._done: dict[str, deque[PythonDocument]] = {}
        self._jobs: dict[str, _Job] = {}
        self._latest: dict[str, str] = {}  # uri → the newest text submitted
        self._maps: dict[tuple[str, int, int | None], LineMap] = {}

    def newest(self, uri: str) -> PythonDocument | None:
        done = self._done.get(uri)
        return done[-1] if done else None

    def generation(self, uri: str, generation: int) -> PythonDocument | None:
        return next((d for d in self._done.get(uri, ()) if d.generation == generation), None)

    def submit(self, document: TextDocument) -> asyncio.Task[PythonDocument | None]:
        """Start analysing the document's text (after the job under way), unless it is done."""
        uri, source = document.uri, document.source
        self._latest[uri] = source
        job = self._jobs.get(uri)
        if job is not None and job.source == source:
            return job.task
        before = job.task if job is not None else None
        task = asyncio.create_task(self._analyze(document, source, before))
        self._jobs[uri] = _Job(source, task)
        return task

    async def current(self, document: TextDocument) -> PythonDocument:
        """The analysis of the document's text as it is now."""
        while True:
            newest = self.newest(document.uri)
            if newest is not None and newest.source == document.source:
                newest.version = document.version
                return newest
            await self.submit(document)

    def usable(self, document: TextDocument, line: int) -> tuple[PythonDocument, LineMap] | None:
        """The newest analysis, if `line` (of the text as it is now) is one it can answer for
        (unchanged since), with the map between its lines and the current ones."""
        newest = self.newest(document.uri)
        if newest is None:
            return None
        lines = newest.facts.lines
        key = (document.uri, newest.generation, document.version)
        mapped = self._maps.get(key)
        if mapped is None:
            if newest.source == document.source and newest.current:
                mapped = LineMap(len(lines), 0, len(lines), len(lines))
            else:
                mapped = line_map(lines, source_lines(document.source))
            self._maps = {k: v for k, v in self._maps.items() if k[0] != document.uri}
            self._maps[key] = mapped
        return (newest, mapped) if mapped.to_old(line) is not None else None

    def map_between(self, old: PythonDocument, document: TextDocument) -> LineMap:
        return line_map(old.facts.lines, source_lines(document.source))

    def forget(self, uri: str) -> None:
        self._done.pop(uri, None)
        self._latest.pop(uri, None)
        job = self._jobs.pop(uri, None)
        if job is not None:
            job.task.cancel()
        self._maps = {k: v for k, v in self._maps.items() if k[0] != uri}

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` in the analysis thread (after the job under way)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, _yielding, work, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _analyze(
        self,
        document: TextDocument,
        source: str,
        before: asyncio.Task[PythonDocument | None] | None,
    ) -> PythonDocument | None:
        if before is not None:
            await asyncio.wait([before])  # however it ended (its own job logs a failure)
        uri = document.uri
        if self._latest.get(uri) != source:
            return None  # outdated before its turn: the newest text has its own job
        previous = self.newest(uri)
        old_facts = previous.facts if previous is not None else None
        loop = asyncio.get_running_loop()
        try:
            facts = await loop.run_in_executor(
                self._executor, _yielding, analysis.analyze, source, document.path, self.folders(), old_facts
            )
        except Exception:  # analyze never raises; a bug must not stop the server
            log.exception("analysing %s failed", uri)
            facts = analysis.ModuleFacts(document.path, source_lines(source), ok=False)
        current = old_facts is None or facts.lines is not old_facts.lines
        generation = previous.generation + 1 if previous is not None else 1
        state = PythonDocument(source, document.version, facts, current, generation)
        done = self._done.setdefault(uri, deque(maxlen=_KEPT))
        done.append(state)
        return state

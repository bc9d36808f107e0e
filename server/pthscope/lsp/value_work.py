"""The language server's long value requests: scans, module statistics, diffs, conversions.

Each asks the structure worker what to read (values/requests.py: `locate_all`, `diff_entries`,
`convert_plan`), then runs the job (values/jobs.py) with an `ask` that sends each batch to the
values worker — so tree and table requests go on being answered meanwhile — reporting
`$/progress` (percentage and message) on the request's work-done token after every batch. A
cancelled request kills the values worker mid-batch (worker/client.py, `long=True`); a cancelled
scan keeps what it found. The last scan of each file is kept while the file is unchanged
(`values.scan.ScanResults`) and marks what the server sends about that file (`mark`): tree
nodes get `scan`, table pages `marks`, the open result `scan` (its summary).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..values.convert import ConvertError, check_output
from ..values.diff import StructureDiff
from ..values.jobs import Progress, convert, diff_values, module_stats, scan
from ..values.locate import Located
from ..values.scan import ScanMarks, ScanReport, ScanResults
from ..worker.client import WorkerFailure
from ..worker.store import file_stamp

if TYPE_CHECKING:
    from .server import PthscopeServer

Json = dict[str, Any]
Report = Callable[[str, int | None], None]


class ValueWork:
    def __init__(self, server: PthscopeServer) -> None:
        self.server = server
        self.scans = ScanResults()

    async def _values(self, method: str, params: Json, doing: str) -> Json:
        """One values-worker request; its failure (crash, time, memory) becomes a ValueError."""
        try:
            return json.loads(await self.server.values.request(method, params, doing, long=True))
        except WorkerFailure as failure:
            raise ValueError(str(failure)) from None

    async def _readable(self, file: str) -> str | None:
        """Why the file cannot be read (its first error), or None."""
        opened = await self.server.store.ask(file, "open", {"limit": 0})
        if opened["root"] is None and opened["errors"]:
            return f"{os.path.basename(file)} could not be read: {opened['errors'][0]['message']}"
        return None

    async def scan(self, file: str, report: Report) -> Json:
        why = await self._readable(file)
        if why is not None:
            raise ValueError(why)
        located = await self.server.store.ask(file, "locate_all", {})
        entries = [Located.from_json(e) for e in located["tensors"]]
        stamp = _stamp(file)
        partial = ScanReport(file, len(entries))
        ask = self._asker(f"scanning {file}")
        try:
            await scan(file, entries, ask, _reporter(report), partial)
        finally:  # a cancelled scan still marks what it found
            if stamp is not None:
                self.scans.keep(file, stamp, partial)
        return partial.to_json()

    async def module_stats(self, file: str, path: list[Any], report: Report) -> Json:
        located = await self.server.store.ask(file, "locate_all", {"path": path})
        details = await self.server.store.ask(file, "details", {"path": path})
        entries = [Located.from_json(e) for e in located["tensors"]]
        return await module_stats(details["node"]["key"], entries, self._asker(f"computing statistics in {file}"),
                                  _reporter(report))

    async def diff(self, a: str, b: str, values: bool, report: Report, partial: Callable[[Json], None]) -> Json:
        sides = []
        for file in (a, b):
            why = await self._readable(file)
            if why is not None:
                raise ValueError(why)
            sides.append(await self.server.store.ask(file, "diff_entries", {"values": values}))
        diff = StructureDiff(*sides)
        if values:
            forward = _reporter(report)

            def progress(step: Progress) -> None:
                forward(step)
                partial({"tensors": step.rows, "done": step.done, "total": step.total})

            await diff_values(diff, self._asker(f"comparing {a} with {b}"), progress)
        return diff.to_json()

    async def convert(self, file: str, out: str, everything: bool, report: Report) -> Json:
        try:
            check_output(file, out, force=True)  # the save dialog asked about overwriting
        except ConvertError as error:
            return {"error": str(error)}
        why = await self._readable(file)
        if why is not None:
            return {"error": why}
        plan = await self.server.store.ask(file, "convert_plan", {"all": everything})
        if "error" in plan:
            return {"error": plan["error"]}
        if plan["errors"]:
            names = "; ".join(f"{e['key']}: {e['message']}" for e in plan["errors"][:5])
            return {"error": f"nothing written: {len(plan['errors'])} tensors cannot be written ({names})"}
        written = await convert(plan, out, self._asker(f"writing {out}"), _reporter(report))
        return {"written": written}

    def _asker(self, doing: str) -> Callable[[str, Json], Any]:
        async def ask(method: str, params: Json) -> Json:
            return await self._values(method, params, doing)
        return ask

    def mark(self, method: str, file: str, result: Json) -> None:
        """Put the file's last scan into a structure answer (see the module docstring)."""
        stamp = _stamp(file)
        marks = self.scans.marks(file, stamp) if stamp is not None else None
        if marks is None:
            return
        if method == "open":
            result["scan"] = marks.report.summary_json()
            marks.annotate([n for n in (result.get("root"), *result.get("children", [])) if n])
            if result.get("first_tensors"):
                _mark_table(marks, result["first_tensors"])
        elif method == "children":
            marks.annotate(result["children"])
        elif method == "details":
            marks.annotate([result["node"]])
        elif method == "search":
            marks.annotate(result["matches"])
        elif method == "tensors":
            _mark_table(marks, result)


def _mark_table(marks: ScanMarks, table: Json) -> None:
    """A page of the tensor table gets `marks`: the scan's findings of its rows, by key."""
    found = {t["key"]: mark for t in table["tensors"] if (mark := marks.for_node(t["key"], True))}
    if found:
        table["marks"] = found


def _stamp(file: str) -> tuple[int, int] | None:
    try:
        stamp = file_stamp(file)
    except OSError:
        return None
    return stamp.size, stamp.mtime_ns


def _reporter(report: Report) -> Callable[[Progress], None]:
    def forward(step: Progress) -> None:
        report(step.message, step.percentage)
    return forward


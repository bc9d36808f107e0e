"""Long value work, batch by batch: scans, module statistics, value diffs and conversions.

Each job takes what the structure worker located (locate.py, diff.py, convert.py) and an `ask`
that sends one values request (requests.py) and returns its answer: the language server's asks
the isolated values worker (worker/client.py); the CLI's answers in its own process. Work goes
in batches of at most `BATCH_BYTES` (or `BATCH_TENSORS`), and after each the job reports
progress (`Progress(done, total, message)`, plus the diff rows just compared), so a request can
show how far it is and be cancelled between batches — cancelling the language server's request
kills the worker in the middle of one. A cancelled job leaves its partial result behind (a
`ScanReport` or `StructureDiff` not marked complete).
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .convert import header, temporary_path
from .diff import Row, StructureDiff
from .locate import BATCH_BYTES, BATCH_TENSORS, Located, batches
from .reduction import Partial, merge_all, value_kind
from .scan import ScanReport
from .stats import histogram_payload, histogram_request

Json = dict[str, Any]
Ask = Callable[[str, Json], Awaitable[Json]]


@dataclass
class Progress:
    done: int
    total: int
    message: str
    rows: list[Json] = field(default_factory=list)  # diff rows compared in this batch

    @property
    def percentage(self) -> int:
        return int(100 * self.done / self.total) if self.total else 100


OnProgress = Callable[[Progress], None]


def _nothing(_: Progress) -> None:
    pass


async def scan(file: str, entries: list[Located], ask: Ask, on_progress: OnProgress = _nothing,
               report: ScanReport | None = None) -> ScanReport:
    """Every distinct view of the file reduced once and judged (scan.py); fills `report` as it goes."""
    report = report if report is not None else ScanReport(file, len(entries))
    started = time.perf_counter()
    for entry in entries:
        if entry.bytes is None:
            report.add(entry, None, entry.error)
    total_bytes = sum(e.nbytes for e in entries if e.bytes is not None)
    done_bytes = 0
    for batch in batches(entries):
        answer = await ask("reduce", {"tensors": [e.bytes.to_json() for e in batch if e.bytes]})
        for entry, result in zip(batch, answer["results"], strict=True):
            report.add(entry, Partial.from_json(result["partial"]) if "partial" in result else None,
                       result.get("error"))
        done_bytes += sum(e.nbytes for e in batch)
        report.seconds = time.perf_counter() - started
        on_progress(Progress(done_bytes, total_bytes, f"{report.scanned:,} of {report.total:,} tensors, "
                             f"{len(report.bad):,} bad"))
    report.complete = True
    report.seconds = time.perf_counter() - started
    return report


async def module_stats(key: str, entries: list[Located], ask: Ask, on_progress: OnProgress = _nothing) -> Json:
    """The statistics of all the floating-point (else integer) tensors of a subtree together."""
    readable = [e for e in entries if e.bytes is not None]
    floats = [e for e in readable if value_kind(e.dtype) != "int"]
    chosen = floats or readable
    if not chosen:
        raise ValueError(f"no tensor under {key or '(root)'} has values pthscope can read")
    total_bytes = 2 * sum(e.nbytes for e in chosen)
    done = 0
    partials: list[Partial] = []
    failed: list[Json] = []
    used: list[Located] = []
    for batch in batches(chosen):
        answer = await ask("reduce", {"tensors": [e.bytes.to_json() for e in batch if e.bytes]})
        for entry, result in zip(batch, answer["results"], strict=True):
            if "partial" in result:
                partials.append(Partial.from_json(result["partial"]))
                used.append(entry)
            else:
                failed.append({"key": entry.key, "message": result["error"]})
        done += sum(e.nbytes for e in batch)
        on_progress(Progress(done, total_bytes, f"{len(partials):,} of {len(chosen):,} tensors"))
    total = merge_all(partials, "float" if floats else "int")
    dtypes: dict[str, int] = {}
    for entry in used:
        dtypes[entry.dtype] = dtypes.get(entry.dtype, 0) + 1
    out: Json = {"key": key, "tensors": total.tensors, "numel": total.numel, "dtypes": dtypes,
                 "left_out": len(entries) - len(chosen) + len(failed), "failed": failed[:20], **total.finish()}
    request = histogram_request(total)
    counts: list[int] = []
    if request is not None:
        method, params = request
        tensors = [e.bytes.to_json() for e in used if e.bytes]
        step = max(1, BATCH_TENSORS // 4)
        for start in range(0, len(tensors), step):
            answer = await ask(method, {"tensors": tensors[start:start + step], **params})
            if "error" in answer:
                raise ValueError(answer["error"])
            counts = answer["counts"] if not counts else [a + b for a, b in zip(counts, answer["counts"], strict=True)]
    out.update(histogram_payload(total, request, counts))
    on_progress(Progress(total_bytes, total_bytes, "done"))
    return out


async def diff_values(diff: StructureDiff, ask: Ask, on_progress: OnProgress = _nothing) -> StructureDiff:
    """Compare the values of every comparable pair, batch by batch (rows reported as they come)."""
    diff.values_requested = True
    diff.complete = False
    rows = diff.pairs()
    total = sum(max(row.a.nbytes, 1) for row in rows if row.a is not None)
    done = 0
    batch: list[Row] = []
    weight = 0

    async def flush() -> None:
        nonlocal done, batch, weight
        if not batch:
            return
        pairs = [[r.a.bytes.to_json(), r.b.bytes.to_json()] for r in batch]  # type: ignore[union-attr]
        answer = await ask("diff", {"pairs": pairs})
        for row, result in zip(batch, answer["results"], strict=True):
            diff.add_values(row, _rounded(result))
        done += weight
        on_progress(Progress(done, total, f"{diff.summary()['compared']:,} of {len(rows):,} tensors compared",
                             [r.to_json() for r in batch]))
        batch, weight = [], 0

    for row in rows:
        size = max(row.a.nbytes, 1) if row.a is not None else 1
        if batch and (weight + size > BATCH_BYTES or len(batch) >= BATCH_TENSORS):
            await flush()
        batch.append(row)
        weight += size
    await flush()
    diff.complete = True
    return diff


def _rounded(result: Json) -> Json:
    """Value-diff results as sent: NaN never appears (JSON has none)."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in result.items()}


async def convert(plan: Json, out: str, ask: Ask, on_progress: OnProgress = _nothing) -> Json:
    """Write the planned safetensors file: to a temporary file beside `out`, renamed when done."""
    head, data_bytes = header(plan)
    temporary = temporary_path(out)
    tensors = plan["tensors"]
    done = 0
    at = len(head)
    first = True
    try:
        start = 0
        while start < len(tensors) or first:
            batch: list[Json] = []
            weight = 0
            while start < len(tensors) and (not batch or (weight + tensors[start]["nbytes"] <= BATCH_BYTES
                                                          and len(batch) < BATCH_TENSORS)):
                batch.append(tensors[start])
                weight += tensors[start]["nbytes"]
                start += 1
            params: Json = {"out": temporary, "at": at, "tensors": [t["bytes"] for t in batch]}
            if first:
                params["head"] = base64.b64encode(head).decode()
            written = (await ask("write", params))["bytes"]
            if written != weight:
                raise OSError(f"wrote {written:,} bytes for {weight:,} bytes of tensors")
            at += written
            done += written
            first = False
            on_progress(Progress(done, data_bytes, f"{done >> 20:,} of {data_bytes >> 20:,} MiB"))
        os.replace(temporary, out)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return {"out": out, "tensors": len(tensors), "bytes": at, "aliases": plan["aliases"],
            "left_out": plan["left_out"], "dropped": plan["dropped"], "dropped_count": plan["dropped_count"],
            "model_only": plan["model_only"]}

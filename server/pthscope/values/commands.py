"""`pthscope stats`, `scan`, `diff` and `convert`: the value commands of the CLI (cli.py parses).

Each runs in the CLI's reading child (cli.py: a time limit, an address-space budget, the audit
hook): it reads the file(s) with the reader, then does the same jobs (jobs.py) the language
server does, answering their values requests in this process (requests.py) instead of in a
worker. Output is text, or with `--json` one JSON object (docs/json-contract.md); every string
from a file goes through `visible` first, so a key cannot forge or hide a line. Exit codes: 0 done,
1 a file could not be read (or converted), 2 bad usage, 3 (`scan`) a tensor has NaN or inf.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..plain_text import visible
from ..reader import inspect
from ..reader.counts import format_bytes
from ..reader.limits import Limits
from ..reader.model import Checkpoint
from . import jobs
from .convert import ConvertError, check_output, convert_plan
from .diff import StructureDiff, diff_entries
from .engines import EngineError, engine_for
from .locate import located_tensors
from .reading import OpenFiles
from .requests import VALUES_REQUESTS
from .stats import tensor_stats

Json = dict[str, Any]
SCAN_FOUND_EXIT = 3
_SPARK = "▁▂▃▄▅▆▇█"


async def _ask_here(method: str, params: Json) -> Json:
    """A values request answered in this process."""
    return VALUES_REQUESTS[method](params)


def _read(file: str, limits: Limits, err: TextIO) -> tuple[Checkpoint, int, int] | None:
    checkpoint = inspect(file, limits)
    if checkpoint.errors:
        error = checkpoint.errors[0]
        where = f" (at {error.where})" if error.where else ""
        err.write(visible(f"pthscope: {file}: {error.message}{where}") + "\n")
        return None
    st = os.stat(checkpoint.file)
    return checkpoint, st.st_size, st.st_mtime_ns


def matches(key: str, patterns: list[str]) -> bool:
    """Whether `key` contains one of the patterns (case-insensitive; shell wildcards allowed)."""
    if not patterns:
        return True
    key = key.lower()
    for pattern in patterns:
        pattern = pattern.lower()
        if any(c in pattern for c in "*?["):
            if fnmatch.fnmatchcase(key, pattern if pattern.startswith("*") else f"*{pattern}*"):
                return True
        elif pattern in key:
            return True
    return False


def _progress_line(err: TextIO) -> Callable[[jobs.Progress], None]:
    """Progress on one rewritten line of a terminal's stderr; nothing when it is not a terminal."""
    if not err.isatty():
        return lambda _: None

    def show(progress: jobs.Progress) -> None:
        err.write(f"\r{progress.percentage:3d}%  {progress.message}\033[K")
        err.flush()
    return show


def _end_progress(err: TextIO) -> None:
    if err.isatty():
        err.write("\r\033[K")


# ----------------------------------------------------------------------------- stats


def run_stats(file: str, patterns: list[str], as_json: bool, limits: Limits, out: TextIO, err: TextIO) -> int:
    read = _read(file, limits, err)
    if read is None:
        return 1
    checkpoint, size, mtime = read
    entries = [e for e in located_tensors(checkpoint, size, mtime) if matches(e.key, patterns)
               or any(matches(a, patterns) for a in e.aliases)]
    results: list[Json] = []
    with OpenFiles() as files:
        for entry in entries:
            result: Json = {"key": entry.key, "aliases": entry.aliases}
            if entry.bytes is None:
                result["error"] = entry.error
            else:
                result.update(tensor_stats(entry.bytes, files=files))
            results.append(result)
    if as_json:
        out.write(json.dumps({"file": checkpoint.file, "format": checkpoint.format, "tensors": results},
                             separators=(",", ":")) + "\n")
        return 0
    out.write(visible(f"{checkpoint.file}  ({checkpoint.format}, {len(results):,} of {len(checkpoint.tensors):,} "
                      "tensors)") + "\n")
    if patterns and not results:
        out.write(visible(f"  no tensor key matches {' '.join(patterns)}") + "\n")
    for result in results:
        out.writelines(line + "\n" for line in _stats_lines(result))
    return 0


def _stats_lines(result: Json) -> list[str]:
    name = visible(result["key"]) + (visible(f"  (= {', '.join(result['aliases'])})") if result["aliases"] else "")
    if "error" in result:
        return [f"{name}", f"  no values: {visible(result['error'])}"]
    s = result["stats"]
    shape = "×".join(map(str, s["shape"])) or "scalar"
    lines = [f"{name}  [{shape}] {s['dtype']}" + ("  (statistics of |x|)" if s.get("magnitude") else "")]
    if s["numel"] == 0:
        return [*lines, "  empty"]
    lines.append(f"  min {_num(s['min'])}  max {_num(s['max'])}  mean {_num(s['mean'])}  std {_num(s['std'])}  "
                 f"L2 {_num(s['l2'])}")
    lines.append(f"  zeros {s['zeros']:,}  NaN {s['nan']:,}  +inf {s['posinf']:,}  -inf {s['neginf']:,}  "
                 f"of {s['numel']:,}")
    if "histogram" in s:
        h = s["histogram"]
        lines.append(f"  histogram {_num(h['min'])} {_spark(h['counts'])} {_num(h['max'])}")
    elif "values" in s:
        lines.append("  values " + ", ".join(f"{_num(v)}: {c:,}" for v, c in s["values"]))
    return lines


def _num(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    a = abs(value)
    return f"{value:.4e}" if a != 0 and (a >= 1e5 or a < 1e-4) else f"{value:.6g}"


def _spark(counts: list[int]) -> str:
    most = max(counts) or 1
    return "".join(" " if c == 0 else _SPARK[min(len(_SPARK) - 1, math.ceil(c / most * len(_SPARK)) - 1)]
                   for c in counts)


# ----------------------------------------------------------------------------- scan


def run_scan(file: str, as_json: bool, limits: Limits, out: TextIO, err: TextIO) -> int:
    read = _read(file, limits, err)
    if read is None:
        return 1
    checkpoint, size, mtime = read
    entries = located_tensors(checkpoint, size, mtime)
    with contextlib.suppress(EngineError):
        engine_for("float32")  # import torch (or numpy) now: the time reported is the scan's
    report = asyncio.run(jobs.scan(checkpoint.file, entries, _ask_here, _progress_line(err)))
    _end_progress(err)
    if as_json:
        out.write(json.dumps(report.to_json(), separators=(",", ":")) + "\n")
    else:
        out.writelines(line + "\n" for line in scan_lines(report.to_json()))
    return SCAN_FOUND_EXIT if any(t["severity"] == "error" for t in report.bad) else 0


def scan_lines(report: Json) -> list[str]:
    lines = [visible(f"{report['file']}: scanned {report['scanned']:,} of {report['total']:,} tensors "
                     f"({format_bytes(report['bytes'])}, {report['elements']:,} elements) in "
                     f"{report['seconds']:.2f} s")]
    bad = report["bad"]
    if not bad:
        lines.append("  no tensor has NaN, inf, extreme values or is all zero")
    else:
        lines.append(f"  {len(bad):,} bad {'tensor' if len(bad) == 1 else 'tensors'}:")
        for tensor in bad:
            shape = "×".join(map(str, tensor["shape"])) or "scalar"
            also = f" (= {', '.join(tensor['aliases'])})" if tensor["aliases"] else ""
            lines.append(visible(f"  {tensor['severity'].upper():<8}{tensor['key']}{also}  [{shape}] {tensor['dtype']}"))
            lines.extend(f"            {f['kind']}: {f['message']}" for f in tensor["findings"])
    for item in report["unreadable"]:
        lines.append(visible(f"  not read: {item['key']}: {item['message']}"))
    return lines


# ----------------------------------------------------------------------------- diff


def run_diff(file_a: str, file_b: str, values: bool, as_json: bool, limits: Limits, out: TextIO, err: TextIO) -> int:
    sides = []
    for file in (file_a, file_b):
        read = _read(file, limits, err)
        if read is None:
            return 1
        sides.append(diff_entries(*read, with_bytes=values))
    diff = StructureDiff(*sides)
    if values:
        asyncio.run(jobs.diff_values(diff, _ask_here, _progress_line(err)))
        _end_progress(err)
    payload = diff.to_json()
    if as_json:
        out.write(json.dumps(payload, separators=(",", ":")) + "\n")
    else:
        out.writelines(line + "\n" for line in diff_lines(payload))
    return 0


def diff_lines(payload: Json) -> list[str]:
    a, b, s = payload["a"], payload["b"], payload["summary"]
    lines = [visible(f"A  {a['file']}  ({a['format']}, {a['tensors']:,} tensors)"),
             visible(f"B  {b['file']}  ({b['format']}, {b['tensors']:,} tensors)"),
             f"keys       {s['matched']:,} matched, {s['only_a']:,} only in A, {s['only_b']:,} only in B"]
    lines += [visible(f"           {note}") for note in payload["notes"]]
    lines.append(f"structure  {s['shape_changed']:,} shape changes, {s['dtype_changed']:,} dtype changes, "
                 f"{s['grad_changed']:,} requires_grad flips")
    if payload["values"]:
        lines.append(f"values     {s['identical']:,} identical, {s['changed']:,} changed"
                     + (f", {s['value_errors']:,} not read" if s["value_errors"] else "")
                     + f" (of {s['comparable']:,} comparable)")
        lines.append("")
        lines += _module_lines(payload["modules"])
    rows = payload["tensors"]
    for title, status in (("only in A", "only_a"), ("only in B", "only_b")):
        chosen = [r for r in rows if r["status"] == status]
        if chosen:
            lines.append(f"\n{title} ({len(chosen):,}):")
            lines += [visible(f"  {r['key_a'] or r['key_b']}" + (f"  ({r['note']})" if r["note"] else ""))
                      for r in chosen[:50]]
            if len(chosen) > 50:
                lines.append(f"  … {len(chosen) - 50:,} more (--json lists all)")
    changes = [r for r in rows if r["shape_a"] and r["shape_b"] and (r["shape_a"] != r["shape_b"]
                                                                    or r["dtype_a"] != r["dtype_b"] or r["grad_changed"])]
    if changes:
        lines.append(f"\nchanged in structure ({len(changes):,}):")
        for r in changes[:100]:
            parts = []
            if r["shape_a"] != r["shape_b"]:
                parts.append(f"shape {r['shape_a']} → {r['shape_b']}")
            if r["dtype_a"] != r["dtype_b"]:
                parts.append(f"dtype {r['dtype_a']} → {r['dtype_b']}")
            if r["grad_changed"]:
                parts.append(f"requires_grad {r['requires_grad_a']} → {r['requires_grad_b']}")
            lines.append(visible(f"  {r['name']}: {', '.join(parts)}"))
    if payload["values"]:
        changed = [r for r in rows if r["status"] == "changed"]
        if changed:
            lines.append(f"\nchanged values ({len(changed):,}):")
            for r in changed[:100]:
                v = r["values"]
                lines.append(visible(f"  {r['name']}: {v['changed']:,} of {v['numel']:,} elements, max |Δ| "
                                     f"{_num(v['max_abs_diff'])}, ‖Δ‖/‖A‖ {_num(v['rel_change'])}"))
    return lines


def _module_lines(modules: list[Json]) -> list[str]:
    lines = ["modules:"]
    identical = [m["module"] or "(top level)" for m in modules if m["status"] == "identical"]
    for m in modules:
        if m["status"] == "identical":
            continue
        name = m["module"] or "(top level)"
        detail = f"{m['tensors']:,} tensor" + ("" if m["tensors"] == 1 else "s")
        if m["status"] == "changed":
            detail += (f", {m['changed']:,} changed, max |Δ| {_num(m['max_abs_diff'])}, max ‖Δ‖/‖A‖ "
                       f"{_num(m['max_rel_change'])}")
        lines.append(visible(f"  {m['status']:<10} {name}  {detail}"))
    if identical:
        shown = ", ".join(identical[:12]) + (f", … ({len(identical):,} modules)" if len(identical) > 12 else "")
        lines.append(visible(f"  identical  {shown}"))
    return lines


# ----------------------------------------------------------------------------- convert


def run_convert(file: str, out_path: str, everything: bool, force: bool, limits: Limits, out: TextIO,
                err: TextIO) -> int:
    try:
        check_output(file, out_path, force)
    except ConvertError as error:
        err.write(visible(f"pthscope: {error}") + "\n")
        return 1
    read = _read(file, limits, err)
    if read is None:
        return 1
    try:
        plan = convert_plan(*read, everything=everything)
    except ConvertError as error:
        err.write(visible(f"pthscope: {file}: {error}") + "\n")
        return 1
    if plan["errors"]:
        for item in plan["errors"][:20]:
            err.write(visible(f"pthscope: {file}: cannot write {item['key']}: {item['message']}") + "\n")
        err.write("pthscope: nothing written\n")
        return 1
    started = time.perf_counter()
    result = asyncio.run(jobs.convert(plan, out_path, _ask_here, _progress_line(err)))
    _end_progress(err)
    out.writelines(line + "\n" for line in convert_lines(result, time.perf_counter() - started))
    return 0


def convert_lines(result: Json, seconds: float) -> list[str]:
    what = ("the model's parameters and buffers, named as the model names them" if result["model_only"]
            else "every tensor, by its key")
    lines = [visible(f"wrote {result['out']}: {result['tensors']:,} tensors, {format_bytes(result['bytes'])} "
                     f"in {seconds:.2f} s ({what})")]
    for alias, kept in result["aliases"].items():
        lines.append(visible(f"  tied: {alias} is {kept} (stored once; safetensors.torch.load_model ties it again)"))
    if result["left_out"]:
        parts = ", ".join(f"{n:,} {role.replace('_', ' ')}" for role, n in result["left_out"].items())
        lines.append(f"  left out: {parts} tensors" + (" (--all includes them)" if result["model_only"] else ""))
    if result["dropped_count"]:
        shown = ", ".join(f"{d['key']} ({d['what']})" for d in result["dropped"][:10])
        more = f", … ({result['dropped_count']:,} in all)" if result["dropped_count"] > 10 else ""
        lines.append(visible(f"  dropped, not tensors: {shown}{more}"))
    return lines


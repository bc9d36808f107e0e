"""Scanning a checkpoint for bad tensors: the rules, the report, and the marks the views show.

Every distinct view of the file is reduced once (stats.py's first pass, no histogram) and judged
by `findings(partial, dtype, role)`:

| finding | severity | when |
| --- | --- | --- |
| `nan` | error | any NaN |
| `inf` | error | any +inf or −inf |
| `all_zero` | warning | a floating-point tensor of 2+ elements, not a buffer, whose every element is 0 |
| `extreme` | warning | the largest magnitude is over `EXTREME_RATIO` (10⁴) times the typical one — the mean magnitude of the non-zero elements (robust to sparsity; an outlier can pull a mean of magnitudes up by at most 1/n of itself, so it shows) |
| `fp16_overflow` | warning | a float32, float64 or bfloat16 tensor with a magnitude over 65,504, float16's largest: casting it to float16 (`.half()`, fp16 autocast) makes inf |

Complex tensors are judged by their magnitudes; integer and bool tensors only by nothing (counts
and masks are what they are). `ScanReport` collects the findings in file order (a tensor that
could not be read is listed with the reason), `ScanMarks` turns a report into what the tree and
the page show: a mark per bad tensor and, for every dotted prefix of their keys (modules,
groups, containers), how many bad tensors lie below. The server keeps the last report of each
file while the file is unchanged (`ScanResults`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from .locate import Located
from .reduction import Partial

Severity = Literal["error", "warning"]
EXTREME_RATIO = 1e4
FLOAT16_MAX = 65504.0
_FP16_RISK_DTYPES = ("float32", "float64", "bfloat16")
_LABELS = {"nan": "NaN", "inf": "inf", "all_zero": "all zero", "extreme": "extreme values",
           "fp16_overflow": "fp16 overflow"}
FINDING_KINDS = tuple(_LABELS)
_RESULTS_KEPT = 16


def findings(partial: Partial, dtype: str, role: str) -> list[dict[str, Any]]:
    """What is wrong with a tensor's values (the rules above): `{kind, severity, message}` each."""
    out: list[dict[str, Any]] = []
    if partial.kind == "int":
        return out
    if partial.nan:
        out.append(_finding("nan", "error", f"{partial.nan:,} NaN of {partial.numel:,} elements"))
    if partial.posinf or partial.neginf:
        out.append(_finding("inf", "error", f"{partial.posinf:,} +inf and {partial.neginf:,} −inf of "
                            f"{partial.numel:,} elements"))
    if partial.numel > 1 and partial.zeros == partial.numel and role != "buffer":
        out.append(_finding("all_zero", "warning", f"all {partial.numel:,} elements are 0"))
    stats = partial.finish()
    abs_max = stats["abs_max"]
    nonzero = partial.finite - partial.zeros
    if abs_max and nonzero:
        typical = partial.abs_sum / nonzero
        if typical > 0 and abs_max > EXTREME_RATIO * typical:
            out.append(_finding("extreme", "warning", f"largest magnitude {abs_max:.4g} is {abs_max / typical:,.0f}× "
                                f"the typical {typical:.4g} (mean magnitude of the non-zero elements)"))
        if dtype in _FP16_RISK_DTYPES and abs_max > FLOAT16_MAX:
            out.append(_finding("fp16_overflow", "warning", f"magnitudes up to {abs_max:.4g}: casting to float16 "
                                f"(max {FLOAT16_MAX:,.0f}) gives inf"))
    return out


def _finding(kind: str, severity: Severity, message: str) -> dict[str, Any]:
    return {"kind": kind, "severity": severity, "message": message}


def worst(found: list[dict[str, Any]]) -> Severity | None:
    if not found:
        return None
    return "error" if any(f["severity"] == "error" for f in found) else "warning"


@dataclass
class ScanReport:
    """A scan of one file (or what of it was done before it was stopped)."""

    file: str
    total: int  # distinct views to scan
    scanned: int = 0
    elements: int = 0
    bytes: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)  # ScanTensor records, in file order
    unreadable: list[dict[str, str]] = field(default_factory=list)  # {key, message}
    complete: bool = False
    seconds: float = 0.0

    def add(self, entry: Located, partial: Partial | None, error: str | None) -> None:
        """One tensor's reduction (or why there is none)."""
        if partial is None:
            self.unreadable.append({"key": entry.key, "message": error or "unreadable"})
            return
        self.scanned += 1
        self.elements += partial.numel
        self.bytes += entry.nbytes
        found = findings(partial, entry.dtype, entry.role)
        if found:
            stats = partial.finish()
            self.bad.append({
                "key": entry.key, "path": entry.path, "aliases": entry.aliases, "dtype": entry.dtype,
                "shape": entry.shape, "role": entry.role, "severity": worst(found), "findings": found,
                "stats": {name: stats[name] for name in ("min", "max", "mean", "std", "abs_max", "zeros", "nan",
                                                         "posinf", "neginf")},
            })

    def counts(self) -> dict[str, int]:
        """Bad tensors by finding."""
        out = dict.fromkeys(FINDING_KINDS, 0)
        for tensor in self.bad:
            for found in tensor["findings"]:
                out[found["kind"]] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "complete": self.complete, "total": self.total, "scanned": self.scanned,
                "elements": self.elements, "bytes": self.bytes, "seconds": self.seconds, "counts": self.counts(),
                "bad": self.bad, "unreadable": self.unreadable,
                "thresholds": {"extreme_ratio": EXTREME_RATIO, "float16_max": FLOAT16_MAX}}

    def summary_json(self) -> dict[str, Any]:
        """The report without its tensors: what a page shows above its table."""
        errors = sum(1 for t in self.bad if t["severity"] == "error")
        return {"complete": self.complete, "total": self.total, "scanned": self.scanned, "counts": self.counts(),
                "bad": len(self.bad), "errors": errors, "warnings": len(self.bad) - errors,
                "unreadable": len(self.unreadable)}


class ScanMarks:
    """A report as marks: per bad tensor key, and per dotted prefix the bad tensors below it."""

    def __init__(self, report: ScanReport) -> None:
        self.report = report
        self.by_key: dict[str, dict[str, Any]] = {}
        below: dict[str, list[int]] = {}  # prefix → [errors, warnings]
        for tensor in report.bad:
            mark = {"severity": tensor["severity"], "label": ", ".join(_LABELS[f["kind"]] for f in tensor["findings"]),
                    "tensors": 1}
            for key in (tensor["key"], *tensor["aliases"]):
                self.by_key[key] = mark
                parts = key.split(".")
                for n in range(len(parts)):
                    tally = below.setdefault(".".join(parts[:n]), [0, 0])
                    tally[0 if tensor["severity"] == "error" else 1] += 1
        self.below = below

    def for_node(self, key: str, is_tensor: bool) -> dict[str, Any] | None:
        """The mark of a tree node (a tensor's own, or its subtree's), or None."""
        if is_tensor:
            return self.by_key.get(key)
        tally = self.below.get(key)
        if tally is None:
            return None
        errors, warnings = tally
        count = errors + warnings
        noun = "tensor" if count == 1 else "tensors"
        label = f"{count:,} bad {noun}" if not errors or not warnings else f"{errors:,} with NaN/inf, {warnings:,} suspect"
        return {"severity": "error" if errors else "warning", "label": label, "tensors": count}

    def annotate(self, nodes: list[dict[str, Any]]) -> None:
        """Put each NodeSummary's mark in it (`scan`)."""
        for node in nodes:
            mark = self.for_node(node["key"], "tensor" in node)
            if mark is not None:
                node["scan"] = mark


class ScanResults:
    """The last scan of each recently scanned file, while the file keeps its size and mtime."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[tuple[int, int], ScanMarks]] = OrderedDict()

    def keep(self, file: str, stamp: tuple[int, int], report: ScanReport) -> None:
        self._kept[file] = (stamp, ScanMarks(report))
        self._kept.move_to_end(file)
        while len(self._kept) > _RESULTS_KEPT:
            self._kept.popitem(last=False)

    def marks(self, file: str, stamp: tuple[int, int]) -> ScanMarks | None:
        kept = self._kept.get(file)
        if kept is None or kept[0] != stamp:
            return None
        return kept[1]

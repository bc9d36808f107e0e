"""Comparing two checkpoints: which tensors match, what changed in structure, and in values.

`diff_entries(checkpoint, size, mtime_ns, with_bytes)` (the structure worker's part) names each
tensor of a file as its model names it: a model parameter or buffer by its model-relative key
(`fc.weight` for `model.fc.weight` in a training dict, for `module.fc.weight` under
DataParallel, for `_orig_mod.fc.weight` after torch.compile, and for the `fc` module's weight in a
whole-model pickle — roles.py decides which tensors are the model's), every other tensor by its
key; a file with several models (a GAN) keeps full keys. `StructureDiff(a, b)` then matches the
two lists, first stripping a leading `module.`, `_orig_mod.`, `model.` or `state_dict.` (or two
of them) from one side or both when that matches more keys, and reports per tensor: only in A,
only in B, shape or dtype changed, `requires_grad` flipped (when both files store it) — from
metadata only. With values, each matched pair of the same shape is compared in the values worker
(`diff_tensors`): bit for bit first (frozen layers cost one read of each), then, if anything
differs, the number of changed elements, max |Δ|, ‖Δ‖ and ‖A‖ (relative change ‖Δ‖/‖A‖), a
chunk at a time. `StructureDiff.to_json()` also sums every module (the key's parent): what a
fine-tune touched, and that frozen layers did not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..reader.dtypes import itemsize
from ..reader.model import Checkpoint
from ..reader.roles import model_name, model_of
from .engines import CHUNK_ELEMENTS, DiffPartial, engine_for
from .reading import OpenFiles, ValuesError, check_readable, mapped_chunks, open_tensor
from .stats import TensorBytes, tensor_bytes

STRIPPABLE = ("module.", "_orig_mod.", "model.", "state_dict.")
_PREFIX_SHARE = 0.5  # a prefix is tried when at least half a file's names start with it


@dataclass
class Entry:
    """One tensor of one file, as the diff sees it."""

    name: str  # what it is matched by
    key: str
    role: str
    dtype: str
    shape: list[int]
    requires_grad: bool | None  # None: the file does not store it (a plain tensor)
    persistent: bool
    bytes: TensorBytes | None = None
    error: str | None = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * itemsize(self.dtype)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "role": self.role, "dtype": self.dtype, "shape": self.shape,
                "requires_grad": self.requires_grad, "persistent": self.persistent,
                "bytes": self.bytes.to_json() if self.bytes else None, "error": self.error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        raw = data["bytes"]
        return cls(data["name"], data["key"], data["role"], data["dtype"], data["shape"], data["requires_grad"],
                   data["persistent"], TensorBytes.from_json(raw) if raw else None, data["error"])


def diff_entries(checkpoint: Checkpoint, size: int, mtime_ns: int, with_bytes: bool) -> dict[str, Any]:
    """The file's tensors named for matching (the module docstring says how), with, when values
    are to be compared, where each one's bytes are."""
    models = [m for m in checkpoint.models if not m.ema]
    single = len(models) == 1
    entries: list[Entry] = []
    seen: set[str] = set()
    for tensor in checkpoint.tensors:
        name = tensor.key
        if single and tensor.role in ("parameter", "buffer"):
            model = model_of(checkpoint.models, tensor.path)
            if model is not None and not model.ema:
                name = model_name(model, tensor.path)
        if name in seen:  # a model name that another tensor's key already uses
            name = tensor.key
        seen.add(name)
        entry = Entry(name, tensor.key, tensor.role, tensor.dtype, tensor.shape,
                      tensor.requires_grad if tensor.kind == "parameter" else None, tensor.persistent)
        if with_bytes:
            located = tensor_bytes(checkpoint, tensor, size, mtime_ns)
            try:
                check_readable(located)
                entry.bytes = located
            except ValuesError as why:
                entry.error = str(why)
        entries.append(entry)
    return {"file": checkpoint.file, "format": checkpoint.format, "tensors": [e.to_json() for e in entries],
            "errors": [e.message for e in checkpoint.errors], "models": [m.key for m in models]}


def _prefixes(names: list[str]) -> list[str]:
    """"" and the strippable prefixes (one or two of them) that at least half of `names` start with."""
    found = [""]
    if not names:
        return found
    need = len(names) * _PREFIX_SHARE
    for first in STRIPPABLE:
        if sum(n.startswith(first) for n in names) >= need:
            found.append(first)
            for second in STRIPPABLE:
                both = first + second
                if sum(n.startswith(both) for n in names) >= need:
                    found.append(both)
    return found


def _stripped(names: list[str], prefix: str) -> list[str] | None:
    """`names` with `prefix` taken off those that have it; None if two names would then collide."""
    if not prefix:
        return names
    out = [n[len(prefix):] if n.startswith(prefix) and len(n) > len(prefix) else n for n in names]
    return out if len(set(out)) == len(out) else None


@dataclass
class Row:
    """One tensor name of the comparison: the tensor in A, in B, or both."""

    name: str
    a: Entry | None
    b: Entry | None
    values: dict[str, Any] | None = None  # the value comparison, once done
    value_error: str | None = None

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else ""

    @property
    def shape_changed(self) -> bool:
        return self.a is not None and self.b is not None and self.a.shape != self.b.shape

    @property
    def dtype_changed(self) -> bool:
        return self.a is not None and self.b is not None and self.a.dtype != self.b.dtype

    @property
    def grad_changed(self) -> bool:
        a, b = self.a, self.b
        return (a is not None and b is not None and a.requires_grad is not None and b.requires_grad is not None
                and a.requires_grad != b.requires_grad)

    @property
    def comparable(self) -> bool:
        """Whether the values can be compared: both read, the same shape."""
        return (self.a is not None and self.b is not None and not self.shape_changed
                and self.a.bytes is not None and self.b.bytes is not None)

    @property
    def status(self) -> str:
        if self.b is None:
            return "only_a"
        if self.a is None:
            return "only_b"
        if self.shape_changed:
            return "shape"
        if self.values is not None:
            return "identical" if self.values["identical"] else "changed"
        if self.value_error is not None:
            return "error"
        if self.dtype_changed:
            return "dtype"
        return "matched"

    def to_json(self) -> dict[str, Any]:
        a, b = self.a, self.b
        either = a or b
        return {"name": self.name, "module": self.module, "status": self.status,
                "key_a": a.key if a else None, "key_b": b.key if b else None,
                "role": either.role if either else "other",
                "shape_a": a.shape if a else None, "shape_b": b.shape if b else None,
                "dtype_a": a.dtype if a else None, "dtype_b": b.dtype if b else None,
                "requires_grad_a": a.requires_grad if a else None, "requires_grad_b": b.requires_grad if b else None,
                "grad_changed": self.grad_changed, "values": self.values, "value_error": self.value_error,
                "note": _note(self)}


def _note(row: Row) -> str | None:
    lone = row.a if row.b is None else row.b if row.a is None else None
    if lone is not None and not lone.persistent:
        return "a non-persistent buffer: state_dict() leaves it out"
    if row.comparable or row.a is None or row.b is None:
        return None
    if row.shape_changed:
        return None
    return row.a.error or row.b.error or None


class StructureDiff:
    """Two files' tensors matched by name; value results are added as they come."""

    def __init__(self, a: dict[str, Any], b: dict[str, Any]) -> None:
        self.a, self.b = a, b
        a_entries = [Entry.from_json(e) for e in a["tensors"]]
        b_entries = [Entry.from_json(e) for e in b["tensors"]]
        a_names, b_names, self.stripped = _best_names([e.name for e in a_entries], [e.name for e in b_entries])
        by_b = dict(zip(b_names, b_entries, strict=True))
        self.rows: list[Row] = []
        matched: set[str] = set()
        for name, entry in zip(a_names, a_entries, strict=True):
            other = by_b.get(name)
            if other is not None:
                matched.add(name)
            self.rows.append(Row(name, entry, other))
        self.rows += [Row(name, None, entry) for name, entry in zip(b_names, b_entries, strict=True)
                      if name not in matched]
        self.values_requested = False
        self.complete = True

    def pairs(self) -> list[Row]:
        """The rows whose values can be compared, in A's file order."""
        return [row for row in self.rows if row.comparable]

    def add_values(self, row: Row, result: dict[str, Any]) -> None:
        if "error" in result:
            row.value_error = result["error"]
        else:
            row.values = result

    def summary(self) -> dict[str, Any]:
        status: dict[str, int] = {}
        for row in self.rows:
            status[row.status] = status.get(row.status, 0) + 1
        return {
            "matched": sum(1 for r in self.rows if r.a is not None and r.b is not None),
            "only_a": status.get("only_a", 0), "only_b": status.get("only_b", 0),
            "shape_changed": sum(r.shape_changed for r in self.rows),
            "dtype_changed": sum(r.dtype_changed for r in self.rows),
            "grad_changed": sum(r.grad_changed for r in self.rows),
            "identical": status.get("identical", 0), "changed": status.get("changed", 0),
            "value_errors": status.get("error", 0),
            "compared": sum(1 for r in self.rows if r.values is not None),
            "comparable": len(self.pairs()),
        }

    def modules(self) -> list[dict[str, Any]]:
        """One row per module (a tensor name's parent), in first-seen order."""
        found: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            m = found.get(row.module)
            if m is None:
                m = found[row.module] = {
                    "module": row.module, "tensors": 0, "only_a": 0, "only_b": 0, "shape_changed": 0,
                    "dtype_changed": 0, "grad_changed": 0, "identical": 0, "changed": 0, "not_compared": 0,
                    "max_abs_diff": None, "max_rel_change": None}
            m["tensors"] += 1
            s = row.status
            if s in ("only_a", "only_b", "identical", "changed"):
                m[s] += 1
            else:
                m["not_compared"] += 1
            m["shape_changed"] += row.shape_changed
            m["dtype_changed"] += row.dtype_changed
            m["grad_changed"] += row.grad_changed
            if row.values is not None and not row.values["identical"]:
                m["max_abs_diff"] = _largest(m["max_abs_diff"], row.values["max_abs_diff"])
                m["max_rel_change"] = _largest(m["max_rel_change"], row.values["rel_change"])
        for m in found.values():
            m["status"] = _module_status(m)
        return list(found.values())

    def to_json(self) -> dict[str, Any]:
        notes = []
        for side, prefix in zip("AB", self.stripped, strict=True):
            if prefix:
                notes.append(f"{side}'s keys are matched without their leading {prefix!r}")
        return {
            "a": _side(self.a), "b": _side(self.b), "values": self.values_requested, "complete": self.complete,
            "stripped": list(self.stripped), "notes": notes, "summary": self.summary(),
            "modules": self.modules(), "tensors": [row.to_json() for row in self.rows],
        }


def _side(data: dict[str, Any]) -> dict[str, Any]:
    return {"file": data["file"], "format": data["format"], "tensors": len(data["tensors"]), "models": data["models"],
            "errors": data["errors"]}


def _best_names(a: list[str], b: list[str]) -> tuple[list[str], list[str], tuple[str, str]]:
    """Both sides' names after the prefix stripping that matches the most (ties: strip less)."""
    best: tuple[int, int, list[str], list[str], tuple[str, str]] | None = None
    for pa in _prefixes(a):
        names_a = _stripped(a, pa)
        if names_a is None:
            continue
        set_a = set(names_a)
        for pb in _prefixes(b):
            names_b = _stripped(b, pb)
            if names_b is None:
                continue
            score = (len(set_a.intersection(names_b)), -len(pa) - len(pb))
            if best is None or score > best[:2]:
                best = (*score, names_a, names_b, (pa, pb))
    assert best is not None  # "" is always a candidate
    return best[2], best[3], best[4]


def _largest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _module_status(m: dict[str, Any]) -> str:
    if m["only_a"] == m["tensors"]:
        return "only_a"
    if m["only_b"] == m["tensors"]:
        return "only_b"
    if m["only_a"] or m["only_b"] or m["shape_changed"] or m["dtype_changed"] or m["grad_changed"]:
        return "structure"
    if m["changed"]:
        return "changed"
    if m["identical"] == m["tensors"]:
        return "identical"
    return "matched"


def diff_tensors(a: TensorBytes, b: TensorBytes, engine_name: str | None = None, files: OpenFiles | None = None
                 ) -> dict[str, Any]:
    """How B's values differ from A's (the values worker's part); `{"error"}` when they cannot be read."""
    from .stats import failure_message

    try:
        return _diff_tensors(a, b, engine_name, files)
    except Exception as error:  # noqa: BLE001  (every failure is the user's message)
        return {"error": failure_message(error)}


def _diff_tensors(a: TensorBytes, b: TensorBytes, engine_name: str | None, files: OpenFiles | None
                  ) -> dict[str, Any]:
    if a.shape != b.shape:
        raise ValuesError(f"shapes differ: {a.shape} and {b.shape}")
    engine = engine_for(a.dtype, engine_name)
    if b.dtype != a.dtype:
        engine_for(b.dtype, engine.name)
    numel = math.prod(a.shape)
    with open_tensor(a, files) as ta, open_tensor(b, files) as tb:

        def chunk_pairs() -> Any:
            for shape, [(da, sa), (db, sb)] in mapped_chunks([ta, tb], CHUNK_ELEMENTS):
                xa = engine.array(da, a.dtype, list(shape), list(sa))
                xb = engine.array(db, b.dtype, list(shape), list(sb))
                yield xa, xb
                del xa, xb

        if a.dtype == b.dtype and all(engine.same_bits(xa, xb) for xa, xb in chunk_pairs()):
            return {"identical": True, "numel": numel, "changed": 0, "nonfinite": 0, "max_abs_diff": 0.0,
                    "l2_diff": 0.0, "l2_a": None, "rel_change": 0.0}
        total = DiffPartial()
        for xa, xb in chunk_pairs():
            total = total.merge(engine.difference(xa, a.dtype, xb, b.dtype))
    l2_diff, l2_a = math.sqrt(total.sq_diff), math.sqrt(total.sq_a)
    rel = l2_diff / l2_a if l2_a > 0 else (0.0 if l2_diff == 0 else None)
    return {"identical": total.changed == 0 and total.nonfinite == 0 and a.dtype == b.dtype, "numel": numel,
            "changed": total.changed, "nonfinite": total.nonfinite, "max_abs_diff": total.max_abs,
            "l2_diff": l2_diff, "l2_a": l2_a, "rel_change": rel}


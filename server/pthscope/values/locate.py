"""Which tensors of a parsed file to read, and where their bytes are: the structure worker's part.

Scans, module statistics, diffs and conversions all start here, in the process that holds the
parsed `Checkpoint`: `located_tensors(checkpoint, size, mtime_ns, indices)` gives each distinct
view once (a tied weight — the same storage, offset, shape, stride and dtype, reader/counts.py —
is read once and carries all its keys) with its `TensorBytes` (stats.py), role and path, or why
its values cannot be read. `tensors_under(index, path)` says which tensors a node of the tree
holds (groups included). Nothing here reads tensor bytes. When a tensor's bytes live in another
file (a shard), `tensor_bytes` says so; everything downstream reads the file a `TensorBytes`
names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..reader.model import Checkpoint, PathElement
from .reading import ValuesError, check_readable
from .stats import TensorBytes, tensor_bytes

if TYPE_CHECKING:
    from ..worker.index import CheckpointIndex

# A batch of tensors for one values-worker request: small enough to report progress often and to
# stay well inside the worker's time limit (about 0.3 s of reading per batch on one core).
BATCH_BYTES = 256 << 20
BATCH_TENSORS = 512


@dataclass
class Located:
    """One distinct view of a file: the keys that name it, its role, where its bytes are."""

    key: str
    path: list[PathElement]
    role: str
    dtype: str
    shape: list[int]
    nbytes: int
    bytes: TensorBytes | None  # None: its values cannot be read (`error` says why)
    error: str | None = None
    aliases: list[str] = field(default_factory=list)  # other keys of the same view (tied weights)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "role": self.role, "dtype": self.dtype, "shape": self.shape,
                "nbytes": self.nbytes, "bytes": self.bytes.to_json() if self.bytes else None, "error": self.error,
                "aliases": self.aliases}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Located:
        raw = data["bytes"]
        return cls(data["key"], data["path"], data["role"], data["dtype"], data["shape"], data["nbytes"],
                   TensorBytes.from_json(raw) if raw else None, data["error"], data["aliases"])


def located_tensors(checkpoint: Checkpoint, size: int, mtime_ns: int, indices: Iterable[int] | None = None
                    ) -> list[Located]:
    """The distinct views among the tensors at `indices` (default: all), in file order."""
    tensors = checkpoint.tensors
    chosen = range(len(tensors)) if indices is None else sorted(set(indices))
    out: list[Located] = []
    by_first: dict[int, Located] = {}
    for index in chosen:
        tensor = tensors[index]
        first = checkpoint.tied_views.get(index, index)
        known = by_first.get(first)
        if known is not None:
            known.aliases.append(tensor.key)
            continue
        located_bytes: TensorBytes | None = tensor_bytes(checkpoint, tensor, size, mtime_ns)
        error = None
        try:
            check_readable(located_bytes)  # type: ignore[arg-type]
        except ValuesError as why:
            located_bytes, error = None, str(why)
        entry = Located(tensor.key, tensor.path, tensor.role, tensor.dtype, tensor.shape, tensor.nbytes,
                        located_bytes, error)
        by_first[first] = entry
        out.append(entry)
    return out


def tensors_under(index: CheckpointIndex, path: Sequence[PathElement]) -> list[int]:
    """Indices of the tensors in the subtree at `path` (as the tree shows it, groups included)."""
    found: list[int] = []
    stack = [index.node(path)]
    while stack:
        node = stack.pop()
        if node.tensor is not None:
            found.append(node.tensor)
        stack.extend(index.children_of(node))
    return found


def batches(entries: Sequence[Located]) -> list[list[Located]]:
    """Readable entries in file order, cut into batches of at most BATCH_BYTES or BATCH_TENSORS."""
    out: list[list[Located]] = []
    current: list[Located] = []
    weight = 0
    for entry in entries:
        if entry.bytes is None:
            continue
        if current and (weight + entry.nbytes > BATCH_BYTES or len(current) >= BATCH_TENSORS):
            out.append(current)
            current, weight = [], 0
        current.append(entry)
        weight += entry.nbytes
    if current:
        out.append(current)
    return out

"""The value requests the two workers answer (worker/process.py dispatches them here).

The structure worker, which holds parsed files, answers metadata questions for them:

| method | params | result |
| --- | --- | --- |
| `locate_all` | `{file, path?}` | `{tensors: Located[]}` — each distinct view (of the subtree at `path`), where its bytes are |
| `diff_entries` | `{file, values}` | the file's tensors named for a diff (diff.py), with their bytes when `values` |
| `convert_plan` | `{file, all}` | what a safetensors conversion writes (convert.py), or `{error}` |

The values worker, which is stateless, reads bytes where it is told to:

| method | params | result |
| --- | --- | --- |
| `stats` | `TensorBytes` | `{stats}` or `{error}` (stats.py) |
| `reduce` | `{tensors: TensorBytes[]}` | `{results: ({partial} \\| {error})[]}` — one pass each, no histogram |
| `histogram` | `{tensors, min, max, finite_only}` | `{counts}` — their finite values binned together |
| `value_counts` | `{tensors, min, count}` | `{counts}` — integers counted value by value |
| `diff` | `{pairs: [TensorBytes, TensorBytes][]}` | `{results: (values \\| {error})[]}` (diff.py) |
| `write` | `{out, at, head?, tensors}` | `{bytes}` — tensors copied into a conversion's output (convert.py) |
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .convert import ConvertError, convert_plan, write_tensors
from .diff import diff_entries, diff_tensors
from .engines import engine_for
from .locate import located_tensors, tensors_under
from .reading import OpenFiles, open_tensor
from .stats import (
    HISTOGRAM_BINS,
    TensorBytes,
    failure_message,
    histogram_opened,
    reduce_opened,
    value_counts_opened,
)

if TYPE_CHECKING:
    from ..worker.index import CheckpointIndex

Json = dict[str, Any]


def _locate_all(index: CheckpointIndex, params: Json) -> Json:
    under = tensors_under(index, params["path"]) if params.get("path") is not None else None
    located = located_tensors(index.checkpoint, index.size, index.mtime_ns, under)
    return {"tensors": [entry.to_json() for entry in located]}


def _diff_entries(index: CheckpointIndex, params: Json) -> Json:
    return diff_entries(index.checkpoint, index.size, index.mtime_ns, bool(params.get("values")))


def _convert_plan(index: CheckpointIndex, params: Json) -> Json:
    try:
        return convert_plan(index.checkpoint, index.size, index.mtime_ns, bool(params.get("all")))
    except ConvertError as error:
        return {"error": str(error)}


STRUCTURE_REQUESTS: dict[str, Callable[[CheckpointIndex, Json], Json]] = {
    "locate_all": _locate_all,
    "diff_entries": _diff_entries,
    "convert_plan": _convert_plan,
}


def reduce_tensor(tensor: TensorBytes, files: OpenFiles | None = None) -> Json:
    """`{"partial"}` of one tensor's values (one pass), or `{"error"}`."""
    try:
        with open_tensor(tensor, files) as opened:
            return {"partial": reduce_opened(opened, engine_for(tensor.dtype)).to_json()}
    except Exception as error:  # noqa: BLE001  (every failure is the user's message)
        return {"error": failure_message(error)}


def _reduce(params: Json) -> Json:
    with OpenFiles() as files:
        return {"results": [reduce_tensor(TensorBytes.from_json(t), files) for t in params["tensors"]]}


def _histogram(params: Json) -> Json:
    return _summed(params["tensors"], HISTOGRAM_BINS, lambda opened, engine: histogram_opened(
        opened, engine, params["min"], params["max"], params["finite_only"]))


def _value_counts(params: Json) -> Json:
    return _summed(params["tensors"], params["count"], lambda opened, engine: value_counts_opened(
        opened, engine, params["min"], params["count"]))


def _summed(tensors: list[Json], length: int, count: Callable[[Any, Any], list[int]]) -> Json:
    """`{"counts"}` added up over the tensors, or `{"error"}` naming the first that failed."""
    counts = [0] * length
    with OpenFiles() as files:
        for raw in tensors:
            tensor = TensorBytes.from_json(raw)
            try:
                with open_tensor(tensor, files) as opened:
                    found = count(opened, engine_for(tensor.dtype))
            except Exception as error:  # noqa: BLE001  (every failure is the user's message)
                return {"error": f"{tensor.key}: {failure_message(error)}"}
            counts = [a + b for a, b in zip(counts, found, strict=True)]
    return {"counts": counts}


def _diff(params: Json) -> Json:
    with OpenFiles() as files:
        return {"results": [diff_tensors(TensorBytes.from_json(a), TensorBytes.from_json(b), files=files)
                            for a, b in params["pairs"]]}


def _write(params: Json) -> Json:
    head = base64.b64decode(params["head"]) if params.get("head") is not None else None
    tensors = [TensorBytes.from_json(t) for t in params["tensors"]]
    return {"bytes": write_tensors(params["out"], params["at"], tensors, head)}


VALUES_REQUESTS: dict[str, Callable[[Json], Json]] = {
    "reduce": _reduce,
    "histogram": _histogram,
    "value_counts": _value_counts,
    "diff": _diff,
    "write": _write,
}

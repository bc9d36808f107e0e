"""Statistics of one tensor, from its own bytes only (memory-mapped, read-only, a chunk at a time).

The structure worker, which keeps what the reader parsed, says where the tensor's bytes are
(`tensor_bytes`: the storage's place the reader recorded, the tensor's view of it, the file's
size and mtime then); the values worker computes from that alone (`tensor_stats`), without
reading the pickle again. reading.py checks and maps the bytes piece by piece; engines.py reduces
each piece with torch when it is importable (every dtype, bfloat16 and float8 included), else
numpy; reduction.py adds the pieces up. Every element is read — nothing is sampled — in two
passes: the statistics, then the histogram over their range. Memory stays bounded (a few
buffers of `CHUNK_ELEMENTS`), whatever the tensor's size.

`tensor_stats` returns every failure as a value, `{"error": "..."}`, never an exception. With
the statistics come the tensor's first `FIRST_VALUES` values as they are (`first_values`, in
row-major order: all of a scalar or a small tensor), read from its first bytes only.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..reader.model import Checkpoint, PathElement, TensorInfo
from ..reader.storage_place import storage_place
from .engines import CHUNK_ELEMENTS, Engine, EngineError, engine_for
from .reading import OpenedTensor, OpenFiles, ValuesError, mapped_chunks, open_tensor
from .reduction import Partial, few_values, histogram_range, merge_all, value_kind

FIRST_VALUES = 100  # shown as they are next to the statistics
HISTOGRAM_BINS = 20
StatsError = ValuesError  # the name callers know


@dataclass(frozen=True)
class TensorBytes:
    """Where one tensor's values are and how to read them: all the values worker is told."""

    file: str
    size: int  # the file's size and mtime when it was parsed: a changed file is not read
    mtime_ns: int
    format: str
    byteorder: str
    key: str
    dtype: str
    shape: list[int]
    stride: list[int]
    storage_offset: int  # elements
    layout: str
    location: str  # the device it was saved from
    storage: str
    storage_start: int | None  # byte offset (a zip member's local header for torch-zip); None: missing
    storage_nbytes: int | None
    unreadable: str = ""  # why there are no values to read (a sharded tensor's global view), if so

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _TENSOR_BYTES_FIELDS}  # asdict deep-copies: 10x slower

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorBytes:
        return cls(**data)


_TENSOR_BYTES_FIELDS = tuple(f.name for f in fields(TensorBytes))


def tensor_bytes(checkpoint: Checkpoint, tensor: TensorInfo, size: int, mtime_ns: int) -> TensorBytes:
    """Where a tensor of a parsed file is; `size` and `mtime_ns` are the file's when parsed. In a
    checkpoint of several files, the file is the tensor's part (reader/storage_place.py)."""
    place = storage_place(checkpoint, tensor, size, mtime_ns)
    return TensorBytes(
        place.file, place.size, place.mtime_ns, place.format, place.byteorder,
        tensor.key, tensor.dtype, tensor.shape, place.stride, place.storage_offset, tensor.layout, tensor.location,
        tensor.storage, place.storage_start, place.storage_nbytes, place.unreadable)


def find_tensor(checkpoint: Checkpoint, path: Sequence[PathElement] | str) -> TensorInfo:
    """The tensor at `path` (its path list, or its dotted key)."""
    for t in checkpoint.tensors:
        if (t.key == path) if isinstance(path, str) else (t.path == list(path)):
            return t
    why = f": {checkpoint.errors[0].message}" if checkpoint.errors else ""
    raise StatsError(f"no tensor at {path if isinstance(path, str) else list(path)} in {checkpoint.file}{why}")


def tensor_stats(tensor: TensorBytes, engine: str | None = None, histogram: bool = True,
                 files: OpenFiles | None = None) -> dict[str, Any]:
    """`{"stats": {...}}` for the tensor (docs/protocol.md, `TensorStats`), or `{"error": message}`.
    `engine` forces "torch" or "numpy" (tests); default: the best one. `files` keeps files open
    across calls."""
    try:
        return {"stats": _tensor_stats(tensor, engine, histogram, files)}
    except Exception as error:  # noqa: BLE001  (every failure is the user's message)
        return {"error": failure_message(error)}


def failure_message(error: BaseException) -> str:
    """What to tell the user when reading values failed."""
    if isinstance(error, (ValuesError, EngineError)):
        return str(error)
    if isinstance(error, MemoryError):
        return "not enough memory to read this tensor's values"
    return f"pthscope failed while reading this tensor ({type(error).__name__}: {error})"


def _tensor_stats(tensor: TensorBytes, engine_name: str | None, histogram: bool, files: OpenFiles | None
                  ) -> dict[str, Any]:
    engine = engine_for(tensor.dtype, engine_name)
    numel = math.prod(tensor.shape)
    out: dict[str, Any] = {"key": tensor.key, "dtype": tensor.dtype, "shape": tensor.shape, "numel": numel,
                           "engine": engine.name, "sampled": False, "sample_size": numel}
    if value_kind(tensor.dtype) == "complex":
        out["magnitude"] = True  # the statistics are of |x|
    with open_tensor(tensor, files) as opened:
        if numel == 0:
            return out
        partial = reduce_opened(opened, engine)
        out.update(partial.finish())
        out["first_values"] = first_values(opened, engine)
        if histogram:
            request = histogram_request(partial)
            counts: list[int] = []
            if request is not None and request[0] == "value_counts":
                counts = value_counts_opened(opened, engine, request[1]["min"], request[1]["count"])
            elif request is not None:
                counts = histogram_opened(opened, engine, request[1]["min"], request[1]["max"],
                                          request[1]["finite_only"])
            out.update(histogram_payload(partial, request, counts))
    return out


def histogram_request(partial: Partial) -> tuple[str, dict[str, Any]] | None:
    """What the histogram pass counts, over the finite values: ("value_counts", {min, count}) for
    integers with few distinct values, ("histogram", {min, max, finite_only}) for the rest; None
    when there is nothing to count (no finite value, or just one value: `histogram_payload`)."""
    found = histogram_range(partial)
    if found is None:
        return None
    lo, hi = found
    if few_values(partial, HISTOGRAM_BINS):
        low = int(lo)
        return "value_counts", {"min": low, "count": int(hi) - low + 1}
    if lo == hi:
        return None
    return "histogram", {"min": lo, "max": hi, "finite_only": partial.finite < partial.numel}


def histogram_payload(partial: Partial, request: tuple[str, dict[str, Any]] | None, counts: list[int]
                      ) -> dict[str, Any]:
    """`histogram` (floats; integers with many values) or `values` ([value, count] for integers
    with few), from the counts of `histogram_request`'s pass."""
    if request is None:
        found = histogram_range(partial)
        if found is None:
            return {}
        if few_values(partial, HISTOGRAM_BINS):
            return {"values": [[int(found[0]), partial.finite]]}
        return {"histogram": {"min": found[0], "max": found[1], "counts": [partial.finite]}}
    method, params = request
    if method == "value_counts":
        return {"values": [[params["min"] + i, c] for i, c in enumerate(counts) if c]}
    return {"histogram": {"min": params["min"], "max": params["max"], "counts": counts}}


def chunks(opened: OpenedTensor, engine: Engine) -> Iterator[Any]:
    """The tensor's values as arrays of at most CHUNK_ELEMENTS, each mapped only while used."""
    for shape, [(data, stride)] in mapped_chunks([opened], CHUNK_ELEMENTS):
        values = engine.array(data, opened.tensor.dtype, list(shape), list(stride))
        yield values
        del values


def reduce_opened(opened: OpenedTensor, engine: Engine) -> Partial:
    kind = value_kind(opened.tensor.dtype)
    assert kind is not None
    partial = merge_all([engine.reduce(values, opened.tensor.dtype) for values in chunks(opened, engine)], kind)
    partial.tensors = 1
    return partial


def histogram_opened(opened: OpenedTensor, engine: Engine, lo: float, hi: float, finite_only: bool,
                     bins: int = HISTOGRAM_BINS) -> list[int]:
    counts = [0] * bins
    for values in chunks(opened, engine):
        for i, c in enumerate(engine.histogram(values, opened.tensor.dtype, lo, hi, bins, finite_only)):
            counts[i] += c
    return counts


def first_values(opened: OpenedTensor, engine: Engine) -> list[str]:
    """The first FIRST_VALUES values, row-major, as the page shows them (`shown_value`)."""
    found: list[Any] = []
    for shape, [(data, stride)] in mapped_chunks([opened], FIRST_VALUES):
        values = engine.array(data, opened.tensor.dtype, list(shape), list(stride)).reshape(-1)
        if value_kind(opened.tensor.dtype) == "float" and engine.name == "torch":
            values = values.double()  # exact for every float dtype; float8 has no tolist()
        found.extend(values.tolist()[:FIRST_VALUES - len(found)])
        del values
        if len(found) >= FIRST_VALUES:
            break
    return [shown_value(v, opened.tensor.dtype) for v in found]


def shown_value(value: Any, dtype: str) -> str:
    """A value as the page shows it: each float as short as its dtype allows ("0.1" for a
    float32 0.1, not 0.10000000149011612), bools as True/False, non-finite as nan, inf, -inf."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if dtype == "float64":
        return repr(value)
    struct_format = {"float32": "f", "float16": "e"}.get(dtype)
    if struct_format is None:  # bfloat16, float8: 2-3 significant digits are all they have
        return f"{value:.4g}"
    for digits in range(3, 10):  # the shortest text that reads back as the same value
        text = f"{value:.{digits}g}"
        if struct.unpack(struct_format, struct.pack(struct_format, float(text)))[0] == value:
            if "e" in text and 1e-4 <= abs(value) < 1e15:  # 3000, not 3e+03
                text = f"{float(text):f}".rstrip("0").rstrip(".")
            return text
    return repr(value)


def value_counts_opened(opened: OpenedTensor, engine: Engine, lo: int, count: int) -> list[int]:
    counts = [0] * count
    for values in chunks(opened, engine):
        for i, c in enumerate(engine.value_counts(values, opened.tensor.dtype, lo, count)):
            counts[i] += c
    return counts

"""Statistics of one tensor, from its own bytes only (memory-mapped, read-only).

The structure worker, which keeps what the reader parsed, says where the tensor's bytes are
(`tensor_bytes`: the storage's place the reader recorded, the tensor's view of it, the file's
size and mtime then); the values worker computes from that alone (`tensor_stats`), without
reading the pickle again. A torch zip storage is found by its member's local header (the
reader took the member from the central directory, whatever the record prefix), a legacy
storage after its record's 8-byte count, a safetensors one at the data section + begin. Every
byte the tensor views is checked to lie inside its storage and the file; just that range is
mapped, and computed with torch when it is importable (every dtype, bfloat16 and float8
included), else with numpy (no bfloat16 or float8). Tensors over `max_elements` are sampled:
evenly spaced blocks for contiguous tensors, evenly spaced elements for views; the answer says
so (`sampled`, `sample_size`).

`tensor_stats` returns every failure as a value, `{"error": "..."}`, never an exception. With
the statistics come the tensor's first `FIRST_VALUES` values as they are (`first_values`, in
row-major order: all of a scalar or a small tensor), read from its first bytes only.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO, Protocol

from ..reader.dtypes import itemsize
from ..reader.model import Checkpoint, PathElement, TensorInfo, contiguous_stride

DEFAULT_MAX_ELEMENTS = 10_000_000
FIRST_VALUES = 100
HISTOGRAM_BINS = 20
_SAMPLE_BLOCKS = 64
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_READABLE_FORMATS = ("torch-zip", "torch-legacy", "torch-tar", "safetensors")

_FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
_FLOATS = ("float64", "float32", "float16", "bfloat16", *_FLOAT8)
_INTS = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool")
# Unsigned types whose reductions torch does not implement: uint16/uint32 are widened to int64;
# uint64 cannot be (values over 2**63), so it needs numpy.
_TORCH_LIMITED = ("uint16", "uint32", "uint64")
_NUMPY_DTYPES = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
                 "int16": "<i2", "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2",
                 "uint8": "u1", "bool": "?"}


class StatsError(Exception):
    """Why the values of a tensor cannot be shown; the message is for the user."""


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorBytes:
        return cls(**data)


def tensor_bytes(checkpoint: Checkpoint, tensor: TensorInfo, size: int, mtime_ns: int) -> TensorBytes:
    """Where a tensor of a parsed file is; `size` and `mtime_ns` are the file's when parsed."""
    return TensorBytes(
        checkpoint.file, size, mtime_ns, checkpoint.format, checkpoint.metadata.get("byteorder", "little"),
        tensor.key, tensor.dtype, tensor.shape, tensor.stride or contiguous_stride(tensor.shape),
        tensor.storage_offset, tensor.layout, tensor.location, tensor.storage,
        checkpoint.storage_offsets.get(tensor.storage), tensor.storage_nbytes)


def find_tensor(checkpoint: Checkpoint, path: Sequence[PathElement] | str) -> TensorInfo:
    """The tensor at `path` (its path list, or its dotted key)."""
    for t in checkpoint.tensors:
        if (t.key == path) if isinstance(path, str) else (t.path == list(path)):
            return t
    why = f": {checkpoint.errors[0].message}" if checkpoint.errors else ""
    raise StatsError(f"no tensor at {path if isinstance(path, str) else list(path)} in {checkpoint.file}{why}")


def tensor_stats(tensor: TensorBytes, max_elements: int = DEFAULT_MAX_ELEMENTS,
                 engine: str | None = None) -> dict[str, Any]:
    """`{"stats": {...}}` for the tensor, or `{"error": message}`. `engine` forces "torch" or
    "numpy" (tests); default: the best one."""
    try:
        return {"stats": _tensor_stats(tensor, max_elements, engine)}
    except StatsError as error:
        return {"error": str(error)}
    except MemoryError:
        return {"error": "not enough memory to compute the statistics of this tensor"}
    except Exception as error:  # a bug here must still end in a message, not a crash
        return {"error": f"pthscope failed while reading this tensor ({type(error).__name__}: {error})"}


def _tensor_stats(tensor: TensorBytes, max_elements: int, engine_name: str | None) -> dict[str, Any]:
    _check_readable(tensor)
    engine = _engine(tensor.dtype, engine_name)
    numel = math.prod(tensor.shape)
    out: dict[str, Any] = {"key": tensor.key, "dtype": tensor.dtype, "shape": tensor.shape, "numel": numel,
                           "engine": engine.name, "sampled": False, "sample_size": numel}
    if numel == 0:
        return out
    with open(tensor.file, "rb") as f:
        st = os.fstat(f.fileno())
        if (st.st_size, st.st_mtime_ns) != (tensor.size, tensor.mtime_ns):
            raise StatsError(f"{tensor.file} changed since it was read; open it again")
        size = st.st_size
        storage_start = _storage_start(tensor, f)
        element = itemsize(tensor.dtype)
        stride = tensor.stride
        if len(stride) != len(tensor.shape) or any(s < 0 for s in stride) or tensor.storage_offset < 0:
            raise StatsError(f"tensor {tensor.key} has an invalid stride {stride} or storage offset "
                             f"{tensor.storage_offset} (the file is corrupt)")
        first = tensor.storage_offset
        end = first + 1 + sum((d - 1) * s for d, s in zip(tensor.shape, stride, strict=True))
        if tensor.storage_nbytes is not None and end * element > tensor.storage_nbytes:
            raise StatsError(f"tensor {tensor.key} views elements {first:,}–{end:,} of {tensor.dtype}, past the "
                             f"end of its {tensor.storage_nbytes:,}-byte storage {tensor.storage} (the file is corrupt)")
        if storage_start < 0 or storage_start + end * element > size:
            raise StatsError(f"tensor {tensor.key} lies at bytes {storage_start + first * element:,}–"
                             f"{storage_start + end * element:,}, past the end of the {size:,}-byte file "
                             "(the file is truncated or corrupt)")
        contiguous = list(stride) == contiguous_stride(tensor.shape)
        if contiguous and numel > max_elements:
            sample = _contiguous_sample(engine, f, storage_start + first * element, numel, tensor.dtype,
                                        max_elements)
            out.update(engine.stats(sample, tensor.dtype), sampled=True, sample_size=max_elements)
            with _mapped(f, storage_start + first * element, min(numel, FIRST_VALUES) * element) as view:
                out["first_values"] = _shown_values(engine.from_bytes(view, tensor.dtype).tolist(), tensor.dtype)
            return out
        with _mapped(f, storage_start + first * element, (end - first) * element) as view:
            values = engine.as_strided(engine.from_bytes(view, tensor.dtype), tensor.shape, stride)
            out["first_values"] = _shown_values(_first_values(values, tensor.shape), tensor.dtype)
            values, taken = _strided_sample(engine, values, max_elements)
            out.update(engine.stats(values, tensor.dtype), sampled=taken < numel, sample_size=taken)
            del values
    return out


def _check_readable(tensor: TensorBytes) -> None:
    if tensor.format not in _READABLE_FORMATS:
        raise StatsError(f"statistics are not supported for tensors of {tensor.format} files")
    if tensor.layout != "strided":
        raise StatsError(f"{tensor.key} is a {tensor.layout} tensor; statistics are shown for plain (strided) "
                         "tensors only")
    if tensor.location == "meta":
        raise StatsError(f"{tensor.key} is a meta tensor: it has no values")
    if tensor.byteorder != "little":
        raise StatsError("the file stores big-endian tensors; statistics need little-endian data")
    if tensor.dtype not in _FLOATS and tensor.dtype not in _INTS:
        raise StatsError(f"statistics of {tensor.dtype} tensors are not supported")


def _storage_start(tensor: TensorBytes, f: BinaryIO) -> int:
    """The storage's first byte in the file."""
    start = tensor.storage_start
    if start is None:
        what = "member" if tensor.format == "torch-zip" else "record"
        raise StatsError(f"storage {tensor.storage} of {tensor.key} is missing: the file has no {what} for it "
                         "(truncated or corrupt)")
    if tensor.format != "torch-zip":
        return start
    f.seek(start)  # the member's local header: its name and extra field come before the data
    header = f.read(30)
    if len(header) < 30 or header[:4] != _ZIP_LOCAL_HEADER:
        raise StatsError(f"the zip entry of storage {tensor.storage} is damaged (no local header at byte {start:,})")
    method, = struct.unpack_from("<H", header, 8)
    if method != 0:
        raise StatsError(f"storage {tensor.storage} is compressed in the zip; torch stores tensors uncompressed")
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return start + 30 + name_len + extra_len


@contextmanager
def _mapped(f: BinaryIO, start: int, length: int) -> Iterator[memoryview]:
    """Bytes [start, start + length) of the file, memory-mapped read-only."""
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(f.fileno(), length + start - aligned, access=mmap.ACCESS_READ, offset=aligned)
    view = memoryview(mapping)[start - aligned:start - aligned + length]
    try:
        yield view
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a tensor still holds it: unmapped when collected
            mapping.close()


def _contiguous_sample(engine: _Engine, f: BinaryIO, start: int, numel: int, dtype: str, count: int) -> Any:
    """`count` elements in evenly spaced blocks: only those bytes are mapped and read."""
    blocks = min(_SAMPLE_BLOCKS, count)
    per_block = count // blocks
    element = itemsize(dtype)
    parts = []
    for i in range(blocks):
        n = per_block if i < blocks - 1 else count - per_block * (blocks - 1)
        at = (numel - n) * i // max(blocks - 1, 1)
        with _mapped(f, start + at * element, n * element) as view:
            parts.append(engine.copy(engine.from_bytes(view, dtype)))
    return engine.concat(parts)


def _strided_sample(engine: _Engine, values: Any, limit: int) -> tuple[Any, int]:
    """A view of at most `limit` elements: every k-th index along the longest dimensions."""
    shape = list(values.shape)
    numel = math.prod(shape)
    while numel > limit:
        dim = max(range(len(shape)), key=lambda d: shape[d])
        step = min(math.ceil(numel / limit), shape[dim])
        values = engine.every(values, dim, step)
        shape = list(values.shape)
        numel = math.prod(shape)
    return values, numel


def _first_values(values: Any, shape: list[int]) -> list[Any]:
    """The first FIRST_VALUES values of a (torch or numpy) view, row-major, copying at most about
    twice that many: the leading rows that hold them, or the first row's when one row is more."""
    if not shape:
        return [values.item()]
    inner = math.prod(shape[1:])
    if inner > FIRST_VALUES:
        return _first_values(values[0], shape[1:])
    rows = min(shape[0], math.ceil(FIRST_VALUES / max(inner, 1)))
    return values[:rows].reshape(-1).tolist()[:FIRST_VALUES]


def _shown_values(values: list[Any], dtype: str) -> list[str]:
    """Values as the page shows them: each float as short as its dtype allows ("0.1" for a
    float32 0.1, not 0.10000000149011612), bools as True/False, non-finite as nan, inf, -inf."""
    return [_shown_value(v, dtype) for v in values[:FIRST_VALUES]]


def _shown_value(value: Any, dtype: str) -> str:
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


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _engine(dtype: str, name: str | None) -> _Engine:
    if name is None and dtype in _TORCH_LIMITED:  # torch lacks min/max for them: numpy if it can
        try:
            import numpy  # noqa: F401
        except ImportError:
            pass
        else:
            return _NumpyEngine()
    if name in (None, "torch"):
        try:
            import torch  # noqa: F401
        except ImportError:
            if name == "torch":
                raise StatsError("torch is not importable") from None
        else:
            return _TorchEngine()
    try:
        import numpy  # noqa: F401
    except ImportError:
        raise StatsError("statistics need torch or numpy in the server's Python") from None
    if dtype not in _NUMPY_DTYPES:
        raise StatsError(f"statistics of {dtype} tensors needs torch in the server's Python (numpy has no {dtype})")
    return _NumpyEngine()


class _Engine(Protocol):
    """What the statistics need from an array library: views on bytes, sampling, reductions."""

    name: str

    def from_bytes(self, view: memoryview, dtype: str) -> Any: ...
    def as_strided(self, flat: Any, shape: list[int], stride: list[int]) -> Any: ...
    def every(self, values: Any, dim: int, step: int) -> Any: ...
    def copy(self, values: Any) -> Any: ...
    def concat(self, parts: list[Any]) -> Any: ...
    def stats(self, values: Any, dtype: str) -> dict[str, Any]: ...


class _TorchEngine:
    name = "torch"

    def __init__(self) -> None:
        import torch
        self.torch = torch

    def from_bytes(self, view: memoryview, dtype: str) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the given buffer is not writable": it is never written
            return self.torch.frombuffer(view, dtype=getattr(self.torch, dtype))

    def as_strided(self, flat: Any, shape: list[int], stride: list[int]) -> Any:
        return flat.as_strided(shape, stride)

    def every(self, values: Any, dim: int, step: int) -> Any:
        return values[(slice(None),) * dim + (slice(None, None, step),)]

    def copy(self, values: Any) -> Any:
        return values.clone()

    def concat(self, parts: list[Any]) -> Any:
        return self.torch.cat(parts)

    def stats(self, values: Any, dtype: str) -> dict[str, Any]:
        torch = self.torch
        flat = values.reshape(-1)
        if dtype in _FLOATS:
            x = flat.to(torch.float64)
            finite_mask = torch.isfinite(x)
            finite = x[finite_mask]
            out: dict[str, Any] = {
                "zeros": int((x == 0).sum()), "nan": int(torch.isnan(x).sum()),
                "posinf": int((x == math.inf).sum()), "neginf": int((x == -math.inf).sum()),
            }
            del x, finite_mask
            if finite.numel() == 0:
                return {**out, "min": None, "max": None, "mean": None, "std": None}
            lo, hi = float(finite.min()), float(finite.max())
            counts = (torch.histc(finite, bins=HISTOGRAM_BINS, min=lo, max=hi).long().tolist() if lo < hi
                      else [int(finite.numel())])
            return {**out, "min": lo, "max": hi, "mean": _finite(float(finite.mean())),
                    "std": _finite(float(finite.std())) if finite.numel() > 1 else 0.0,
                    "histogram": {"min": lo, "max": hi, "counts": counts}}
        if dtype == "uint64":
            raise StatsError("statistics of uint64 tensors need numpy in the server's Python")
        ints = flat.to(torch.uint8) if dtype == "bool" else flat.to(torch.int64) if dtype in _TORCH_LIMITED else flat
        lo, hi = int(ints.min()), int(ints.max())
        x = ints.to(torch.float64)
        out = {"zeros": int((ints == 0).sum()), "nan": 0, "posinf": 0, "neginf": 0, "min": lo, "max": hi,
               "mean": float(x.mean()), "std": float(x.std()) if x.numel() > 1 else 0.0}
        if hi - lo < HISTOGRAM_BINS:
            counts = torch.bincount(ints.to(torch.int64) - lo).tolist()
            out["values"] = [[lo + i, c] for i, c in enumerate(counts) if c]
        else:
            out["histogram"] = {"min": float(lo), "max": float(hi),
                                "counts": torch.histc(x, bins=HISTOGRAM_BINS, min=lo, max=hi).long().tolist()}
        return out


class _NumpyEngine:
    name = "numpy"

    def __init__(self) -> None:
        import numpy
        self.np = numpy

    def from_bytes(self, view: memoryview, dtype: str) -> Any:
        return self.np.frombuffer(view, dtype=self.np.dtype(_NUMPY_DTYPES[dtype]))

    def as_strided(self, flat: Any, shape: list[int], stride: list[int]) -> Any:
        element = flat.dtype.itemsize
        return self.np.lib.stride_tricks.as_strided(flat, shape=shape, strides=[s * element for s in stride],
                                                    writeable=False)

    def every(self, values: Any, dim: int, step: int) -> Any:
        return values[(slice(None),) * dim + (slice(None, None, step),)]

    def copy(self, values: Any) -> Any:
        return values.copy()

    def concat(self, parts: list[Any]) -> Any:
        return self.np.concatenate(parts)

    def stats(self, values: Any, dtype: str) -> dict[str, Any]:
        np = self.np
        flat = values.reshape(-1)
        if dtype in _FLOATS:
            x = flat.astype(np.float64)
            finite = x[np.isfinite(x)]
            out: dict[str, Any] = {
                "zeros": int(np.count_nonzero(x == 0)), "nan": int(np.count_nonzero(np.isnan(x))),
                "posinf": int(np.count_nonzero(x == np.inf)), "neginf": int(np.count_nonzero(x == -np.inf)),
            }
            del x
            if finite.size == 0:
                return {**out, "min": None, "max": None, "mean": None, "std": None}
            lo, hi = float(finite.min()), float(finite.max())
            counts = (np.histogram(finite, bins=HISTOGRAM_BINS, range=(lo, hi))[0].tolist() if lo < hi
                      else [int(finite.size)])
            return {**out, "min": lo, "max": hi, "mean": _finite(float(finite.mean())),
                    "std": _finite(float(finite.std(ddof=1))) if finite.size > 1 else 0.0,
                    "histogram": {"min": lo, "max": hi, "counts": [int(c) for c in counts]}}
        ints = flat.astype(np.uint8) if dtype == "bool" else flat
        lo, hi = int(ints.min()), int(ints.max())
        x = ints.astype(np.float64)
        out = {"zeros": int(np.count_nonzero(ints == 0)), "nan": 0, "posinf": 0, "neginf": 0, "min": lo, "max": hi,
               "mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else 0.0}
        if hi - lo < HISTOGRAM_BINS:
            counts = np.bincount(ints.astype(np.int64) - lo)
            out["values"] = [[lo + i, int(c)] for i, c in enumerate(counts) if c]
        else:
            out["histogram"] = {"min": float(lo), "max": float(hi), "counts": [
                int(c) for c in np.histogram(x, bins=HISTOGRAM_BINS, range=(lo, hi))[0]]}
        return out

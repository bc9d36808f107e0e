"""The array libraries that reduce tensor values, one bounded chunk at a time: torch, else numpy.

An engine turns the mapped bytes of a chunk into an array (`array`), reduces it to a `Partial`
(`reduce`: min, max, counts of zeros, NaN and infinities, mean, squared deviations and absolute
values, in a few vectorised passes over reusable buffers), counts it into histogram bins
(`histogram`, `value_counts`), compares two chunks (`same_bits`, `difference`) and copies a view
out contiguously (`contiguous_bytes`). Halves and float8 are widened to float32, wide integers
and float64 computed in float64; sums use the libraries' pairwise summation, so results are
exact to about 1e-7 (float32 data) or 1e-15 (float64). No chunk is ever copied in full unless it
is a non-contiguous view (then only that chunk). `engine_for(dtype, name)` picks one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

from .reduction import Partial, ValueKind, value_kind

CHUNK_ELEMENTS = 1 << 20  # values reduced at a time: buffers stay small (8 MiB of float64 each)
# and each torch op long enough to be worth its threads, short enough to stay in cache
# Computed in float64: everything float32 cannot hold exactly (or would overflow when summed).
_WIDE = frozenset({"float64", "int64", "int32", "uint32", "uint64", "complex128"})
# Unsigned types torch cannot reduce directly; read through a wider copy of each chunk.
_TORCH_WIDENED = frozenset({"uint16", "uint32", "uint64"})
NUMPY_DTYPES = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4",
                "int16": "<i2", "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2",
                "uint8": "u1", "bool": "?", "complex64": "<c8", "complex128": "<c16"}


class EngineError(Exception):
    """The values cannot be read by the engines available; the message is for the user."""


@dataclass
class DiffPartial:
    """How chunks of B differ from the same chunks of A (Δ = B − A), over the finite differences."""

    numel: int = 0
    changed: int = 0  # elements that are not equal (two NaNs, or two equal infinities, count as equal)
    nonfinite: int = 0  # elements whose difference is not a finite number (NaN or inf on one side)
    max_abs: float = 0.0
    sq_diff: float = 0.0  # Σ Δ²
    sq_a: float = 0.0  # Σ A² over A's finite values

    def merge(self, other: DiffPartial) -> DiffPartial:
        return DiffPartial(self.numel + other.numel, self.changed + other.changed, self.nonfinite + other.nonfinite,
                           max(self.max_abs, other.max_abs), self.sq_diff + other.sq_diff, self.sq_a + other.sq_a)


class Engine(Protocol):
    name: str

    def array(self, data: memoryview, dtype: str, shape: list[int], stride: list[int]) -> Any: ...
    def reduce(self, values: Any, dtype: str) -> Partial: ...
    def histogram(self, values: Any, dtype: str, lo: float, hi: float, bins: int, finite_only: bool) -> list[int]: ...
    def value_counts(self, values: Any, dtype: str, lo: int, count: int) -> list[int]: ...
    def same_bits(self, a: Any, b: Any) -> bool: ...
    def difference(self, a: Any, dtype_a: str, b: Any, dtype_b: str) -> DiffPartial: ...
    def contiguous_bytes(self, values: Any) -> memoryview: ...


_ENGINES: dict[str, Engine] = {}


def _span_overflows(lo: float, hi: float, largest: float) -> bool:
    """Whether `value - lo` can overflow the work dtype (values near its limits: ±3e38 in float32).
    The histogram then bins halves, `value / 2 - lo / 2`, which cannot (halving is exact)."""
    return hi - lo > largest


def engine_for(dtype: str, name: str | None = None) -> Engine:
    """The engine for a dtype: `name` ("torch" or "numpy") if given (tests), else torch when
    importable (numpy first for uint64, which it reads exactly), else numpy."""
    if value_kind(dtype) is None:
        raise EngineError(f"values of {dtype} tensors cannot be read (packed, quantized or unknown element type)")
    order = [name] if name else (["numpy", "torch"] if dtype == "uint64" else ["torch", "numpy"])
    for candidate in order:
        engine = _engine(candidate)
        if engine is not None and (candidate == "torch" or dtype in NUMPY_DTYPES):
            return engine
    if name == "torch":
        raise EngineError("torch is not importable")
    if _engine("numpy") is not None:
        raise EngineError(f"reading {dtype} values needs torch in the server's Python (numpy has no {dtype})")
    raise EngineError("tensor values need torch or numpy in the server's Python")


def _engine(name: str) -> Engine | None:
    if name not in _ENGINES:
        try:
            _ENGINES[name] = _TorchEngine() if name == "torch" else _NumpyEngine()
        except ImportError:
            return None
    return _ENGINES[name]


class _TorchEngine:
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self._buffers: dict[tuple[str, Any], Any] = {}

    def _buffer(self, role: str, dtype: Any, n: int) -> Any:
        """A reusable buffer of at least `n` elements (one per role and dtype)."""
        found = self._buffers.get((role, dtype))
        if found is None or found.numel() < n:
            found = self._buffers[(role, dtype)] = self.torch.empty(max(n, CHUNK_ELEMENTS), dtype=dtype)
        return found[:n]

    def array(self, data: memoryview, dtype: str, shape: list[int], stride: list[int]) -> Any:
        torch = self.torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the given buffer is not writable": it is never written
            flat = torch.frombuffer(data, dtype=getattr(torch, dtype))
        return flat.as_strided(shape, stride)

    def _work_dtype(self, *dtypes: str) -> Any:
        return self.torch.float64 if any(d in _WIDE for d in dtypes) else self.torch.float32

    def _widened(self, values: Any, dtype: str, role: str, work: Any = None) -> Any:
        """The chunk's values as a flat float tensor (complex: magnitudes), in a reusable buffer."""
        torch = self.torch
        work = work if work is not None else self._work_dtype(dtype)
        flat = values.reshape(-1)
        if value_kind(dtype) == "complex":
            return torch.abs(flat, out=self._buffer(role, work, flat.numel()))
        if flat.dtype == work:
            return flat
        if flat.dtype == torch.bool:
            flat = flat.view(torch.uint8)
        return self._buffer(role, work, flat.numel()).copy_(flat)

    def reduce(self, values: Any, dtype: str) -> Partial:
        torch = self.torch
        kind = value_kind(dtype)
        assert kind is not None
        numel = values.numel()
        exact: tuple[int, int] | None = None
        if kind == "int" and dtype not in _TORCH_WIDENED:
            raw = values.reshape(-1)
            raw = raw.view(torch.uint8) if raw.dtype == torch.bool else raw
            lo, hi = torch.aminmax(raw)
            exact = int(lo), int(hi)
        w = self._widened(values, dtype, "work")
        counts = {"nan": 0, "posinf": 0, "neginf": 0}
        lo, hi = (float(x) for x in torch.aminmax(w))
        if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN propagates through aminmax
            counts = {"nan": int(torch.isnan(w).sum()), "posinf": int((w == math.inf).sum()),
                      "neginf": int((w == -math.inf).sum())}
            w = w[torch.isfinite(w)]
            if w.numel() == 0:
                return Partial(kind, numel, 0, **counts)
            lo, hi = (float(x) for x in torch.aminmax(w))
        n = w.numel()
        zeros = n - int(torch.count_nonzero(w))
        total, abs_sum, m2 = self._sums(w)
        if not (math.isfinite(total) and math.isfinite(abs_sum) and math.isfinite(m2)) and w.dtype != torch.float64:
            total, abs_sum, m2 = self._sums(w.to(torch.float64))  # float32 sums overflowed
        low, high = exact if exact is not None else (lo, hi)
        return Partial(kind, numel, n, **counts, zeros=zeros, min=low, max=high, mean=total / n, m2=m2,
                       abs_sum=abs_sum)

    def _sums(self, w: Any) -> tuple[float, float, float]:
        """Σx, Σ|x| and Σ(x − mean)² of a flat float tensor, through one scratch buffer."""
        torch = self.torch
        scratch = self._buffer("scratch", w.dtype, w.numel())
        total = float(w.sum())
        abs_sum = float(torch.abs(w, out=scratch).sum())
        torch.sub(w, total / w.numel(), out=scratch)
        return total, abs_sum, float(scratch.mul_(scratch).sum())

    def histogram(self, values: Any, dtype: str, lo: float, hi: float, bins: int, finite_only: bool) -> list[int]:
        torch = self.torch
        w = self._widened(values, dtype, "work")
        n = w.numel()
        scratch = self._buffer("scratch", w.dtype, n)
        if _span_overflows(lo, hi, torch.finfo(w.dtype).max):
            torch.mul(w, 0.5, out=scratch).sub_(lo / 2).mul_(bins / (hi / 2 - lo / 2))
        else:
            torch.sub(w, lo, out=scratch).mul_(bins / (hi - lo))
        index = self._buffer("index", torch.int32, n)
        if not finite_only:
            return [int(c) for c in torch.bincount(index.copy_(scratch).clamp_(0, bins - 1), minlength=bins).tolist()]
        # NaN and ±inf go to a bin of their own, left out: no boolean mask (10x slower than this)
        torch.nan_to_num(scratch, nan=-1.0, posinf=-1.0, neginf=-1.0, out=scratch).clamp_(max=bins - 1)
        index.copy_(scratch).add_(1)
        return [int(c) for c in torch.bincount(index, minlength=bins + 1)[1:].tolist()]

    def value_counts(self, values: Any, dtype: str, lo: int, count: int) -> list[int]:
        torch = self.torch
        raw = values.reshape(-1)
        shifted = self._buffer("index64", torch.int64, raw.numel())
        shifted.copy_(raw.view(torch.uint8) if raw.dtype == torch.bool else raw).sub_(lo)
        return [int(c) for c in torch.bincount(shifted, minlength=count).tolist()]

    def same_bits(self, a: Any, b: Any) -> bool:
        torch = self.torch
        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.int64}[a.element_size()]
        return bool(torch.equal(_bits(a.contiguous(), bits), _bits(b.contiguous(), bits)))

    def difference(self, a: Any, dtype_a: str, b: Any, dtype_b: str) -> DiffPartial:
        torch = self.torch
        work = self._work_dtype(dtype_a, dtype_b)
        if value_kind(dtype_a) == "complex" or value_kind(dtype_b) == "complex":  # compare re and im parts
            a, b = (torch.view_as_real(x.to(torch.complex128)) for x in (a, b))
            dtype_a = dtype_b = "float64"
            work = torch.float64
        wa = self._widened(a, dtype_a, "work", work)
        wb = self._widened(b, dtype_b, "work_b", work)
        n = wa.numel()
        d = torch.sub(wb, wa, out=self._buffer("scratch", work, n))
        changed = int(torch.count_nonzero(d))
        lo, hi = (float(x) for x in torch.aminmax(d))
        nonfinite = 0
        if not (math.isfinite(lo) and math.isfinite(hi)):
            finite = torch.isfinite(d)
            equal = ((wa == wb) | (torch.isnan(wa) & torch.isnan(wb))) & ~finite  # NaN − NaN, inf − inf
            same = int(equal.sum())
            nonfinite = n - int(finite.sum()) - same
            changed -= same
            d = d[finite]
            lo, hi = (float(x) for x in torch.aminmax(d)) if d.numel() else (0.0, 0.0)
        sq_diff = float(d.mul_(d).sum()) if d.numel() else 0.0
        finite_a = wa if math.isfinite(float(wa.sum())) else wa[torch.isfinite(wa)]
        sq_a = float(torch.mul(finite_a, finite_a, out=self._buffer("scratch", work, finite_a.numel())).sum())
        return DiffPartial(n, changed, nonfinite, max(abs(lo), abs(hi)), sq_diff, sq_a)

    def contiguous_bytes(self, values: Any) -> memoryview:
        torch = self.torch
        out = bytearray(values.numel() * values.element_size())
        if out:
            torch.frombuffer(out, dtype=torch.uint8).copy_(_bits(values.contiguous(), torch.uint8))
        return memoryview(out)


def _bits(values: Any, bits_dtype: Any) -> Any:
    """A contiguous tensor's bytes as integers of `bits_dtype` (bool and complex included)."""
    import torch

    flat = values.reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.view(torch.uint8)
    elif flat.is_complex():
        flat = torch.view_as_real(flat).reshape(-1)
    return flat.view(bits_dtype)


class _NumpyEngine:
    name = "numpy"

    def __init__(self) -> None:
        import numpy

        self.np = numpy
        self._buffers: dict[tuple[str, Any], Any] = {}

    def _buffer(self, role: str, dtype: Any, n: int) -> Any:
        key = (role, self.np.dtype(dtype).str)
        found = self._buffers.get(key)
        if found is None or found.size < n:
            found = self._buffers[key] = self.np.empty(max(n, CHUNK_ELEMENTS), dtype=dtype)
        return found[:n]

    def array(self, data: memoryview, dtype: str, shape: list[int], stride: list[int]) -> Any:
        np = self.np
        flat = np.frombuffer(data, dtype=np.dtype(NUMPY_DTYPES[dtype]))
        element = flat.dtype.itemsize
        return np.lib.stride_tricks.as_strided(flat, shape=shape, strides=[s * element for s in stride],
                                               writeable=False)

    def _work_dtype(self, *dtypes: str) -> Any:
        return self.np.float64 if any(d in _WIDE for d in dtypes) else self.np.float32

    def _widened(self, values: Any, dtype: str, role: str, work: Any = None) -> Any:
        np = self.np
        work = work if work is not None else self._work_dtype(dtype)
        flat = values.reshape(-1)
        if value_kind(dtype) == "complex":
            return np.abs(flat, out=self._buffer(role, work, flat.size))
        if flat.dtype == work:
            return flat
        out = self._buffer(role, work, flat.size)
        out[...] = flat
        return out

    def reduce(self, values: Any, dtype: str) -> Partial:
        np = self.np
        kind: ValueKind | None = value_kind(dtype)
        assert kind is not None
        numel = int(values.size)
        exact: tuple[int, int] | None = None
        if kind == "int":
            raw = values.reshape(-1)
            raw = raw.view(np.uint8) if raw.dtype == np.bool_ else raw
            exact = int(raw.min()), int(raw.max())
        w = self._widened(values, dtype, "work")
        counts = {"nan": 0, "posinf": 0, "neginf": 0}
        lo, hi = float(w.min()), float(w.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            counts = {"nan": int(np.count_nonzero(np.isnan(w))), "posinf": int(np.count_nonzero(w == np.inf)),
                      "neginf": int(np.count_nonzero(w == -np.inf))}
            w = w[np.isfinite(w)]
            if w.size == 0:
                return Partial(kind, numel, 0, **counts)
            lo, hi = float(w.min()), float(w.max())
        n = int(w.size)
        zeros = n - int(np.count_nonzero(w))
        with np.errstate(over="ignore", invalid="ignore"):
            total, abs_sum, m2 = self._sums(w)
            if not (math.isfinite(total) and math.isfinite(abs_sum) and math.isfinite(m2)) and w.dtype != np.float64:
                total, abs_sum, m2 = self._sums(w.astype(np.float64))
        low, high = exact if exact is not None else (lo, hi)
        return Partial(kind, numel, n, **counts, zeros=zeros, min=low, max=high, mean=total / n, m2=m2,
                       abs_sum=abs_sum)

    def _sums(self, w: Any) -> tuple[float, float, float]:
        np = self.np
        scratch = self._buffer("scratch", w.dtype, w.size)
        total = float(w.sum())
        abs_sum = float(np.abs(w, out=scratch).sum())
        np.subtract(w, w.dtype.type(total / w.size), out=scratch)
        return total, abs_sum, float(np.multiply(scratch, scratch, out=scratch).sum())

    def histogram(self, values: Any, dtype: str, lo: float, hi: float, bins: int, finite_only: bool) -> list[int]:
        np = self.np
        w = self._widened(values, dtype, "work")
        if finite_only:
            w = w[np.isfinite(w)]
        scratch = self._buffer("scratch", w.dtype, w.size)
        if _span_overflows(lo, hi, float(np.finfo(w.dtype).max)):
            np.multiply(w, w.dtype.type(0.5), out=scratch)
            np.subtract(scratch, w.dtype.type(lo / 2), out=scratch)
            scale = bins / (hi / 2 - lo / 2)
        else:
            np.subtract(w, w.dtype.type(lo), out=scratch)
            scale = bins / (hi - lo)
        np.multiply(scratch, w.dtype.type(scale), out=scratch)
        index = self._buffer("index", np.int32, w.size)
        index[...] = scratch
        np.clip(index, 0, bins - 1, out=index)
        return [int(c) for c in np.bincount(index, minlength=bins)]

    def value_counts(self, values: Any, dtype: str, lo: int, count: int) -> list[int]:
        np = self.np
        raw = values.reshape(-1)
        shifted = self._buffer("index64", np.int64, raw.size)
        shifted[...] = raw
        shifted -= lo
        return [int(c) for c in np.bincount(shifted, minlength=count)]

    def same_bits(self, a: Any, b: Any) -> bool:
        np = self.np
        void = np.dtype(f"V{a.dtype.itemsize}")
        return bool(np.array_equal(np.ascontiguousarray(a).view(void), np.ascontiguousarray(b).view(void)))

    def difference(self, a: Any, dtype_a: str, b: Any, dtype_b: str) -> DiffPartial:
        np = self.np
        work = self._work_dtype(dtype_a, dtype_b)
        if value_kind(dtype_a) == "complex" or value_kind(dtype_b) == "complex":
            a = np.ascontiguousarray(a, dtype=np.complex128).view(np.float64)
            b = np.ascontiguousarray(b, dtype=np.complex128).view(np.float64)
            dtype_a = dtype_b = "float64"
            work = np.float64
        wa = self._widened(a, dtype_a, "work", work)
        wb = self._widened(b, dtype_b, "work_b", work)
        n = int(wa.size)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.subtract(wb, wa, out=self._buffer("scratch", work, n))
            changed = int(np.count_nonzero(d))
            lo, hi = float(d.min()), float(d.max())
            nonfinite = 0
            if not (math.isfinite(lo) and math.isfinite(hi)):
                finite = np.isfinite(d)
                same = int(np.count_nonzero(((wa == wb) | (np.isnan(wa) & np.isnan(wb))) & ~finite))
                nonfinite = n - int(np.count_nonzero(finite)) - same
                changed -= same
                d = d[finite]
                lo, hi = (float(d.min()), float(d.max())) if d.size else (0.0, 0.0)
            sq_diff = float(np.multiply(d, d, out=d).sum()) if d.size else 0.0
            finite_a = wa if math.isfinite(float(wa.sum())) else wa[np.isfinite(wa)]
            sq_a = float(np.multiply(finite_a, finite_a, out=self._buffer("scratch", work, finite_a.size)).sum())
        return DiffPartial(n, changed, nonfinite, max(abs(lo), abs(hi)), sq_diff, sq_a)

    def contiguous_bytes(self, values: Any) -> memoryview:
        np = self.np
        return memoryview(np.ascontiguousarray(values).view(np.uint8).reshape(-1))

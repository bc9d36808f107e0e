"""What a pass over a tensor's values adds up, chunk by chunk, and what it comes to.

An engine (engines.py) reduces one chunk of values to a `Partial`; partials merge in any order
(`Partial.merge`: counts add, min/max combine, mean and the sum of squared deviations combine by
Chan's formula, so the standard deviation stays exact to the working precision however many
chunks there are), and `Partial.finish` gives the statistics shown everywhere (docs/protocol.md,
`TensorStats`). A tensor's partial also merges with other tensors' (a module's statistics) and
crosses processes as JSON (`to_json` / `from_json`). Values are floating-point numbers, integers
(bool as 0/1) or, for complex tensors, their magnitudes. Pure Python: no torch, no numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

# How values are read: floating point, integers (exact min/max), magnitudes of complex numbers.
ValueKind = Literal["float", "int", "complex"]

FLOAT8 = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
FLOATS = ("float64", "float32", "float16", "bfloat16", *FLOAT8)
INTS = ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool")
COMPLEX = ("complex64", "complex128")


def value_kind(dtype: str) -> ValueKind | None:
    """How a dtype's values are reduced; None: not supported (quantized, packed, sub-byte...)."""
    if dtype in FLOATS:
        return "float"
    if dtype in INTS:
        return "int"
    if dtype in COMPLEX:
        return "complex"
    return None


@dataclass
class Partial:
    """The reduction of some values: all elements, of which `finite` are finite numbers."""

    kind: ValueKind
    numel: int = 0
    finite: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    zeros: int = 0
    min: float | int | None = None  # over the finite values; ints stay exact
    max: float | int | None = None
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    abs_sum: float = 0.0
    tensors: int = 0  # a tensor's reduction sets 1; a module's adds them up

    def merge(self, other: Partial) -> Partial:
        """Both reductions together (Chan et al.'s pairwise update for mean and m2)."""
        kind = self.kind if self.kind == other.kind else "float"
        n1, n2 = self.finite, other.finite
        n = n1 + n2
        if n2 == 0:
            mean, m2 = self.mean, self.m2
        elif n1 == 0:
            mean, m2 = other.mean, other.m2
        else:
            delta = other.mean - self.mean
            mean = self.mean + delta * (n2 / n)
            m2 = self.m2 + other.m2 + delta * delta * (n1 * (n2 / n))
        return Partial(
            kind, self.numel + other.numel, n, self.nan + other.nan, self.posinf + other.posinf,
            self.neginf + other.neginf, self.zeros + other.zeros, _lesser(self.min, other.min),
            _greater(self.max, other.max), mean, m2, self.abs_sum + other.abs_sum, self.tensors + other.tensors)

    def finish(self) -> dict[str, Any]:
        """The statistics of these values (the `TensorStats` fields they decide)."""
        out: dict[str, Any] = {"zeros": self.zeros, "nan": self.nan, "posinf": self.posinf, "neginf": self.neginf}
        if self.finite == 0:
            return {**out, "min": None, "max": None, "mean": None, "std": None, "l2": None, "abs_max": None}
        n = self.finite
        std = math.sqrt(max(self.m2, 0.0) / (n - 1)) if n > 1 else 0.0
        lo, hi = self.min, self.max
        assert lo is not None and hi is not None
        return {**out, "min": lo, "max": hi, "mean": finite_or_none(self.mean), "std": finite_or_none(std),
                "l2": finite_or_none(math.sqrt(max(self.m2 + n * self.mean * self.mean, 0.0))),
                "abs_max": max(abs(lo), abs(hi)), "mean_abs": finite_or_none(self.abs_sum / n)}

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _PARTIAL_FIELDS}
        for name in ("mean", "m2", "abs_sum", "min", "max"):  # JSON has no NaN or inf
            value = out[name]
            if isinstance(value, float) and not math.isfinite(value):
                out[name] = None
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Partial:
        fields = dict(data)
        for name in ("mean", "m2", "abs_sum"):  # an overflow sent as null stays one
            if fields.get(name) is None:
                fields[name] = math.inf
        return cls(**fields)


_PARTIAL_FIELDS = tuple(f.name for f in fields(Partial))


def merge_all(partials: list[Partial], kind: ValueKind) -> Partial:
    total = Partial(kind, tensors=0)
    for partial in partials:
        total = total.merge(partial)
    return total


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _lesser(a: float | int | None, b: float | int | None) -> float | int | None:
    return b if a is None else a if b is None else min(a, b)


def _greater(a: float | int | None, b: float | int | None) -> float | int | None:
    return b if a is None else a if b is None else max(a, b)


def histogram_range(partial: Partial) -> tuple[float, float] | None:
    """The range the histogram covers: the finite values' min and max (None: no finite value)."""
    if partial.min is None or partial.max is None:
        return None
    return float(partial.min), float(partial.max)


def few_values(partial: Partial, bins: int) -> bool:
    """Integers with fewer distinct possible values than bins are counted value by value."""
    return (partial.kind == "int" and partial.min is not None and partial.max is not None
            and int(partial.max) - int(partial.min) < bins)

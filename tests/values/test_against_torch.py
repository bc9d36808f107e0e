"""Statistics of every dtype in every layout, against torch's own reductions of what it loads."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pthscope.reader import inspect
from pthscope.values import find_tensor, reading, tensor_bytes, tensor_stats
from pthscope.values import stats as stats_module

from .layouts import Layout, sample_tensors, write_layouts

LAYOUTS = ["zip", "legacy", "cuda", "safetensors", "tar", "whole_model"]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    return write_layouts(tmp_path_factory.mktemp("layouts"))


def stats_of(file: Path, key: str, engine: str | None = None) -> dict[str, Any]:
    checkpoint = inspect(file)
    assert checkpoint.ok, checkpoint.errors
    st = os.stat(file)
    result = tensor_stats(tensor_bytes(checkpoint, find_tensor(checkpoint, key), st.st_size, st.st_mtime_ns), engine)
    assert "error" not in result, result
    return result["stats"]


def reference(t: torch.Tensor) -> dict[str, Any]:
    """What torch computes, in float64 (complex: of |x|; integers: min and max exact)."""
    if t.is_complex():
        x = t.abs().double()
    elif t.dtype.is_floating_point:
        x = t.float().double()
    else:
        x = torch.from_numpy(t.numpy().astype(np.float64)) if t.dtype == torch.uint64 else t.to(torch.float64)
    x = x.reshape(-1)
    finite = x[torch.isfinite(x)]
    out: dict[str, Any] = {"zeros": int((x == 0).sum()), "nan": int(x.isnan().sum()),
                           "posinf": int((x == math.inf).sum()), "neginf": int((x == -math.inf).sum())}
    if finite.numel():
        out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                   std=float(finite.std()) if finite.numel() > 1 else 0.0, l2=float(finite.norm()))
    if not t.dtype.is_floating_point and not t.is_complex():
        ints = t.numpy().astype(object).reshape(-1) if t.numel() else []
        out.update(min=int(min(ints)), max=int(max(ints)))
    return out


def check(stats: dict[str, Any], t: torch.Tensor, rel: float = 1e-6) -> None:
    assert stats["numel"] == t.numel() and stats["shape"] == list(t.shape)
    expected = reference(t)
    for name, value in expected.items():
        if isinstance(value, int) and name in ("min", "max"):
            assert stats[name] == value, name  # integers: exact
        else:
            assert stats[name] == pytest.approx(value, rel=rel, abs=1e-9), name
    finite = t.numel() - expected["nan"] - expected["posinf"] - expected["neginf"]
    if "histogram" in stats:
        assert sum(stats["histogram"]["counts"]) == finite
        assert stats["histogram"]["min"] == expected["min"] and stats["histogram"]["max"] == expected["max"]
    elif "values" in stats:
        flat = t.reshape(-1).to(torch.int64) if t.dtype != torch.uint64 else torch.from_numpy(t.numpy().astype(np.int64))
        assert stats["values"] == [[v, int((flat == v).sum())] for v in sorted(set(flat.tolist()))]


def _cases() -> list[tuple[str, str]]:
    keys = [k for k in sample_tensors() if k != "empty"]
    legacy = [k for k in keys if not k.startswith(("uint16", "uint32", "uint64", "float8"))]
    safetensors = [k for k in keys if not k.startswith(("view.", "tied.")) and "fnuz" not in k
                   and k not in ("complex128", "float8_e8m0fnu")]
    return ([("zip", k) for k in keys] + [("legacy", k) for k in legacy] + [("cuda", k) for k in keys[::3]]
            + [("safetensors", k) for k in safetensors] + [("tar", "a"), ("tar", "b.c")]
            + [("whole_model", "embed.weight"), ("whole_model", "decoder.weight")])


@pytest.mark.parametrize(("layout", "key"), _cases())
def test_matches_torch(layouts: dict[str, Layout], layout: str, key: str) -> None:
    stats = stats_of(layouts[layout].file, key)
    assert stats["engine"] == ("numpy" if key == "uint64" else "torch")  # numpy reads uint64 exactly
    check(stats, layouts[layout].tensors[key])
    if layouts[layout].tensors[key].is_complex():
        assert stats["magnitude"]


NUMPY_KEYS = ["float64", "float32", "float16", "int64", "int32", "int8", "uint8", "uint16", "uint32", "uint64", "bool",
              "complex64", "complex128", "scalar", "view.offset_stride", "view.transposed", "view.expanded"]


@pytest.mark.parametrize("key", NUMPY_KEYS)
def test_numpy_engine_matches_torch(layouts: dict[str, Layout], key: str) -> None:
    stats = stats_of(layouts["zip"].file, key, engine="numpy")
    assert stats["engine"] == "numpy"
    check(stats, layouts["zip"].tensors[key])
    by_torch = stats_of(layouts["zip"].file, key, engine="torch")
    assert stats.get("histogram", {}).get("counts") == by_torch.get("histogram", {}).get("counts")


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_many_chunks_of_every_layout(layouts: dict[str, Layout], engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With chunks of 97 elements in mapped windows of 4 KiB, every tensor is many pieces (rows, parts
    of rows, windows): the same answers."""
    monkeypatch.setattr(stats_module, "CHUNK_ELEMENTS", 97)
    monkeypatch.setattr(reading, "WINDOW_BYTES", 4096)
    for key in ("float32", "float64", "int64", "view.offset_stride", "view.transposed", "view.expanded", "complex64"):
        check(stats_of(layouts["zip"].file, key, engine), layouts["zip"].tensors[key])


def test_empty_tensor_has_no_values(layouts: dict[str, Layout]) -> None:
    stats = stats_of(layouts["zip"].file, "empty")
    assert stats["numel"] == 0 and "min" not in stats and "histogram" not in stats


def test_all_nan_and_huge_values(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    big = torch.full((1000,), 3e38)  # float32 sums overflow: computed again in float64
    torch.save({"nan": torch.full((5,), math.nan), "big": big, "tiny": torch.full((3,), 1e-45),
                "one": torch.full((50,), -7.0)}, path)
    nan = stats_of(path, "nan")
    assert nan["nan"] == 5 and nan["min"] is None and nan["mean"] is None and "histogram" not in nan
    huge = stats_of(path, "big")
    assert huge["mean"] == pytest.approx(3e38, rel=1e-6) and huge["std"] == pytest.approx(0.0, abs=1e33)
    assert stats_of(path, "tiny")["min"] == pytest.approx(1.401298464324817e-45)
    one = stats_of(path, "one")
    assert one["histogram"] == {"min": -7.0, "max": -7.0, "counts": [50]} and one["std"] == 0.0


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_a_histogram_beside_nan_and_inf_counts_the_finite_values_as_torch_histc(tmp_path: Path, engine: str) -> None:
    """NaN and ±inf are left out of the bins (both engines), spread over several chunks."""
    torch.manual_seed(3)
    t = torch.randn(3 * stats_module.CHUNK_ELEMENTS + 17)
    t[::100_003] = float("nan")
    t[5::200_003] = float("inf")
    t[7::300_007] = -float("inf")
    torch.save({"w": t}, tmp_path / "w.pt")
    stats = stats_of(tmp_path / "w.pt", "w", engine)
    finite = t[torch.isfinite(t)]
    expected = torch.histc(finite, bins=stats_module.HISTOGRAM_BINS, min=float(finite.min()), max=float(finite.max()))
    assert stats["histogram"]["counts"] == [int(c) for c in expected.tolist()]
    assert stats["nan"] == int(torch.isnan(t).sum()) and stats["posinf"] == int((t == math.inf).sum())


@pytest.mark.parametrize("engine", ["torch", "numpy"])
@pytest.mark.parametrize("dtype, limit", [(torch.float32, 3.0e38), (torch.float64, 1.7e308), (torch.float16, 6.0e4),
                                          (torch.bfloat16, 3.0e38)])
def test_a_histogram_spanning_nearly_the_whole_range_of_its_dtype(tmp_path: Path, engine: str, dtype: torch.dtype,
                                                                  limit: float) -> None:
    """max - min overflows the dtype: every value still lands in its bin, the largest in the last."""
    if engine == "numpy" and dtype == torch.bfloat16:
        pytest.skip("numpy has no bfloat16")
    fractions = [0.15, 0.35, 0.65]  # of the way from 0 to the limit: mid-bin of 20 (57.5 %, 67.5 %, 82.5 % up)
    t = torch.tensor([-limit, math.nan, *(f * limit for f in fractions), limit], dtype=torch.float64).to(dtype)
    torch.save({"w": t}, tmp_path / "w.pt")
    stats = stats_of(tmp_path / "w.pt", "w", engine)
    counts = stats["histogram"]["counts"]
    bins = len(counts)
    assert sum(counts) == 5 and counts[0] == 1 and counts[-1] == 1, counts
    assert [i for i, c in enumerate(counts[1:-1], 1) if c] == [int((1 + f) / 2 * bins) for f in fractions], counts

"""The values shown as they are next to a tensor's statistics (`first_values`): the first 100 in
row-major order, for views and sampled tensors too, each as text that reads back exactly."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from pthscope.reader import inspect
from pthscope.values import find_tensor, tensor_bytes
from pthscope.values import tensor_stats as stats_of_bytes
from pthscope.values.stats import FIRST_VALUES


def first_values(file: Path, key: str, **options: int) -> list[str]:
    checkpoint = inspect(file)
    st = os.stat(file)
    located = tensor_bytes(checkpoint, find_tensor(checkpoint, key), st.st_size, st.st_mtime_ns)
    result = stats_of_bytes(located, **options)
    assert "stats" in result, result
    return result["stats"].get("first_values", [])


def read_back(text: str, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        assert text in ("True", "False")
        return torch.tensor(text == "True")
    return torch.tensor(float(text) if dtype.is_floating_point else int(text), dtype=dtype)


@pytest.fixture(scope="module")
def tensors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    base = torch.randn(50, 40)
    base[0, :4] = torch.tensor([math.nan, math.inf, -math.inf, 0.0])
    made = {
        "scalar": torch.tensor(0.1),
        "float32": base,
        "float16": base.half(),
        "bfloat16": base.bfloat16(),
        "float64": base.double(),
        "int64": torch.tensor([2**62, -(2**62), 3]),
        "bool": base > 0,
        "transposed": base.t(),  # a view: row-major order of the view, not of its storage
        "column": base[3:, 7],
        "wide_rows": torch.arange(3 * 500, dtype=torch.int32).reshape(3, 500),
        "round": torch.tensor([3000.0, 1e-5, 123456.0, -2.5e20]),
        "empty": torch.zeros(0, 4),
    }
    file = tmp_path_factory.mktemp("first-values") / "tensors.pt"
    torch.save(made, file)
    return file, made


@pytest.mark.parametrize("key", ["scalar", "float32", "float16", "bfloat16", "float64", "int64", "bool",
                                 "transposed", "column", "wide_rows", "round"])
def test_the_first_values_read_back_exactly(tensors: tuple[Path, dict[str, torch.Tensor]], key: str) -> None:
    file, made = tensors
    expected = made[key].reshape(-1)[:FIRST_VALUES]
    shown = first_values(file, key)
    assert len(shown) == expected.numel()
    back = torch.stack([read_back(text, expected.dtype) for text in shown])
    assert torch.equal(back, expected) or torch.allclose(back, expected, equal_nan=True, rtol=0, atol=0)


def test_floats_are_as_short_as_their_dtype_allows(tensors: tuple[Path, dict[str, torch.Tensor]]) -> None:
    file, _ = tensors
    assert first_values(file, "scalar") == ["0.1"]  # float32 0.1, not 0.10000000149011612
    assert first_values(file, "float32")[:4] == ["nan", "inf", "-inf", "0"]
    assert first_values(file, "int64") == [str(2**62), str(-(2**62)), "3"]  # exact past 2**53
    assert first_values(file, "round") == ["3000", "1e-05", "123456", "-2.5e+20"]  # no 3e+03


def test_an_empty_tensor_has_none(tensors: tuple[Path, dict[str, torch.Tensor]]) -> None:
    file, _ = tensors
    assert first_values(file, "empty") == []

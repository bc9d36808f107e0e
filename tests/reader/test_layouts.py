"""Quantized, sparse, nested and meta tensors: shape, dtype and layout as torch.load sees them."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

import pthscope


def test_exotic_layouts_match_torch(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors are a prototype
        saved = {
            "q": torch.quantize_per_tensor(torch.randn(4, 3), 0.1, 2, torch.quint8),
            "qc": torch.quantize_per_channel(
                torch.randn(4, 3), torch.ones(4) * 0.1, torch.zeros(4, dtype=torch.long), 0, torch.qint8),
            "coo": torch.randn(5, 5).to_sparse(),
            "csr": torch.randn(4, 6).to_sparse_csr(),
            "meta": torch.empty(3, 3, device="meta"),
            "nested": torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)]),
        }
    path = tmp_path / "layouts.pth"
    torch.save(saved, path)
    checkpoint = pthscope.inspect(path)
    assert checkpoint.errors == [] and checkpoint.warnings == []
    ours = {t.key: t for t in checkpoint.tensors}
    loaded = torch.load(path, weights_only=True)
    for key in ("q", "qc", "coo", "csr", "meta"):
        assert ours[key].shape == list(loaded[key].shape), key
        assert ours[key].dtype == str(loaded[key].dtype).removeprefix("torch."), key
    assert ours["coo"].layout == "sparse_coo" and ours["csr"].layout == "sparse_csr"
    assert ours["q"].layout == "quantized" and ours["meta"].location == "meta"
    assert ours["nested"].layout == "nested" and ours["nested"].dtype == "float32"

"""The scan's rules on files made to break them, and the marks a report gives the tree."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pthscope.reader import inspect
from pthscope.values import jobs
from pthscope.values.commands import _ask_here
from pthscope.values.locate import located_tensors
from pthscope.values.scan import ScanMarks, ScanReport

from .layouts import Layout, write_layouts


def scan(file: Path) -> ScanReport:
    checkpoint = inspect(file)
    st = os.stat(file)
    return asyncio.run(jobs.scan(checkpoint.file, located_tensors(checkpoint, st.st_size, st.st_mtime_ns), _ask_here))


def kinds(report: ScanReport) -> dict[str, set[str]]:
    return {t["key"]: {f["kind"] for f in t["findings"]} for t in report.bad}


def test_every_rule(tmp_path: Path) -> None:
    torch.manual_seed(0)
    w = torch.randn(64, 64)
    spike = torch.randn(50_000) * 0.02
    spike[17] = 1e4
    state: dict[str, Any] = {
        "ok.weight": w, "ok.bias": torch.randn(64),
        "nan.weight": w.clone().index_fill_(0, torch.tensor([3]), math.nan),
        "inf.weight": w.clone().index_fill_(1, torch.tensor([0]), -math.inf),
        "half.weight": torch.full((8,), math.inf).half(),
        "zero.weight": torch.zeros(32, 4),
        "spike.weight": spike,
        "fp16risk.weight": w * 1e5,  # float32 values past float16's 65,504
        "bf16risk.weight": (w * 1e5).bfloat16(),
        "fp16.weight": (w * 100).half(),  # float16 already: no overflow risk to report
        "bn.running_mean": torch.zeros(64),  # a buffer at its initial value: not suspect
        "bn.num_batches_tracked": torch.tensor(0),  # integers are never judged
        "mask": torch.zeros(10, dtype=torch.bool),
        "sparse_ok": torch.zeros(100_000).index_fill_(0, torch.tensor([5, 9]), 1.0),  # sparse, not extreme
        "one_zero": torch.zeros(1),
        "c": torch.full((4,), complex(math.nan, 1.0), dtype=torch.complex64),
    }
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    report = scan(path)
    assert report.complete and report.total == len(state) and report.scanned == len(state)
    assert kinds(report) == {
        "nan.weight": {"nan"}, "inf.weight": {"inf"}, "half.weight": {"inf"}, "zero.weight": {"all_zero"},
        "spike.weight": {"extreme"}, "fp16risk.weight": {"fp16_overflow"}, "bf16risk.weight": {"fp16_overflow"},
        "c": {"nan"},
    }
    by_key = {t["key"]: t for t in report.bad}
    assert by_key["nan.weight"]["severity"] == "error" and by_key["nan.weight"]["stats"]["nan"] == 64
    assert by_key["inf.weight"]["stats"]["neginf"] == 64 and by_key["zero.weight"]["severity"] == "warning"
    assert "1e+04" in by_key["spike.weight"]["findings"][0]["message"]
    assert report.counts() == {"nan": 2, "inf": 2, "all_zero": 1, "extreme": 1, "fp16_overflow": 2}
    assert [t["key"] for t in report.bad] == [k for k in state if k in by_key]  # file order


def test_tied_weights_are_read_once_and_named_together(tmp_path: Path) -> None:
    shared = torch.full((3, 3), math.nan)
    path = tmp_path / "tied.pt"
    torch.save({"embed.weight": shared, "head.weight": shared, "other": torch.ones(2)}, path)
    report = scan(path)
    assert report.total == 2
    [bad] = report.bad
    assert bad["key"] == "embed.weight" and bad["aliases"] == ["head.weight"]
    marks = ScanMarks(report)
    assert marks.for_node("head.weight", True) == marks.for_node("embed.weight", True)
    assert marks.for_node("head", False)["tensors"] == 1 and marks.for_node("", False)["tensors"] == 2


def test_unreadable_tensors_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "layouts.pt"
    torch.save({"sparse": torch.eye(3).to_sparse(), "meta": torch.empty(2, device="meta"), "fine": torch.ones(3)}, path)
    report = scan(path)
    assert report.scanned == 1 and {u["key"] for u in report.unreadable} == {"sparse", "meta"}
    assert all(u["message"] for u in report.unreadable)


def test_marks_of_a_whole_model(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 2), nn.ReLU()))
    with torch.no_grad():
        model[1][0].weight[0, 0] = math.inf
        model[0].bias.zero_()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    report = scan(path)
    assert kinds(report) == {"1.0.weight": {"inf"}, "0.bias": {"all_zero"}}
    marks = ScanMarks(report)
    nodes = [{"key": "1", "kind": "module"}, {"key": "1.0", "kind": "module"}, {"key": "0", "kind": "module"},
             {"key": "0.weight", "kind": "tensor", "tensor": {}}, {"key": "", "kind": "module"}]
    marks.annotate(nodes)
    assert nodes[0]["scan"] == {"severity": "error", "label": "1 bad tensor", "tensors": 1}
    assert nodes[2]["scan"]["severity"] == "warning" and "scan" not in nodes[3]
    assert nodes[4]["scan"]["label"] == "1 with NaN/inf, 1 suspect"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    return write_layouts(tmp_path_factory.mktemp("scan-layouts"))


@pytest.mark.parametrize("layout", ["zip", "legacy", "cuda", "safetensors", "tar", "whole_model"])
def test_every_layout_scans_with_what_torch_sees(layouts: dict[str, Layout], layout: str) -> None:
    report = scan(layouts[layout].file)
    assert report.complete and not report.unreadable
    expected = set()
    for key, t in layouts[layout].tensors.items():
        x = t.abs() if t.is_complex() else t.float() if t.dtype.is_floating_point else None
        if x is not None and bool((~torch.isfinite(x)).any()):
            expected.add(key)
    errors = {k for t in report.bad if t["severity"] == "error" for k in (t["key"], *t["aliases"])}
    assert errors == expected

"""Diffs of real checkpoints: two epochs of a fine-tune where only `fc` trains, and every kind
of structure change, with the numbers checked against torch."""

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
from pthscope.values.diff import StructureDiff, diff_entries


class SmallResNet(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(self.pool(self.layer1(x)).flatten(1))


def diff(a: Path, b: Path, values: bool = True) -> dict[str, Any]:
    sides = []
    for file in (a, b):
        checkpoint = inspect(file)
        assert checkpoint.ok, checkpoint.errors
        st = os.stat(file)
        sides.append(diff_entries(checkpoint, st.st_size, st.st_mtime_ns, values))
    result = StructureDiff(*sides)
    if values:
        asyncio.run(jobs.diff_values(result, _ask_here))
    return result.to_json()


def train_two_epochs(folder: Path, bn_stats_frozen: bool) -> tuple[Path, Path, SmallResNet, dict[str, torch.Tensor]]:
    """Fine-tune only `fc` for two epochs; epoch 1 saved as a whole model, epoch 2 as a training
    dict of a DataParallel state_dict and the optimizer. Returns the files, the model and the
    epoch-1 state it started epoch 2 from."""
    torch.manual_seed(0)
    model = SmallResNet()
    for p in model.parameters():
        p.requires_grad = False
    for p in model.fc.parameters():
        p.requires_grad = True
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    images, labels = torch.randn(64, 3, 12, 12), torch.randint(0, 5, (64,))
    first, second = folder / "epoch1.pt", folder / "epoch2.pt"
    after_first: dict[str, torch.Tensor] = {}
    for epoch in (1, 2):
        model.train()
        if bn_stats_frozen:  # the frozen backbone's BatchNorm keeps its running statistics
            for module in (model.bn1, model.layer1):
                module.eval()
        for start in range(0, 64, 16):
            loss = nn.functional.cross_entropy(model(images[start:start + 16]), labels[start:start + 16])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        if epoch == 1:
            torch.save(model, first)
            after_first = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            torch.save({"epoch": 2, "model": nn.DataParallel(model).state_dict(), "optimizer": optimizer.state_dict()},
                       second)
    return first, second, model, after_first


def test_a_fine_tune_of_fc_only(tmp_path: Path) -> None:
    first, second, model, before = train_two_epochs(tmp_path, bn_stats_frozen=True)
    result = diff(first, second)
    s = result["summary"]
    after = model.state_dict()
    assert s["matched"] == len(after) and s["only_a"] == 0 and s["shape_changed"] == 0 and s["dtype_changed"] == 0
    assert s["only_b"] == 2  # SGD's two momentum buffers (optimizer state, in B only)
    assert result["stripped"] == ["", ""]  # model-relative names: the whole model and module.-prefixed keys agree
    rows = {r["name"]: r for r in result["tensors"]}
    for name, tensor in after.items():
        row = rows[name]
        assert row["key_b"] == f"model.module.{name}"
        if name.startswith("fc."):
            assert row["status"] == "changed"
            delta = (tensor.double() - before[name].double())
            values = row["values"]
            assert values["max_abs_diff"] == pytest.approx(float(delta.abs().max()), rel=1e-6)
            assert values["rel_change"] == pytest.approx(float(delta.norm() / before[name].double().norm()), rel=1e-6)
            assert values["changed"] == int((delta != 0).sum())
        else:
            assert row["status"] == "identical", name
    modules = {m["module"]: m for m in result["modules"]}
    assert modules["fc"]["status"] == "changed" and modules["fc"]["changed"] == 2
    assert all(m["status"] == "identical" for name, m in modules.items() if name in ("conv1", "bn1", "layer1.0", "layer1.1"))
    # A stores requires_grad (a whole model), B does not (a state_dict): no flip is claimed.
    assert s["grad_changed"] == 0 and rows["fc.weight"]["requires_grad_a"] is True
    assert rows["fc.weight"]["requires_grad_b"] is None


def test_running_statistics_change_even_when_the_backbone_is_frozen(tmp_path: Path) -> None:
    first, second, _, _ = train_two_epochs(tmp_path, bn_stats_frozen=False)
    rows = {r["name"]: r for r in diff(first, second)["tensors"]}
    assert rows["bn1.weight"]["status"] == "identical" and rows["conv1.weight"]["status"] == "identical"
    assert rows["bn1.running_mean"]["status"] == "changed"  # BatchNorm in train mode updates its buffers
    assert rows["bn1.num_batches_tracked"]["values"]["max_abs_diff"] == 4.0


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_structure_changes_and_prefixes(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = SmallResNet()
    sd = net.state_dict()
    plain = _save(tmp_path / "plain.pt", sd)
    bigger = SmallResNet(classes=7).state_dict()
    bigger.update({k: v for k, v in sd.items() if not k.startswith("fc.")})
    resized = _save(tmp_path / "resized.pt", bigger)
    result = diff(plain, resized, values=False)
    shapes = {r["name"]: (r["shape_a"], r["shape_b"]) for r in result["tensors"] if r["status"] == "shape"}
    assert shapes == {"fc.weight": ([5, 8], [7, 8]), "fc.bias": ([5], [7])}
    assert result["summary"]["shape_changed"] == 2

    halved = _save(tmp_path / "half.pt", {k: v.half() if v.is_floating_point() else v for k, v in sd.items()})
    result = diff(plain, halved)
    float_keys = {k for k, v in sd.items() if v.is_floating_point()}
    assert {r["name"] for r in result["tensors"] if r["dtype_a"] != r["dtype_b"]} == float_keys
    rows = {r["name"]: r for r in result["tensors"]}
    w = sd["conv1.weight"].double()
    assert rows["conv1.weight"]["values"]["max_abs_diff"] == pytest.approx(float((w.half().double() - w).abs().max()),
                                                                          rel=1e-6)

    lightning = _save(tmp_path / "lit.ckpt", {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1,
                                               "global_step": 10, "pytorch-lightning_version": "2.4.0"})
    compiled = _save(tmp_path / "compiled.pt", {f"_orig_mod.{k}": v for k, v in sd.items()})
    for other in (lightning, compiled):
        result = diff(plain, other)
        assert result["summary"]["matched"] == len(sd) and result["summary"]["identical"] == len(sd), other
    assert diff(plain, lightning)["stripped"] == ["", "model."]

    frozen = SmallResNet()
    frozen.load_state_dict(sd)
    for p in frozen.conv1.parameters():
        p.requires_grad = False
    whole_a, whole_b = _save(tmp_path / "a.pt", net), _save(tmp_path / "b.pt", frozen)
    result = diff(whole_a, whole_b)
    assert {r["name"] for r in result["tensors"] if r["grad_changed"]} == {"conv1.weight"}
    assert result["summary"]["identical"] == len(sd)


@pytest.mark.parametrize("chunked", [False, True])
def test_values_of_views_nan_and_mixed_dtypes(tmp_path: Path, chunked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if chunked:  # many chunks, in many mapped windows: the same answers
        from pthscope.values import diff as diff_module
        from pthscope.values import reading

        monkeypatch.setattr(diff_module, "CHUNK_ELEMENTS", 37)
        monkeypatch.setattr(reading, "WINDOW_BYTES", 1024)
    torch.manual_seed(2)
    t = torch.randn(30, 20)
    a = _save(tmp_path / "a.pt", {"w": t, "v": t.t(), "nan": torch.tensor([1.0, math.nan, math.inf, 2.0]),
                                  "mixed": t})
    b = _save(tmp_path / "b.pt", {"w": t.t().contiguous().t(), "v": t.t() + 1e-3,
                                  "nan": torch.tensor([1.0, math.nan, 5.0, 2.5]), "mixed": t.bfloat16()})
    rows = {r["name"]: r for r in diff(a, b)["tensors"]}
    assert rows["w"]["status"] == "identical"  # same values through another stride
    assert rows["v"]["values"]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    nan = rows["nan"]["values"]
    assert nan["changed"] == 2 and nan["nonfinite"] == 1 and nan["max_abs_diff"] == pytest.approx(0.5)
    mixed = rows["mixed"]["values"]
    expected = (t.bfloat16().double() - t.double()).abs().max()
    assert not mixed["identical"] and mixed["max_abs_diff"] == pytest.approx(float(expected), rel=1e-6)


def test_a_checkpoint_and_its_safetensors_conversion_are_identical(tmp_path: Path) -> None:
    """Across formats: the training dict of the fine-tune against the safetensors file pthscope
    wrote from it (model tensors, named as the model names them)."""
    from pthscope.values.convert import convert_plan

    _, second, model, _ = train_two_epochs(tmp_path, bn_stats_frozen=True)
    checkpoint = inspect(second)
    st = os.stat(second)
    out = tmp_path / "epoch2.safetensors"
    asyncio.run(jobs.convert(convert_plan(checkpoint, st.st_size, st.st_mtime_ns), str(out), _ask_here))
    result = diff(second, out)
    s = result["summary"]
    assert s["matched"] == len(model.state_dict()) and s["identical"] == s["matched"] and s["only_b"] == 0
    assert s["only_a"] == 2  # the optimizer state is not converted

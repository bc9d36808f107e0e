"""TorchScript archives (torch.jit.save), scripted and traced, against torch.jit.load's own view:
named_parameters (shape, dtype, requires_grad), named_buffers, named_modules (class, training);
plain tensor attributes and constants; statistics from the archive's bytes; hostile and broken
archives."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

import pthscope
from pthscope.reader.model import Checkpoint
from pthscope.reader.torchscript import demangled
from pthscope.values import tensor_bytes, tensor_stats

from . import hostile_files as H


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.bn = nn.BatchNorm1d(width)
        self.register_buffer("mask", torch.ones(width))
        self.scale = torch.tensor(2.0)  # a plain tensor attribute: neither parameter nor buffer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x)) * self.mask * self.scale


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(4), Block(4), Block(4)])
        self.head = nn.Linear(4, 2)
        self.alpha = 0.5
        for p in self.blocks[0].parameters():
            p.requires_grad_(False)  # frozen layers
        self.blocks[1].eval()  # a submodule in eval mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x) * self.alpha


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("torchscript")
    torch.manual_seed(0)
    net = Net()
    scripted, traced = folder / "scripted.pt", folder / "traced.pt"
    torch.jit.save(torch.jit.script(net), scripted)
    torch.jit.save(torch.jit.trace(Net().eval(), torch.randn(3, 4)), traced)
    frozen = folder / "frozen.pt"  # torch.jit.freeze: parameters folded into constants
    torch.jit.save(torch.jit.freeze(torch.jit.script(Net().eval())), frozen)
    return {"scripted": scripted, "traced": traced, "frozen": frozen}


def by_key(checkpoint: Checkpoint) -> dict[str, object]:
    return {t.key: t for t in checkpoint.tensors}


@pytest.mark.parametrize("name", ["scripted", "traced"])
def test_parameters_buffers_and_modules_match_torch_jit_load(archives: dict[str, Path], name: str) -> None:
    checkpoint = pthscope.inspect(archives[name])
    assert checkpoint.format == "torchscript" and not checkpoint.errors
    truth = torch.jit.load(str(archives[name]))
    ours = {t.key: t for t in checkpoint.tensors}
    parameters = {k: t for k, t in ours.items() if t.role == "parameter"}
    buffers = {k: t for k, t in ours.items() if t.role == "buffer"}
    assert set(parameters) == {k for k, _ in truth.named_parameters()}
    assert set(buffers) == {k for k, _ in truth.named_buffers()}
    for key, p in truth.named_parameters():
        t = parameters[key]
        assert (t.shape, t.dtype, t.requires_grad, t.kind) == (list(p.shape), str(p.dtype)[6:], p.requires_grad, "parameter")
        assert t.grad_state == ("trainable" if p.requires_grad else "frozen")
    for key, b in truth.named_buffers():
        assert (buffers[key].shape, buffers[key].dtype) == (list(b.shape), str(b.dtype)[6:])
    modules = {m.key: m for m in checkpoint.modules}
    assert set(modules) == {k for k, _ in truth.named_modules()}
    for key, module in truth.named_modules():
        assert modules[key].training == module.training, key
        assert modules[key].class_name.rsplit(".", 1)[-1] == module.original_name, key
    summary = checkpoint.summary()["roles"]["parameter"]
    assert summary["elements"] == sum(p.numel() for p in truth.parameters())
    assert summary["frozen"] == sum(p.numel() for p in truth.parameters() if not p.requires_grad)


def test_plain_tensor_attributes_and_mangled_classes(archives: dict[str, Path]) -> None:
    checkpoint = pthscope.inspect(archives["scripted"])
    truth = torch.jit.load(str(archives["scripted"]))
    scale = by_key(checkpoint)["blocks.0.scale"]
    assert scale.role == "other" and scale.shape == list(getattr(truth.blocks, "0").scale.shape)
    # Linear(4, 4) and Linear(4, 2) compile to two classes: one name is mangled, shown demangled,
    # the saved name kept as the node's type.
    head = next(c for c in checkpoint.root.children if c.name == "head")  # type: ignore[union-attr]
    assert checkpoint.modules[head.module].class_name == "torch.nn.modules.linear.Linear"  # type: ignore[index]
    assert head.type.startswith("__torch__.torch.nn.modules.linear.")
    assert demangled("__torch__.torch.nn.modules.linear.___torch_mangle_0.Linear") == "torch.nn.modules.linear.Linear"
    assert demangled("__torch__.Net") == "Net"
    net = next(m for m in checkpoint.modules if m.key == "")
    assert net.class_name.endswith("test_torchscript.Net")


def test_traced_constants_are_listed(archives: dict[str, Path]) -> None:
    checkpoint = pthscope.inspect(archives["traced"])
    constants = [t for t in checkpoint.tensors if t.path[0] == "constants.pkl"]
    with zipfile.ZipFile(archives["traced"]) as z:
        stored = [n for n in z.namelist() if "/constants/" in n]
    assert len(constants) == len(stored) > 0
    assert all(t.role == "other" and t.storage.startswith("constants/") for t in constants)
    assert checkpoint.metadata["constants"] == str(len(constants))


def test_frozen_module_keeps_constants(archives: dict[str, Path]) -> None:
    checkpoint = pthscope.inspect(archives["frozen"])
    truth = torch.jit.load(str(archives["frozen"]))
    assert not checkpoint.errors
    assert {t.key for t in checkpoint.tensors if t.role == "parameter"} == {k for k, _ in truth.named_parameters()}
    assert any(t.path[0] == "constants.pkl" for t in checkpoint.tensors)  # the folded weights


@pytest.mark.parametrize("key", ["head.weight", "blocks.1.bn.running_var", "blocks.0.scale"])
def test_statistics_are_the_archives_values(archives: dict[str, Path], key: str) -> None:
    path = archives["scripted"]
    checkpoint = pthscope.inspect(path)
    tensor = by_key(checkpoint)[key]
    st = os.stat(path)
    stats = tensor_stats(tensor_bytes(checkpoint, tensor, st.st_size, st.st_mtime_ns))["stats"]  # type: ignore[arg-type]
    value = dict(torch.jit.load(str(path)).state_dict(), **{"blocks.0.scale": torch.tensor(2.0)})[key]
    assert stats["min"] == pytest.approx(float(value.min())) and stats["max"] == pytest.approx(float(value.max()))


def test_the_warning_says_torch_jit_load_runs_code(archives: dict[str, Path]) -> None:
    checkpoint = pthscope.inspect(archives["scripted"])
    code = [w for w in checkpoint.warnings if w.kind == "code"]
    assert code and "torch.jit.load" in code[0].message
    assert all(g.risk != "dangerous" for g in checkpoint.globals)
    # What loads it: torch.jit.load, to which torch.load hands it; weights_only=True refuses it.
    assert checkpoint.to_json()["loader"] == {"call": "torch.jit.load", "weights_only": False, "own_types_only": True, "weights_only_refuses": "", "refuses": ""}
    with pytest.raises(RuntimeError, match="weights_only"):
        torch.load(archives["scripted"], weights_only=True)
    script_classes = {g.name.rsplit(".", 1)[-1] for g in checkpoint.globals if g.name.startswith("__torch__.")}
    assert script_classes >= {"Net", "Block", "ModuleList", "Linear", "BatchNorm1d"}


class WithLists(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.sizes, self.rates, self.flags = [2, 2], [0.5, 0.25], [True, False]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.rates[0] * self.sizes[0] * float(self.flags[0])


def test_torch_jit_list_builders_are_not_classes(tmp_path: Path) -> None:
    """`torch.jit._pickle.build_intlist` & co. are torch.jit.load's own; they only return their data."""
    path = tmp_path / "lists.pt"
    torch.jit.save(torch.jit.script(WithLists()), path)
    loaded = torch.jit.load(path)
    assert (loaded.sizes, loaded.rates, loaded.flags) == ([2, 2], [0.5, 0.25], [True, False])
    checkpoint = pthscope.inspect(path)
    builders = {g.name: g.risk for g in checkpoint.globals if g.name.startswith("torch.jit._pickle.")}
    assert set(builders) >= {"torch.jit._pickle.build_intlist", "torch.jit._pickle.build_doublelist",
                             "torch.jit._pickle.build_boollist"}
    assert set(builders.values()) == {"safe"}
    assert {demangled(g.name).rsplit(".", 1)[-1] for g in checkpoint.globals if g.risk != "safe"} == {
        "WithLists", "Linear"}  # the classes, and only they


# ---------------------------------------------------------------------------------------------
# Hostile archives: a payload in any of its pickles is flagged, never run; torch.jit.load
# refuses the same payload (its unpickler resolves only torch's globals), pickle.load runs it.


_OUR_CODE = "code/__torch__/tests/reader/test_torchscript.py"  # where this module's classes are compiled to


def _replace_member(source: Path, target: Path, member: str, data: bytes) -> None:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        prefix = zin.namelist()[0].split("/")[0]
        assert f"{prefix}/{member}" in zin.namelist()
        for info in zin.infolist():
            zout.writestr(info, data if info.filename == f"{prefix}/{member}" else zin.read(info.filename))


@pytest.mark.parametrize("member", ["constants.pkl", "data.pkl", f"{_OUR_CODE}.debug_pkl"])
def test_a_payload_in_any_pickle_is_flagged_and_not_run(archives: dict[str, Path], tmp_path: Path, member: str) -> None:
    canary = tmp_path / "canary"
    payload = H.Asm().call("posix", "system", H.s(H.shell_touch(canary))).stop()
    hostile = tmp_path / "hostile.pt"
    _replace_member(archives["scripted"], hostile, member, payload)
    checkpoint = pthscope.inspect(hostile)
    assert {g.name for g in checkpoint.globals if g.risk == "dangerous"} == {"posix.system"}
    warning = next(w for w in checkpoint.warnings if w.kind == "dangerous-globals")
    assert warning.message.startswith("a Python unpickler") and "torch.jit.load refuses" in warning.message
    assert not canary.exists()
    # The payload is real: Python's unpickler runs it.
    with zipfile.ZipFile(hostile) as z:
        pickle.loads(z.read(f"scripted/{member}"))
    assert canary.exists()


def test_torch_jit_load_refuses_the_payload(archives: dict[str, Path], tmp_path: Path) -> None:
    """What the warning says of torch.jit.load, checked in a child process."""
    canary = tmp_path / "canary"
    hostile = tmp_path / "hostile.pt"
    _replace_member(archives["scripted"], hostile, "constants.pkl",
                    H.Asm().call("posix", "system", H.s(H.shell_touch(canary))).stop())
    run = subprocess.run([sys.executable, "-c", f"import torch; torch.jit.load({str(hostile)!r})"],
                         capture_output=True, timeout=120)
    assert run.returncode != 0 and not canary.exists()


def test_a_truncated_archive_names_the_cut(archives: dict[str, Path], tmp_path: Path) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(archives["scripted"].read_bytes()[:5000])
    checkpoint = pthscope.inspect(cut)
    assert checkpoint.errors and checkpoint.errors[0].kind == "truncated"


def test_code_that_does_not_parse_is_named(archives: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.pt"
    _replace_member(archives["scripted"], broken, _OUR_CODE, b"class Net(Module:\n")
    checkpoint = pthscope.inspect(broken)
    assert any(w.kind == "corrupt" and w.where.endswith(_OUR_CODE) for w in checkpoint.warnings)
    # Net and Block lost their declarations: their tensors are shown, as plain attributes.
    assert any(w.kind == "missing" for w in checkpoint.warnings)
    assert "blocks.0.mask" in by_key(checkpoint)


def test_an_archive_without_data_pkl_is_corrupt(archives: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "no-data.pt"
    with zipfile.ZipFile(archives["scripted"]) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith("/data.pkl"):
                zout.writestr(info, zin.read(info.filename))
    checkpoint = pthscope.inspect(target)
    assert checkpoint.format == "torchscript"
    assert any("data.pkl" in e.message for e in checkpoint.errors)

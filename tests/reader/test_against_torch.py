"""Every fixture, read by pthscope, agrees field by field with what torch.load returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import pthscope
from pthscope.reader.model import Checkpoint

from .fixtures import make_all


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bool]]:
    return make_all(tmp_path_factory.mktemp("fixtures"))


def _flatten(obj: Any, path: tuple[Any, ...], out: dict[tuple[Any, ...], tuple[Any, str]]) -> None:
    """The same walk the reader documents: dict keys, sequence indices, module attribute names."""
    if isinstance(obj, nn.Module):
        for name, p in obj._parameters.items():
            if p is not None:
                out[(*path, name)] = (p, "parameter")
        for name, b in obj._buffers.items():
            if b is not None:
                out[(*path, name)] = (b, "buffer")
        for name, m in obj._modules.items():
            if m is not None:
                _flatten(m, (*path, name), out)
        for name, value in vars(obj).items():
            if not name.startswith("_") and isinstance(value, torch.Tensor):
                out[(*path, name)] = (value, "tensor")
    elif isinstance(obj, torch.Tensor):
        out[path] = (obj, "parameter" if isinstance(obj, nn.Parameter) else "tensor")
    elif isinstance(obj, np.ndarray):
        out[path] = (obj, "ndarray")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, (*path, k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, (*path, i), out)


def _torch_view(path: Path, unsafe: bool) -> dict[tuple[Any, ...], tuple[Any, str]]:
    loaded = torch.load(path, weights_only=not unsafe, map_location="cpu")  # our own fixture
    out: dict[tuple[Any, ...], tuple[Any, str]] = {}
    _flatten(loaded, (), out)
    return out


def test_every_fixture_matches_torch_load(fixtures: dict[str, tuple[Path, bool]]) -> None:
    for name, (path, unsafe) in fixtures.items():
        checkpoint = pthscope.inspect(path)
        assert checkpoint.errors == [], (name, checkpoint.errors)
        expected = _torch_view(path, unsafe)
        ours = {tuple(t.path): t for t in checkpoint.tensors}
        assert set(ours) == set(expected), name
        storage_of: dict[int, str] = {}
        for key, (value, kind) in expected.items():
            info = ours[key]
            assert info.kind == kind, (name, key)
            assert info.shape == list(value.shape), (name, key)
            if kind == "ndarray":
                assert info.dtype == str(value.dtype), (name, key)
                continue
            assert info.dtype == str(value.dtype).removeprefix("torch."), (name, key)
            assert info.requires_grad == value.requires_grad, (name, key)
            assert info.stride == list(value.stride()), (name, key)
            assert info.storage_offset == value.storage_offset(), (name, key)
            assert info.location == "cpu"
            assert info.nbytes == value.numel() * value.element_size(), (name, key)
            # Tensors share a storage in torch exactly when they share one in our report.
            ptr = value.untyped_storage().data_ptr()
            if value.numel():
                assert storage_of.setdefault(ptr, info.storage) == info.storage, (name, key)


def test_whole_model_keeps_module_tree_and_flags(fixtures: dict[str, tuple[Path, bool]]) -> None:
    for fmt in ("zip", "legacy"):
        path, _ = fixtures[f"whole_model.{fmt}"]
        checkpoint = pthscope.inspect(path)
        model = torch.load(path, weights_only=False)  # our own fixture, class importable here
        modules = {m.key: m for m in checkpoint.modules}
        for name, module in model.named_modules():
            info = modules[name]
            assert info.class_name.endswith(type(module).__qualname__)
            assert info.training == module.training
            params = list(module.parameters())
            assert info.parameters.total == sum(p.numel() for p in params)
            assert info.parameters.trainable == sum(p.numel() for p in params if p.requires_grad)
            assert info.parameters.frozen == sum(p.numel() for p in params if not p.requires_grad)
        assert checkpoint.summary()["requires_grad_stored"] is True
        non_persistent = {t.key for t in checkpoint.tensors if not t.persistent}
        assert non_persistent == {"layers.0.scale", "layers.1.scale"}
        assert {g.name: g.risk for g in checkpoint.globals}["tests.reader.user_models.SmallNet"] == "unknown"


def test_state_dict_does_not_claim_flags(fixtures: dict[str, tuple[Path, bool]]) -> None:
    checkpoint = pthscope.inspect(fixtures["state_dict.zip"][0])
    assert {t.grad_state for t in checkpoint.tensors} == {"not stored"}
    assert checkpoint.summary()["requires_grad_stored"] is False
    assert all(g.risk == "safe" for g in checkpoint.globals)


def test_tied_weights_are_reported(fixtures: dict[str, tuple[Path, bool]]) -> None:
    for name in ("tied_model.zip", "tied_state_dict.zip", "tied_model.legacy"):
        checkpoint = pthscope.inspect(fixtures[name][0])
        by_key = {t.key: t for t in checkpoint.tensors}
        assert by_key["decoder.weight"].shared_with == ["embed.weight"], name
        assert by_key["embed.weight"].shared_with == ["decoder.weight"], name


def test_training_checkpoint_plain_values_and_objects(fixtures: dict[str, tuple[Path, bool]]) -> None:
    checkpoint = pthscope.inspect(fixtures["training.zip"][0])
    root = checkpoint.root
    assert root is not None
    top = {c.name: c for c in root.children}
    assert top["epoch"].value == "7"
    assert top["best_acc"].value == "0.875"
    assert top["args"].kind == "object" and top["args"].type == "argparse.Namespace"
    assert {c.name: c.value for c in top["args"].children} == {"lr": "0.1", "arch": "'smallnet'"}
    groups = next(c for c in top["optimizer"].children if c.name == "param_groups")
    lr = next(c for c in groups.children[0].children if c.name == "lr")
    assert lr.value == "0.1"
    risks = {g.name: g.risk for g in checkpoint.globals}
    assert risks["argparse.Namespace"] == "unknown"
    assert not [g for g in checkpoint.globals if g.risk == "dangerous"]


def test_lightning_and_data_parallel_keys(fixtures: dict[str, tuple[Path, bool]]) -> None:
    lightning = pthscope.inspect(fixtures["lightning.zip"][0])
    keys = [t.key for t in lightning.tensors]
    assert "state_dict.model.0.weight" in keys
    assert any(k.startswith("optimizer_states.0.state.0.exp_avg") for k in keys)
    dp = pthscope.inspect(fixtures["data_parallel.zip"][0])
    assert [t.key for t in dp.tensors] == ["module.weight", "module.bias"]


def test_json_contract_fields(fixtures: dict[str, tuple[Path, bool]]) -> None:
    payload = pthscope.inspect(fixtures["whole_model.zip"][0]).to_json()
    assert set(payload) >= {"file", "format", "tensors", "modules", "globals", "warnings", "errors"}
    tensor = payload["tensors"][0]
    assert set(tensor) >= {"path", "key", "shape", "dtype", "requires_grad", "kind", "location",
                           "stride", "storage_offset", "nbytes", "storage"}
    assert payload["format"] == "torch-zip"
    assert set(payload["modules"][0]) >= {"path", "class", "training", "parameters"}


def test_reader_never_imports_torch(tmp_path: Path, fixtures: dict[str, tuple[Path, bool]]) -> None:
    import subprocess
    import sys

    code = (
        "import sys, pthscope\n"
        f"c = pthscope.inspect({str(fixtures['whole_model.zip'][0])!r})\n"
        "assert not c.errors and c.tensors\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def _names(checkpoint: Checkpoint) -> list[str]:
    return [t.key for t in checkpoint.tensors]


def test_dict_subclass_items_are_its_children(tmp_path: Path) -> None:
    from .user_models import AttributeDict

    path = tmp_path / "sub.pth"
    state = AttributeDict({"fc.weight": torch.ones(2, 2), "lr": 0.1})
    torch.save({"state_dict": state}, path)
    checkpoint = pthscope.inspect(path)
    assert [t.key for t in checkpoint.tensors] == ["state_dict.fc.weight"]
    assert checkpoint.root is not None
    node = checkpoint.root.children[0]
    assert node.kind == "dict" and node.type == "tests.reader.user_models.AttributeDict"
    assert [c.name for c in node.children] == ["fc.weight", "lr"]

"""Conversions of every kind of file to safetensors, loaded back and compared with torch.load."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model
from torch import nn

from pthscope.reader import inspect
from pthscope.values import jobs
from pthscope.values.commands import _ask_here
from pthscope.values.convert import ConvertError, convert_plan
from tests.model_kinds import write_kinds
from tests.reader.user_models import SmallNet, TiedLM

from .layouts import Layout, relocate, write_layouts


def convert(source: Path, out: Path, everything: bool = False) -> dict[str, Any]:
    checkpoint = inspect(source)
    assert checkpoint.ok, checkpoint.errors
    st = os.stat(source)
    plan = convert_plan(checkpoint, st.st_size, st.st_mtime_ns, everything)
    assert not plan["errors"], plan["errors"]
    return asyncio.run(jobs.convert(plan, str(out), _ask_here))


def walk(obj: Any, path: list[Any]) -> Any:
    """The object at a reader path inside what torch loaded (dicts, lists, modules)."""
    for element in path:
        if isinstance(obj, dict):
            obj = obj[element]
        elif isinstance(obj, (list, tuple)):
            obj = obj[int(element)]
        else:
            obj = getattr(obj, str(element))
    return obj


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal element for element, NaN included: the bytes of both, contiguous."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)) if a.numel() else True


def check_every_tensor(source: Path, out: Path, loaded: Any) -> int:
    """Every tensor of the source (by key, or its tied alias) is in the output, bit for bit."""
    written = load_file(out)
    with safe_open(out, "pt") as f:
        metadata = f.metadata()
    checked = 0
    for info in inspect(source).tensors:
        name = metadata.get(info.key, info.key)
        assert name in written, info.key
        expected = walk(loaded, info.path)
        assert same_bits(written[name], expected.detach()), info.key
        checked += 1
    return checked


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_kinds(tmp_path_factory.mktemp("kinds"))


KIND_NAMES = ["whole_model", "state_dict", "legacy_state_dict", "tied_model", "tied_state_dict", "batchnorm",
              "numeric_keys", "lightning_adam", "training_sgd", "legacy_training", "model_and_ema",
              "lightning_with_ema", "gan", "whole_model_in_dict", "data_parallel", "compiled", "safetensors"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_kind_round_trips_tensor_for_tensor(kinds: dict[str, Any], kind: str, tmp_path: Path) -> None:
    source = kinds[kind].file
    out = tmp_path / "all.safetensors"
    convert(source, out, everything=True)
    loaded = load_file(source) if source.suffix == ".safetensors" else torch.load(source, weights_only=False)
    assert check_every_tensor(source, out, loaded) == len(inspect(source).tensors)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Layout]:
    return write_layouts(tmp_path_factory.mktemp("convert-layouts"))


UNWRITABLE = {"float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "complex128"}


@pytest.mark.parametrize("layout", ["zip", "legacy", "cuda", "safetensors", "tar", "whole_model"])
def test_every_layout_round_trips(layouts: dict[str, Layout], layout: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Views materialised, tied keys stored once, storages saved on cuda:1 read without CUDA; the
    bytes copied in many small pieces."""
    from pthscope.values import convert as convert_module
    from pthscope.values import reading

    monkeypatch.setattr(convert_module, "COPY_BYTES", 4096)
    monkeypatch.setattr(convert_module, "CHUNK_ELEMENTS", 101)
    monkeypatch.setattr(reading, "WINDOW_BYTES", 2048)
    source = layouts[layout].file
    if layout in ("zip", "cuda", "legacy"):  # dtypes safetensors.torch cannot load: refused, by name
        with pytest.raises(AssertionError, match="complex128"):
            convert(source, tmp_path / "refused.safetensors", everything=True)
        kept = {k: v for k, v in layouts[layout].tensors.items() if k not in UNWRITABLE}
        source = tmp_path / "writable.pt"
        torch.save(kept, source, _use_new_zipfile_serialization=layout != "legacy")
        if layout == "cuda":
            relocate(source, tmp_path / "writable-cuda.pt", b"cuda:1")
            source = tmp_path / "writable-cuda.pt"
            assert {t.location for t in inspect(source).tensors} == {"cuda:1"}
    out = tmp_path / "out.safetensors"
    convert(source, out, everything=True)
    loaded = (load_file(source) if source.suffix == ".safetensors"
              else torch.load(source, weights_only=False, map_location="cpu"))
    check_every_tensor(source, out, loaded)
    if layout == "zip":
        with safe_open(out, "pt") as f:
            # `float32` is `base.to(torch.float32)`, which is `base` itself: all three are one tensor
            assert f.metadata()["tied.a"] == f.metadata()["tied.b"] == "float32" and "tied.b" not in set(f.keys())


def test_by_default_the_model_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SmallNet()
    net.freeze_backbone()
    optimizer = torch.optim.Adam(net.parameters())
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    source = tmp_path / "training.pt"
    torch.save({"epoch": 4, "model": nn.DataParallel(net).state_dict(), "optimizer": optimizer.state_dict(),
                "config": {"lr": 0.1}}, source)
    out = tmp_path / "model.safetensors"
    result = convert(source, out)
    written = load_file(out)
    assert written.keys() == net.state_dict().keys()  # module. dropped: what net.load_state_dict takes
    assert all(torch.equal(written[k], v) for k, v in net.state_dict().items())
    assert result["model_only"] and result["left_out"] == {"optimizer_state": len(optimizer.state_dict()["state"]) * 3}
    assert {d["key"] for d in result["dropped"]} >= {"epoch", "config.lr"}
    fresh = SmallNet()
    fresh.load_state_dict(written)  # loads as is

    whole = tmp_path / "whole.pt"
    torch.save(net, whole)
    convert(whole, out)
    assert load_file(out).keys() == net.state_dict().keys()


def test_tied_weights_are_tied_again_by_load_model(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = TiedLM()
    source = tmp_path / "tied.pt"
    torch.save(model.state_dict(), source)
    out = tmp_path / "tied.safetensors"
    result = convert(source, out)
    assert result["aliases"] == {"decoder.weight": "embed.weight"} and result["tensors"] == 1
    fresh = TiedLM()
    missing, unexpected = load_model(fresh, out)
    assert not missing and not unexpected
    assert torch.equal(fresh.decoder.weight, model.embed.weight) and fresh.decoder.weight is fresh.embed.weight


def test_a_sparse_model_tensor_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "sparse.pt"
    torch.save({"weight": torch.eye(4).to_sparse(), "bias": torch.zeros(4)}, source)
    checkpoint = inspect(source)
    st = os.stat(source)
    plan = convert_plan(checkpoint, st.st_size, st.st_mtime_ns)
    assert [e["key"] for e in plan["errors"]] == ["weight"] and "sparse" in plan["errors"][0]["message"]
    unreadable = tmp_path / "cut.pt"
    unreadable.write_bytes(source.read_bytes()[:100])
    with pytest.raises(ConvertError, match="could not be read"):
        convert_plan(inspect(unreadable), 100, 0)

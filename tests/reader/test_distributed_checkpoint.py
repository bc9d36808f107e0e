"""torch.distributed.checkpoint folders against torch's own view (`FileSystemReader.read_metadata()`,
`dcp.load`): a model + Adam saved by one process and an FSDP2 model + Adam saved by two ranks;
metadata laid out as older and newer releases write it; hostile and broken folders."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import (
    BytesStorageMetadata,
    MetadataIndex,
    TensorStorageMetadata,
)

import pthscope
from pthscope.reader.model import Checkpoint, Node, TensorInfo
from pthscope.values import tensor_bytes, tensor_stats

from . import hostile_files as H


def model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    model[0].weight.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world-size-1 save (no process group: dcp.save warns and saves alone)."""
    folder = tmp_path_factory.mktemp("dcp") / "checkpoint"
    model, optimizer = model_and_optimizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"model": model.state_dict(), "optim": optimizer.state_dict(),
                  "extra": {"epoch": 7, "note": "best", "history": [0.5, 0.25]}}, checkpoint_id=str(folder))
    return folder


def nodes_by_key(node: Node, out: dict[str, Node] | None = None) -> dict[str, Node]:
    out = {} if out is None else out
    out[node.key] = node
    for child in node.children:
        nodes_by_key(child, out)
    return out


def tensor_at(checkpoint: Checkpoint, path: tuple[Any, ...]) -> TensorInfo:
    return next(t for t in checkpoint.tensors if tuple(t.path) == path)


@pytest.fixture(params=["single", "fsdp"])
def folder(request: pytest.FixtureRequest, single: Path, distributed_files: Path) -> Path:
    return single if request.param == "single" else distributed_files / "fsdp_dcp"


def test_every_entry_matches_read_metadata(folder: Path) -> None:
    metadata = FileSystemReader(str(folder)).read_metadata()
    checkpoint = pthscope.inspect(folder)
    assert checkpoint.format == "torch-distributed" and not checkpoint.errors, checkpoint.errors
    assert checkpoint.metadata["entries"] == f"{len(metadata.state_dict_metadata):,}"
    nodes = nodes_by_key(checkpoint.root)  # type: ignore[arg-type]
    tensors = 0
    for key, entry in metadata.state_dict_metadata.items():
        path = metadata.planner_data[key]  # the flattened key, mapped back to where it was saved
        if isinstance(entry, TensorStorageMetadata):
            tensors += 1
            ours = tensor_at(checkpoint, path)
            assert (ours.shape, ours.dtype) == (list(entry.size), str(entry.properties.dtype)[6:]), key
            assert ours.sharding is not None and ours.sharding.global_shape == list(entry.size)
            assert len(ours.sharding.chunks) == len(entry.chunks)
            for chunk, theirs in zip(ours.sharding.chunks, entry.chunks, strict=True):
                assert (chunk.offsets, chunk.sizes) == (list(theirs.offsets), list(theirs.sizes))
                info = metadata.storage_data[MetadataIndex(key, theirs.offsets)]
                assert chunk.part is not None
                assert checkpoint.parts[chunk.part].file == str(folder / info.relative_path)
                assert (chunk.byte_offset, chunk.byte_length) == (info.offset, info.length)
                assert chunk.rank == int(info.relative_path.split("_")[2])  # __R_N.distcp
        else:
            assert isinstance(entry, BytesStorageMetadata)
            assert ".".join(map(str, path)) in nodes, key
    assert len(checkpoint.tensors) == tensors


def test_bytes_entries_are_the_saved_values(single: Path) -> None:
    metadata = FileSystemReader(str(single)).read_metadata()
    nodes = nodes_by_key(pthscope.inspect(single).root)  # type: ignore[arg-type]
    data = (single / "__0_0.distcp").read_bytes()
    for key, entry in metadata.state_dict_metadata.items():
        if isinstance(entry, BytesStorageMetadata):
            info = metadata.storage_data[MetadataIndex(key)]
            value = torch.load(io.BytesIO(data[info.offset:info.offset + info.length]), weights_only=False)
            node = nodes[".".join(map(str, metadata.planner_data[key]))]
            if isinstance(value, (int, float, str, bool, type(None))):
                assert node.value == repr(value), key
            else:
                assert len(node.children) == len(value), key


def test_roles_are_the_model_and_the_optimizer(single: Path) -> None:
    model, optimizer = model_and_optimizer()
    checkpoint = pthscope.inspect(single)
    roles = checkpoint.summary()["roles"]
    assert roles["parameter"]["elements"] == sum(p.numel() for p in model.parameters())
    assert roles["buffer"]["tensors"] == len(list(model.buffers()))
    state = optimizer.state_dict()["state"]
    assert roles["optimizer_state"]["tensors"] == sum(len(s) for s in state.values())
    assert {m.key for m in checkpoint.models} == {"model"}
    param_groups = next(n for n in checkpoint.root.children[1].children if n.name == "param_groups")  # type: ignore[union-attr]
    assert param_groups.kind == "list"


def test_statistics_of_a_chunk_are_the_saved_values(single: Path) -> None:
    model, _ = model_and_optimizer()
    checkpoint = pthscope.inspect(single)
    st = os.stat(single)
    for name, value in model.state_dict().items():
        if not value.is_floating_point():
            continue
        tensor = tensor_at(checkpoint, ("model", name))
        answer = tensor_stats(tensor_bytes(checkpoint, tensor, st.st_size, st.st_mtime_ns))
        assert "stats" in answer, answer
        assert answer["stats"]["min"] == pytest.approx(float(value.min()))
        assert answer["stats"]["max"] == pytest.approx(float(value.max()))


def test_a_sharded_entry_says_why_it_has_no_statistics(distributed_files: Path) -> None:
    folder = distributed_files / "fsdp_dcp"
    checkpoint = pthscope.inspect(folder)
    sharded = next(t for t in checkpoint.tensors if t.sharding and len(t.sharding.chunks) == 2)
    assert sharded.part is None
    st = os.stat(folder)
    assert "sharded" in tensor_stats(tensor_bytes(checkpoint, sharded, st.st_size, st.st_mtime_ns))["error"]


def test_the_metadata_file_and_a_data_file(single: Path) -> None:
    by_file = pthscope.inspect(single / ".metadata")
    assert by_file.format == "torch-distributed" and len(by_file.tensors) == len(pthscope.inspect(single).tensors)
    data = pthscope.inspect(single / "__0_0.distcp")
    assert data.part_of is not None and data.part_of.file == str(single) and data.part_of.format == "torch-distributed"


# ---------------------------------------------------------------------------------------------
# Metadata as older and newer releases write it.

_OLD_LAYOUT = r'''
import dataclasses, enum, pickle, sys, types, torch
from typing import Any, Optional

def module(name):
    made = types.ModuleType(name)
    sys.modules[name] = made
    return made

old = module("torch.distributed._shard.checkpoint.metadata")
fs = module("torch.distributed._shard.checkpoint.filesystem")
st = module("torch.distributed._shard.sharded_tensor.metadata")

class MEM_FORMAT_ENCODING(enum.Enum):
    TORCH_CONTIGUOUS_FORMAT = 0

@dataclasses.dataclass
class TensorProperties:  # torch 1.13: its __getstate__ is a tuple too
    dtype: Any
    layout: Any = torch.strided
    requires_grad: bool = False
    memory_format: Any = None
    pin_memory: bool = False
    def __getstate__(self):
        return (self.dtype, self.layout, self.requires_grad, MEM_FORMAT_ENCODING.TORCH_CONTIGUOUS_FORMAT, self.pin_memory)

for name, cls in (("MEM_FORMAT_ENCODING", MEM_FORMAT_ENCODING), ("TensorProperties", TensorProperties)):
    cls.__module__, cls.__qualname__ = st.__name__, name
    setattr(st, name, cls)

def record(target, name, *fields):
    cls = dataclasses.make_dataclass(name, fields)
    cls.__module__ = target.__name__
    setattr(target, name, cls)
    return cls

Chunk = record(old, "ChunkStorageMetadata", "offsets", "sizes")
TensorMeta = record(old, "TensorStorageMetadata", "properties", "size", "chunks")
BytesMeta = record(old, "BytesStorageMetadata")
Index = record(old, "MetadataIndex", "fqn", ("offset", Optional[Any], None), ("index", Optional[int], None))
Index.__hash__ = lambda self: hash((self.fqn, self.offset))
Info = record(fs, "_StorageInfo", "relative_path", "offset", "length")
Metadata = record(old, "Metadata", "state_dict_metadata", ("planner_data", Any, None), ("storage_data", Any, None))

size = torch.Size([2, 3])
metadata = Metadata(
    {"model.w": TensorMeta(TensorProperties(torch.float16), size, [Chunk(torch.Size([0, 0]), size)]), "step": BytesMeta()},
    {"model.w": ("model", "w"), "step": ("step",)},
    {Index("model.w", torch.Size([0, 0])): Info("__0_0.distcp", 0, 600), Index("step"): Info("__0_0.distcp", 600, 0)},
)
with open(sys.argv[1], "wb") as f:
    pickle.dump(metadata, f, protocol=2)
'''


def test_metadata_of_an_older_release(tmp_path: Path) -> None:
    """torch 1.13-2.0 wrote DCP from torch.distributed._shard.checkpoint, TensorProperties from
    sharded_tensor.metadata, no storage_meta or version."""
    (tmp_path / "__0_0.distcp").write_bytes(b"\0" * 600)
    subprocess.run([sys.executable, "-c", _OLD_LAYOUT, str(tmp_path / ".metadata")], check=True, timeout=120)
    checkpoint = pthscope.inspect(tmp_path)
    assert [(t.key, t.shape, t.dtype) for t in checkpoint.tensors] == [("model.w", [2, 3], "float16")]
    assert not [g for g in checkpoint.globals if g.risk == "dangerous"]
    assert "dcp version" not in checkpoint.metadata


def test_metadata_with_fields_of_a_newer_release(single: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "newer"))
    metadata = FileSystemReader(str(folder)).read_metadata()
    for info in metadata.storage_data.values():
        info.transform_descriptors = ["stream.zstd"]
    metadata.future_field = {"planner": "v2"}  # type: ignore[attr-defined]
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    checkpoint = pthscope.inspect(folder)
    assert not checkpoint.errors and checkpoint.metadata["transforms"] == "['stream.zstd']"
    assert len(checkpoint.tensors) == len(pthscope.inspect(single).tensors)


# ---------------------------------------------------------------------------------------------
# Hostile and broken folders.


def test_a_hostile_metadata_is_flagged_and_not_run(single: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "hostile"))
    canary = tmp_path / "canary"
    payload = H.Asm().call("posix", "system", H.s(H.shell_touch(canary))).stop()
    (folder / ".metadata").write_bytes(payload)
    checkpoint = pthscope.inspect(folder)
    assert "posix.system" in {g.name for g in checkpoint.globals if g.risk == "dangerous"}
    assert checkpoint.errors and "not torch.distributed.checkpoint metadata" in checkpoint.errors[0].message
    assert not canary.exists()
    with pytest.raises(AttributeError):  # torch's own reader runs it, then fails on the int it got
        FileSystemReader(str(folder)).read_metadata()
    assert canary.exists()


def test_a_payload_inside_real_metadata_is_flagged(single: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "planted"))
    canary = tmp_path / "canary"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (H.shell_touch(canary),))

    metadata = FileSystemReader(str(folder)).read_metadata()
    metadata.planner_data["evil"] = Payload()
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    checkpoint = pthscope.inspect(folder)
    assert not checkpoint.errors and len(checkpoint.tensors) == len(pthscope.inspect(single).tensors)
    assert {g.name for g in checkpoint.globals if g.risk == "dangerous"} == {"posix.system"}
    assert checkpoint.warnings[0].kind == "dangerous-globals" and not canary.exists()
    # dcp.load has no weights_only: the warning names the load that runs it, not torch.load's flag
    warning = checkpoint.warnings[0].message
    assert warning.startswith("torch.distributed.checkpoint.load would run code from this file: posix.system")
    assert "weights_only" not in warning and warning.endswith("unpickles it without restriction.")
    assert checkpoint.to_json()["loader"] == {"call": "torch.distributed.checkpoint.load", "weights_only": False, "own_types_only": False, "weights_only_refuses": "", "refuses": ""}
    text = subprocess.run([sys.executable, "-m", "pthscope", "inspect", str(folder)], capture_output=True, text=True,
                          check=True).stdout
    assert "!! DANGEROUS: " in text and ": torch.distributed.checkpoint.load would run: posix.system" in text


def test_a_payload_in_a_bytes_entry_is_flagged(single: Path, tmp_path: Path) -> None:
    """dcp.load reads bytes entries with torch.load(weights_only=False): checked for real."""
    folder = Path(shutil.copytree(single, tmp_path / "bytes"))
    canary = tmp_path / "canary"
    payload = H.torch_zip(H.Asm().call("posix", "system", H.s(H.shell_touch(canary))).stop())
    data_file = folder / "__0_0.distcp"
    offset = data_file.stat().st_size
    with open(data_file, "ab") as f:
        f.write(payload)
    metadata = FileSystemReader(str(folder)).read_metadata()
    info = metadata.storage_data[MetadataIndex("extra.epoch")]
    info.offset, info.length = offset, len(payload)
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    checkpoint = pthscope.inspect(folder)
    assert {g.name for g in checkpoint.globals if g.risk == "dangerous"} == {"posix.system"}
    assert not canary.exists()
    load = ("import sys, torch.distributed.checkpoint.format_utils as f; "
            "f.dcp_to_torch_save(sys.argv[1], sys.argv[2])")
    subprocess.run([sys.executable, "-c", load, str(folder), str(tmp_path / "out.pt")], capture_output=True, timeout=120)
    assert canary.exists()


def test_a_truncated_data_file(single: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "cut"))
    data_file = folder / "__0_0.distcp"
    data_file.write_bytes(data_file.read_bytes()[:5000])
    checkpoint = pthscope.inspect(folder)
    assert any(e.kind == "truncated" and e.where == "__0_0.distcp" for e in checkpoint.errors)
    assert checkpoint.tensors  # the metadata still describes them


def test_a_missing_data_file(single: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "missing"))
    (folder / "__0_0.distcp").unlink()
    checkpoint = pthscope.inspect(folder)
    assert any(e.kind == "missing" and "__0_0.distcp" in e.message for e in checkpoint.errors)


@pytest.mark.parametrize("content, kind", [
    (pickle.dumps({"state_dict_metadata": {}}), "corrupt"),
    (b"\x80\x04\x95", "corrupt"),
])
def test_a_metadata_that_is_not_metadata(single: Path, tmp_path: Path, content: bytes, kind: str) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "broken"))
    (folder / ".metadata").write_bytes(content)
    checkpoint = pthscope.inspect(folder)
    assert checkpoint.errors and checkpoint.errors[0].kind == kind and checkpoint.errors[0].where.startswith(".metadata")


@pytest.mark.parametrize("relative", ["../outside.distcp", "/etc/hostname", "..", "fifo"])
def test_a_data_file_outside_the_folder_or_not_a_file_is_never_read(single: Path, tmp_path: Path, relative: str) -> None:
    folder = Path(shutil.copytree(single, tmp_path / "elsewhere"))
    os.mkfifo(folder / "fifo")  # opening it would block: it must never be opened
    metadata = FileSystemReader(str(folder)).read_metadata()
    for info in metadata.storage_data.values():
        info.relative_path = relative
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    checkpoint = pthscope.inspect(folder)
    assert checkpoint.errors
    assert ("outside the checkpoint folder" in checkpoint.errors[0].message if relative != "fifo"
            else checkpoint.errors[0].kind == "missing")

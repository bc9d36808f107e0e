"""torch's tar format (before torch 0.4): read like torch.load reads it, every pickle analysed.

torch 2.13 still loads these files (and only with weights_only=False), so each fixture is
written the way `legacy_load` reads it and first loaded by torch. Payloads in any of the five
pickles a tar holds are proven to run under torch.load, then read by pthscope in a child with the
audit hook recording: no canary, no event, and the verdict names them.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import pthscope
from tests.reader import hostile_files as H
from tests.reader.test_verdict import pthscope_reads, really_run, risks, wait_for


class _Ref:
    """Stands for a tensor in the main pickle: written as the tensor's persistent id."""

    def __init__(self, key: int) -> None:
        self.key = key


class _TarPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        return str(obj.key) if isinstance(obj, _Ref) else None


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def tar_parts(tensors: dict[str, torch.Tensor], main: Any = None, views: bool = False,
              replace: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The three members for these tensors (float32, contiguous); `main` is the saved object with
    tensors as their names (default: the dict of them). `replace` swaps one of the pickles
    ("storages count", "storage record", "storage views", "tensors count", "tensor record",
    "pickle") for other bytes."""
    replace = replace or {}

    def dump(place: str, value: Any) -> bytes:
        return replace.get(place) or pickle.dumps(value, protocol=2)

    storages = [dump("storages count", len(tensors))]
    records = [dump("tensors count", len(tensors))]
    for index, tensor in enumerate(tensors.values()):
        storages.append(dump("storage record", (index, "cpu", torch.FloatStorage)))
        storages.append(struct.pack("<q", tensor.numel()) + tensor.contiguous().numpy().tobytes())
        records.append(dump("tensor record", (100 + index, index, torch.FloatTensor)))
        records.append(struct.pack("<i", tensor.dim()) + b"\0" * 4
                       + struct.pack(f"<{2 * tensor.dim()}q", *tensor.shape, *tensor.stride()) + struct.pack("<q", 0))
    storages.append(dump("storage views", [(len(tensors), 0, 1, 2)] if views else []))
    refs = {name: _Ref(100 + i) for i, name in enumerate(tensors)}
    saved = io.BytesIO()
    _TarPickler(saved, protocol=2).dump(refs if main is None else main(refs))
    return {"storages": b"".join(storages), "tensors": b"".join(records),
            "pickle": replace.get("pickle") or saved.getvalue()}


def write_tar(path: Path, parts: dict[str, bytes], extra: list[tuple[str, bytes]] = ()) -> Path:  # type: ignore[assignment]
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [*parts.items(), *extra]:
            _member(tar, name, data)
    return path


TENSORS = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4), "fc.weight": torch.randn(2, 36)}


def test_tensors_match_what_torch_loads(tmp_path: Path) -> None:
    # torch < 0.4 wrote `sys_info` first (`_add_to_tar(save_sys_info, tar, 'sys_info')`); torch.load skips it.
    sys_info = pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}, protocol=2)
    path = write_tar(tmp_path / "old.tar", {"sys_info": sys_info, **tar_parts(TENSORS)})
    loaded = torch.load(path, weights_only=False)
    checkpoint = pthscope.inspect(path)
    assert checkpoint.format == "torch-tar" and checkpoint.ok, checkpoint.errors
    by_key = {t.key: t for t in checkpoint.tensors}
    assert set(by_key) == set(loaded)
    with open(path, "rb") as f:
        for key, tensor in loaded.items():
            info = by_key[key]
            assert (info.shape, info.stride, info.dtype) == (list(tensor.shape), list(tensor.stride()), "float32")
            f.seek(checkpoint.storage_offsets[info.storage])  # the bytes are where the reader says
            raw = np.frombuffer(f.read(tensor.numel() * 4), dtype=np.float32)
            assert np.array_equal(raw, tensor.flatten().numpy())
    assert any(w.kind == "legacy-format" for w in checkpoint.warnings)
    assert not any(w.kind == "crafted" for w in checkpoint.warnings), checkpoint.warnings  # a genuine layout
    assert all(g.risk != "dangerous" for g in checkpoint.globals)
    with pytest.raises(RuntimeError, match="legacy .tar format"):  # weights_only=True refuses it: no restricted load
        torch.load(path, weights_only=True)
    assert checkpoint.to_json()["loader"] == {"call": "torch.load", "weights_only": False, "own_types_only": False, "weights_only_refuses": "", "refuses": ""}


def test_a_nested_training_dict(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "train.tar", tar_parts(TENSORS, main=lambda refs: {"epoch": 3, "state_dict": refs}))
    assert torch.load(path, weights_only=False)["epoch"] == 3
    checkpoint = pthscope.inspect(path)
    assert sorted(t.key for t in checkpoint.tensors) == sorted(f"state_dict.{k}" for k in TENSORS)


class _Payload:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (self.command,))


PAYLOAD_PLACES = ["storages count", "storage record", "storage views", "tensors count", "tensor record", "pickle"]


@pytest.mark.parametrize("where", PAYLOAD_PLACES)
def test_payloads_in_any_member_are_found(tmp_path: Path, where: str) -> None:
    """Each payload runs under torch.load (canary); pthscope runs nothing and calls it dangerous."""
    canary = tmp_path / f"canary-{where.replace(' ', '-')}"
    payload = pickle.dumps(_Payload(H.shell_touch(canary)), protocol=2)
    path = write_tar(tmp_path / f"{where.replace(' ', '-')}.tar", tar_parts(TENSORS, replace={where: payload}))
    really_run(tmp_path, [path])
    assert not wait_for([canary]), f"the payload in {where} does not run under torch.load"
    canary.unlink()
    result = pthscope_reads([path])[str(path)]
    assert not canary.exists()
    assert risks(result)["posix.system"]["risk"] == "dangerous"
    assert result["format"] == "torch-tar"


def test_the_last_copy_of_a_member_is_the_one_torch_reads(tmp_path: Path) -> None:
    """A harmless `pickle` first and a payload after it: torch reads the last; so does pthscope."""
    canary = tmp_path / "canary-dup"
    parts = tar_parts(TENSORS)
    payload = pickle.dumps({"weights": _Payload(H.shell_touch(canary))}, protocol=2)
    path = write_tar(tmp_path / "dup.tar", parts, extra=[("pickle", payload)])
    really_run(tmp_path, [path])
    assert not wait_for([canary])
    canary.unlink()
    result = pthscope_reads([path])[str(path)]
    assert risks(result)["posix.system"]["risk"] == "dangerous"
    assert any(w["kind"] == "crafted" and "appears 2 times" in w["message"] for w in result["warnings"])


def test_a_member_that_is_a_link_is_named(tmp_path: Path) -> None:
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w:") as tar:
        info = tarfile.TarInfo("storages")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    checkpoint = pthscope.inspect(path)
    assert [e.kind for e in checkpoint.errors] == ["crafted"]
    assert "symbolic link to '/etc/passwd'" in checkpoint.errors[0].message


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_archives_get_clear_errors(tmp_path: Path, cut: float) -> None:
    whole = write_tar(tmp_path / "whole.tar", tar_parts(TENSORS))
    with tarfile.open(whole) as tar:
        last = tar.getmembers()[-1]
        content = last.offset_data + last.size  # the rest is the archive's zero padding
    path = tmp_path / f"cut-{cut}.tar"
    path.write_bytes(whole.read_bytes()[: int(content * cut)])
    checkpoint = pthscope.inspect(path)
    assert checkpoint.errors, "a cut archive must not read as whole"
    assert all(e.message for e in checkpoint.errors)


def test_an_ordinary_tar_is_not_a_torch_checkpoint(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "files.tar", {"README": b"hello", "data.csv": b"1,2"})
    assert pthscope.inspect(path).format != "torch-tar"


def test_tensor_statistics_read_the_located_bytes(tmp_path: Path) -> None:
    from pthscope.values.stats import find_tensor, tensor_bytes, tensor_stats

    path = write_tar(tmp_path / "old.tar", tar_parts(TENSORS))
    checkpoint = pthscope.inspect(path)
    st = path.stat()
    for key, tensor in TENSORS.items():
        stats = tensor_stats(tensor_bytes(checkpoint, find_tensor(checkpoint, key), st.st_size, st.st_mtime_ns))
        assert "stats" in stats, stats
        assert stats["stats"]["min"] == pytest.approx(tensor.min().item())
        assert stats["stats"]["max"] == pytest.approx(tensor.max().item())

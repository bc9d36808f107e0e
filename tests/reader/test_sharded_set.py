"""Sharded sets as huggingface_hub's save_torch_state_dict writes them (what transformers'
save_pretrained uses) — safetensors shards and torch .bin shards with their index — and `.pt`
shards of our own index; each compared tensor by tensor with the libraries' own view (safe_open,
torch.load); statistics from the right shard; an index or shard that a loader would trip over."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import save_torch_state_dict
from safetensors import safe_open

import pthscope
from pthscope.reader.model import Checkpoint
from pthscope.values import tensor_bytes, tensor_stats


def state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    out: dict[str, torch.Tensor] = {"embed.weight": torch.randn(64, 16)}
    for i in range(6):
        out[f"layers.{i}.attn.weight"] = torch.randn(16, 16)
        out[f"layers.{i}.norm.weight"] = torch.ones(16, dtype=torch.bfloat16)
        out[f"layers.{i}.norm.running_mean"] = torch.zeros(16)
        out[f"layers.{i}.steps"] = torch.tensor(i)
    out["head.weight"] = torch.randn(8, 16, dtype=torch.float16)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sharded")
    safetensors_set, bin_set, pt_set = root / "safetensors", root / "bin", root / "pt"
    safetensors_set.mkdir()
    bin_set.mkdir()
    save_torch_state_dict(state_dict(), safetensors_set, max_shard_size="2KB")
    save_torch_state_dict(state_dict(), bin_set, max_shard_size="2KB", safe_serialization=False)
    pt_set.mkdir()
    sd = state_dict()
    keys = list(sd)
    weight_map = {}
    for n, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:]), 1):
        name = f"model_part{n}.pt"
        torch.save({k: sd[k] for k in part}, pt_set / name)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in sd.values())
    (pt_set / "model.pt.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return {"safetensors": safetensors_set, "bin": bin_set, "pt": pt_set}


def index_of(folder: Path) -> Path:
    return next(folder.glob("*.index.json"))


def shard_truth(folder: Path) -> dict[str, tuple[str, list[int], str]]:
    """key → (shard file, shape, dtype) as the libraries read the shards the index names."""
    index = json.loads(index_of(folder).read_text())
    truth = {}
    for shard in sorted(set(index["weight_map"].values())):
        if shard.endswith(".safetensors"):
            with safe_open(str(folder / shard), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    piece = f.get_slice(key)
                    truth[key] = (shard, list(piece.get_shape()), str(f.get_tensor(key).dtype)[6:])
        else:
            for key, tensor in torch.load(folder / shard, weights_only=True).items():
                truth[key] = (shard, list(tensor.shape), str(tensor.dtype)[6:])
    return truth


def ours(checkpoint: Checkpoint) -> dict[str, tuple[str, list[int], str]]:
    return {t.key: (os.path.basename(checkpoint.parts[t.part].file) if t.part is not None else "?", t.shape, t.dtype)
            for t in checkpoint.tensors}


@pytest.mark.parametrize("kind", ["safetensors", "bin", "pt"])
def test_the_set_is_every_shards_tensors(sets: dict[str, Path], kind: str) -> None:
    folder = sets[kind]
    for opened in (index_of(folder), folder):
        checkpoint = pthscope.inspect(opened)
        assert checkpoint.format == "sharded" and not checkpoint.errors, checkpoint.errors
        assert not checkpoint.warnings, checkpoint.warnings
        assert checkpoint.file == str(opened)
        assert ours(checkpoint) == shard_truth(folder)
        assert len(checkpoint.parts) == int(checkpoint.metadata["shards"]) > 1
        assert sum(p.tensors for p in checkpoint.parts) == len(checkpoint.tensors)
        roles = {t.key: t.role for t in checkpoint.tensors}
        assert roles["layers.0.attn.weight"] == "parameter" and roles["layers.0.norm.running_mean"] == "buffer"
        assert roles["layers.3.steps"] == "buffer"


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_statistics_come_from_the_tensors_shard(sets: dict[str, Path], kind: str) -> None:
    checkpoint = pthscope.inspect(sets[kind])
    expected = state_dict()
    for key in ("embed.weight", "layers.5.attn.weight", "head.weight"):
        tensor = next(t for t in checkpoint.tensors if t.key == key)
        st = os.stat(sets[kind])
        answer = tensor_stats(tensor_bytes(checkpoint, tensor, st.st_size, st.st_mtime_ns))
        assert "stats" in answer, answer
        assert answer["stats"]["max"] == pytest.approx(float(expected[key].float().max()))
        assert answer["stats"]["mean"] == pytest.approx(float(expected[key].double().mean()), rel=1e-3)


def test_a_shard_alone_names_its_set(sets: dict[str, Path]) -> None:
    folder = sets["safetensors"]
    shards = sorted(set(json.loads(index_of(folder).read_text())["weight_map"].values()))
    second = pthscope.inspect(folder / shards[1])
    assert second.format == "safetensors" and second.part_of is not None
    assert (second.part_of.file, second.part_of.part, second.part_of.parts) == (str(index_of(folder)), 2, len(shards))
    assert second.to_json()["part_of"]["format"] == "sharded"


def test_total_size_is_what_the_library_wrote(sets: dict[str, Path]) -> None:
    for kind in ("safetensors", "bin"):
        checkpoint = pthscope.inspect(sets[kind])
        total = json.loads(index_of(sets[kind]).read_text())["metadata"]["total_size"]
        assert checkpoint.summary()["tensor_bytes"] == total


# ---------------------------------------------------------------------------------------------
# What a loader that follows the index trips over.


@pytest.fixture
def copy(sets: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(sets["safetensors"], tmp_path / "set"))


def edit_index(folder: Path, change: object) -> Path:
    path = index_of(folder)
    index = json.loads(path.read_text())
    change(index)  # type: ignore[operator]
    path.write_text(json.dumps(index))
    return path


def test_a_missing_shard(copy: Path) -> None:
    shard = sorted(copy.glob("*.safetensors"))[1]
    shard.unlink()
    checkpoint = pthscope.inspect(copy)
    missing = [e for e in checkpoint.errors if e.kind == "missing"]
    assert missing and missing[0].where == shard.name and "is missing" in missing[0].message
    assert checkpoint.tensors  # the other shards are still listed


def test_keys_the_index_names_but_the_shard_lacks_and_the_reverse(copy: Path) -> None:
    def move(index: dict[str, dict[str, str]]) -> None:
        weight_map = index["weight_map"]
        weight_map["layers.9.ghost"] = weight_map["embed.weight"]
        del weight_map["head.weight"]

    edit_index(copy, move)
    checkpoint = pthscope.inspect(copy)
    assert any(e.kind == "missing" and "'layers.9.ghost'" in e.message for e in checkpoint.errors)
    assert any(w.kind == "unexpected" and "'head.weight'" in w.message for w in checkpoint.warnings)


def test_a_key_in_two_shards(copy: Path) -> None:
    from safetensors.torch import save_file

    save_file({"embed.weight": torch.zeros(2), "extra.bias": torch.zeros(2)}, copy / "a-extra.safetensors")
    edit_index(copy, lambda index: index["weight_map"].update({"extra.bias": "a-extra.safetensors"}))
    checkpoint = pthscope.inspect(copy)
    assert any(w.kind == "duplicate" and "embed.weight" in w.message for w in checkpoint.warnings)
    assert any(w.kind == "unexpected" and "another shard" in w.message for w in checkpoint.warnings)
    assert [t.key for t in checkpoint.tensors].count("embed.weight") == 2  # both listed in the table
    assert [c.name for c in checkpoint.root.children].count("embed.weight") == 1  # type: ignore[union-attr]


def test_a_total_size_that_disagrees(copy: Path) -> None:
    edit_index(copy, lambda index: index["metadata"].update({"total_size": 12345}))
    checkpoint = pthscope.inspect(copy)
    assert any(w.kind == "unexpected" and "12,345" in w.message for w in checkpoint.warnings)


@pytest.mark.parametrize("text, problem", [
    ("{not json", "malformed"),
    ('{"weight_map": {"a": 7}}', "not a file name"),
    ('{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}', "twice"),
    ('{"weight_map": {"a": "x.safetensors", "a" : "y.safetensors"}}', "twice"),  # whitespace before a colon
    ('{"weight_map": {"a": "x.safetensors", "b": "x\\":.safetensors", "a": "y.safetensors"}}', "twice"),
    ('{"metadata": {"m": {"k": 1, "k": 2}}, "weight_map": {"a": "x.safetensors"}}', "twice"),  # deeper
    ('{"weight_map": {"a": "x.safetensors", "b": ["y.safetensors"]}}', "not a file name"),  # unhashable
    ('{"weight_map": {"a": "x.safetensors", "b": {"c": 1}}}', "not a file name"),
    ('{"weight_map": {"a": "x.safetensors", "b": ""}}', "not a file name"),
    ('{"weight_map": {"a": "x.safetensors", "b": null}}', "not a file name"),
])
def test_a_broken_index(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "model.safetensors.index.json"
    path.write_text(text if "weight_map" in text else text + ' "weight_map"')
    checkpoint = pthscope.inspect(path)
    assert checkpoint.errors and checkpoint.errors[0].kind == "corrupt" and problem in checkpoint.errors[0].message


def test_a_shard_outside_the_folder_is_not_read(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.safetensors"
    shutil.copy(sorted(copy.glob("*.safetensors"))[0], outside)
    edit_index(copy, lambda index: index["weight_map"].update({"embed.weight": "../secret.safetensors"}))
    checkpoint = pthscope.inspect(copy)
    assert any(e.kind == "crafted" and "outside" in e.message for e in checkpoint.errors)
    assert all(p.file != str(outside) for p in checkpoint.parts)


def test_an_lfs_pointer_shard_is_named(copy: Path) -> None:
    shard = sorted(copy.glob("*.safetensors"))[0]
    shard.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 123456\n")
    checkpoint = pthscope.inspect(copy)
    error = next(e for e in checkpoint.errors if e.where.startswith(shard.name))
    assert error.kind == "not-a-checkpoint" and "git lfs" in error.message.lower()


def test_a_hostile_bin_shard_is_flagged(sets: dict[str, Path], tmp_path: Path) -> None:
    from . import hostile_files as H

    folder = Path(shutil.copytree(sets["bin"], tmp_path / "set"))
    canary = tmp_path / "canary"
    shard = sorted(folder.glob("*.bin"))[0]
    shard.write_bytes(H.torch_zip(H.Asm().call("posix", "system", H.s(H.shell_touch(canary))).stop()))
    checkpoint = pthscope.inspect(folder)
    assert "posix.system" in {g.name for g in checkpoint.globals if g.risk == "dangerous"}
    assert checkpoint.warnings[0].kind == "dangerous-globals"
    assert not canary.exists()

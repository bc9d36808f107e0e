"""The banner's one-line verdict (reader/safety.py) says what torch does with the file.

Each file is made with torch (or crafted), its verdict taken from what the reader returns, and
torch.load is run on it with weights_only=True and False (in this process: these files carry no
payload; a dangerous one is only read): the verdict's claim holds.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from pthscope.reader import inspect
from pthscope.reader.safety import Safety, safety_verdict

from . import hostile_files as H
from .user_models import SmallNet


def verdict(path: Path, unimportable: tuple[str, ...] = ()) -> Safety | None:
    checkpoint = inspect(str(path))
    globals_ = [{"name": g.name, "risk": g.risk} for g in checkpoint.globals]
    return safety_verdict(globals_, checkpoint.loader(), [e.kind for e in checkpoint.errors], unimportable)


def loads(path: Path, weights_only: bool) -> bool:
    try:
        torch.load(path, weights_only=weights_only)
    except Exception:
        return False
    return True


def test_a_state_dict_loads_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "net.pth"
    torch.save(SmallNet().state_dict(), path)
    found = verdict(path)
    assert found is not None and found.level == "safe"
    assert found.headline.startswith("Loads with weights_only=True: the pickle names ")
    assert loads(path, weights_only=True)


def test_a_whole_model_needs_its_classes(tmp_path: Path) -> None:
    path = tmp_path / "whole.pth"
    torch.save(SmallNet(), path)
    found = verdict(path, unimportable=("tests",))
    classes = [g.name for g in inspect(str(path)).globals if g.risk == "unknown"]
    ours = sum(name.startswith("tests.") for name in classes)
    assert found == Safety("unknown", f"Needs weights_only=False: {ours} classes from tests (not importable here) + "
                                      f"{len(classes) - ours} torch.nn classes")
    assert not loads(path, weights_only=True) and loads(path, weights_only=False)


def test_a_protocol_4_file_needs_weights_only_false(tmp_path: Path) -> None:
    path = tmp_path / "p4.pth"
    torch.save({"w": torch.zeros(2)}, path, pickle_protocol=4)
    found = verdict(path)
    assert found is not None and found.level == "unknown"
    assert found.headline.startswith("Needs weights_only=False: torch's weights_only unpickler cannot read its pickle")
    assert not loads(path, weights_only=True) and loads(path, weights_only=False)


def test_a_legacy_file_torch_cannot_load_is_not_called_safe(tmp_path: Path) -> None:
    """uint16 in the legacy format: torch.save writes it, torch.load fails on it either way."""
    path = tmp_path / "legacy.pt"
    torch.save({"a": torch.zeros(3, dtype=torch.uint16)}, path, _use_new_zipfile_serialization=False)
    found = verdict(path)
    assert found == Safety("unknown", "torch.load fails on this file, whatever weights_only says")
    assert not loads(path, weights_only=True) and not loads(path, weights_only=False)


def test_a_file_cut_short_is_not_checked(tmp_path: Path) -> None:
    """A legacy file cut inside its tensors' pickle: what was read names only safe globals, but
    what the rest would have named is not known."""
    whole = tmp_path / "whole.pt"
    torch.save({f"t{i}": torch.zeros(2) for i in range(50)}, whole, _use_new_zipfile_serialization=False)
    data = whole.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: data.index(b"t40")])
    found = verdict(cut)
    assert found is not None and found.level == "unknown"
    assert found.headline.startswith("Not checked: pthscope could not read this file whole")
    assert not loads(cut, weights_only=True)


def test_a_dangerous_global_is_red_even_in_a_file_cut_short(tmp_path: Path) -> None:
    """An unpickler runs what comes before the cut: the payload still runs."""
    payload = pickle.dumps(H.ReduceToSystem("true"), protocol=2)
    path = tmp_path / "hostile.pkl.pt"
    path.write_bytes(H.legacy(payload[:-1]))  # no STOP
    found = verdict(path)
    assert found is not None and found.level == "dangerous"
    assert "os.system" in found.headline or "posix.system" in found.headline


def test_a_set_with_a_missing_shard_keeps_what_its_files_say(tmp_path: Path) -> None:
    import json

    for n in (1, 2):
        torch.save({f"w{n}": torch.zeros(2)}, tmp_path / f"pytorch_model-0000{n}-of-00002.bin")
    index = {"metadata": {"total_size": 16}, "weight_map": {"w1": "pytorch_model-00001-of-00002.bin",
                                                            "w2": "pytorch_model-00002-of-00002.bin",
                                                            "w3": "pytorch_model-00003-of-00002.bin"}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    checkpoint = inspect(str(tmp_path / "pytorch_model.bin.index.json"))
    assert any(e.kind == "missing" for e in checkpoint.errors), checkpoint.errors
    found = verdict(tmp_path / "pytorch_model.bin.index.json")
    assert found is not None and found.level == "safe", found


def test_nothing_to_say_without_globals(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    assert verdict(path) is None
    assert os.path.getsize(path) > 0


@pytest.mark.parametrize(("count", "text"), [(1, "1 global"), (2, "2 globals"), (1234, "1,234 globals")])
def test_counts_are_written_as_numbers_of_things(count: int, text: str) -> None:
    globals_ = [{"name": f"torch.g{i}", "risk": "safe"} for i in range(count)]
    loader = {"call": "torch.load", "weights_only": True, "own_types_only": False, "weights_only_refuses": "", "refuses": ""}
    found = safety_verdict(globals_, loader, [])
    assert found is not None and f"names {text}, all" in found.headline


def _rewritten(source: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """`source`'s archive with the members whose names end with a key of `change` replaced by its
    bytes (None: left out)."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for name in old.namelist():
            replaced = next((data for end, data in change.items() if name.endswith(end)), old.read(name))
            if replaced is not None:
                new.writestr(name, replaced)
    return target


@pytest.mark.parametrize(("change", "headline"), [
    ({"/byteorder": b"little" + b" " * 100}, "torch.load refuses this file before unpickling it"),
    ({"/.storage_alignment": b"sixty-four"}, "torch.load refuses this file before unpickling it"),
    ({"/data/0": None}, "torch.load fails on this file"),
    ({"/data/0": b"\0" * 4}, "torch.load fails on this file"),
    ({"/data/0": b"\0" * 20}, "torch.load fails on this file"),
], ids=["long byteorder", "alignment not a number", "storage missing", "storage short", "storage long"])
def test_a_record_torch_cannot_use_is_no_safe_load(tmp_path: Path, change: dict[str, bytes | None],
                                                  headline: str) -> None:
    """Records torch.load reads whole before or while unpickling: the file fails, so it is not
    "Loads with weights_only=True"."""
    source = tmp_path / "net.pth"
    torch.save({"w": torch.ones(4)}, source)
    path = _rewritten(source, tmp_path / "changed.pth", change)
    found = verdict(path)
    assert found is not None and found.level == "unknown" and found.headline.startswith(headline), found
    assert not loads(path, weights_only=True) and not loads(path, weights_only=False)

"""`inspect --json` text (json_text.py) is exactly json.dumps of `Checkpoint.to_json()`, for every kind of file."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pthscope
from pthscope.cli import _matches
from pthscope.json_text import _agrees, _Writer, json_chunks
from pthscope.reader.model import Checkpoint, TensorInfo
from tests.reader.fixtures import make_all

_compact = json.JSONEncoder(separators=(",", ":")).encode


def _odd_keys() -> dict[object, object]:
    """Keys and values whose JSON needs escapes: quotes, newlines, bidi and control characters,
    non-ASCII, astral and lone-surrogate code points, and keys that are not text."""
    t = torch.ones(2, 3)
    return {
        'q"uote\\back\nline\t\u202eevil\x00': t, "é😀\ud800": t[1], 3: t.t(), (1, "a"): torch.zeros(0),
        1.5: torch.tensor(2.0), True: t[:, 1:], "nested": {"list": [t, np.arange(3)], 7: {"deep": t}},
        "value": "text with \"quotes\" and \u2028", "none": None, "big": 2**70,
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("json")
    paths = [path for path, _ in make_all(folder).values()]
    for name, zipped in (("odd.zip.pt", True), ("odd.legacy.pt", False)):
        torch.save(_odd_keys(), folder / name, _use_new_zipfile_serialization=zipped)
        paths.append(folder / name)
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(4), "b.c": torch.ones(2, 2)}, str(folder / "s.safetensors"))
    (folder / "broken.pt").write_bytes((folder / "odd.zip.pt").read_bytes()[:300])
    return [*paths, folder / "s.safetensors", folder / "broken.pt", *_sets(folder)]


def _sets(folder: Path) -> list[Path]:
    """Checkpoints of several files: sharded sets (safetensors, .bin) and a torch.distributed
    folder of a model and its optimizer (nested paths, chunks, bytes entries)."""
    import warnings

    import torch.distributed.checkpoint as dcp
    from safetensors.torch import save_file

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    state = model.state_dict()
    halves = [dict(list(state.items())[:2]), dict(list(state.items())[2:])]
    made = []
    for kind, save in (("safetensors", save_file), ("bin", torch.save)):
        shards = folder / f"sharded-{kind}"
        shards.mkdir()
        weight_map = {}
        for i, half in enumerate(halves):
            name = f"model-{i + 1:05d}-of-00002.{kind}"
            save(half, str(shards / name))
            weight_map.update(dict.fromkeys(half, name))
        index = shards / f"model.{kind}.index.json"
        index.write_text(json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}))
        made.append(index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no process group: one process saves alone
        dcp.save({"model": state, "optim": optimizer.state_dict(), "step": 3}, checkpoint_id=str(folder / "dcp"))
    return [*made, folder / "dcp"]


def _expected(checkpoint: Checkpoint, tree: bool, pattern: str) -> str:
    payload = checkpoint.to_json(tree)
    if pattern:
        payload["tensors"] = [t for t in payload["tensors"] if _matches(t["key"], pattern)]
        payload["modules"] = [m for m in payload["modules"] if _matches(m["key"], pattern)]
    return _compact(payload) + "\n"


@pytest.mark.parametrize("pattern", ["", "weight", "*.bn.*"])
@pytest.mark.parametrize("tree", [True, False])
def test_same_text_as_json_of_to_json(files: list[Path], tree: bool, pattern: str) -> None:
    for path in files:
        checkpoint = pthscope.inspect(path)
        keep = functools.partial(_matches, pattern=pattern) if pattern else None
        assert "".join(json_chunks(checkpoint, tree, keep)) == _expected(checkpoint, tree, pattern), path.name


def test_the_fast_text_is_used(files: list[Path]) -> None:
    for path in files:
        checkpoint = pthscope.inspect(path)
        assert _agrees(_Writer(), checkpoint), path.name


def test_a_field_the_text_does_not_know_goes_through_the_dicts(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added to TensorInfo.to_json() and not to json_text.py: the output still has it."""
    plain = TensorInfo.to_json
    monkeypatch.setattr(TensorInfo, "to_json", lambda self: {**plain(self), "added": self.numel % 2 == 0})
    checkpoint = pthscope.inspect(files[0])
    assert not _agrees(_Writer(), checkpoint)
    text = "".join(json_chunks(checkpoint))
    assert text == _expected(checkpoint, True, "") and '"added":' in text


def test_same_text_in_small_batches(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 2: every list is cut, every node with more children than that is streamed."""
    import pthscope.json_text

    monkeypatch.setattr(pthscope.json_text, "_BATCH", 2)
    for path in files:
        checkpoint = pthscope.inspect(path)
        assert "".join(json_chunks(checkpoint)) == _expected(checkpoint, True, ""), path.name

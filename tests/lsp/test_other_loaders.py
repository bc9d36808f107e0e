"""A `torch.load` of a file that torch.load's weights_only does not govern — a TorchScript archive
(torch.load hands it to torch.jit.load; weights_only=True refuses it), a torch < 0.4 tar
(weights_only=True refuses it), a plain pickle (torch.load cannot read one) — is told what really loads it, and offered no weights_only or safe_globals fix.
What it says of torch is checked against torch."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pytest_lsp import LanguageClient
from torch import nn

from tests.reader.test_tar import tar_parts, write_tar
from tests.reader.test_torch_route import CANARY, safetensors_and_pickle

from ..code_intel.hostile_text import rendered_text
from .code_intel import (
    code_actions,
    code_workspace,
    hover_text,
    open_document,
    published,
    python_client,
    utf16_position,
)

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCRIPT = ('import torch\n'
          'net = torch.load("scripted.pt")\n'
          'sd = torch.load("model_final.pkl", weights_only=True)\n'
          'same = torch.load("scripted.pt", weights_only=False)\n'
          'old = torch.load("old.pth.tar", weights_only=True)\n'
          'old_too = torch.load("old.pth.tar", weights_only=False)\n')


async def test_torchscript_and_a_plain_pickle_name_their_loaders(python_client: LanguageClient,
                                                                  code_workspace: Path) -> None:
    scripted, plain = code_workspace / "scripted.pt", code_workspace / "model_final.pkl"
    torch.jit.save(torch.jit.script(nn.Sequential(nn.Linear(2, 2), nn.ReLU())), scripted)
    plain.write_bytes(pickle.dumps({"model": {"w": np.ones(2, np.float32)}}, protocol=2))
    tar = write_tar(code_workspace / "old.pth.tar", tar_parts({"w": torch.ones(2)}))
    # What the diagnostics say of torch.load, from torch itself.
    with pytest.raises(RuntimeError, match="weights_only"):
        torch.load(scripted, weights_only=True)
    assert isinstance(torch.load(scripted, weights_only=False), torch.jit.ScriptModule)
    for weights_only in (True, False):
        with pytest.raises((pickle.UnpicklingError, RuntimeError)):
            torch.load(plain, weights_only=weights_only)
    with pytest.raises(RuntimeError, match="weights_only"):
        torch.load(tar, weights_only=True)
    assert torch.equal(torch.load(tar, weights_only=False)["w"], torch.ones(2))

    uri = open_document(python_client, code_workspace / "other_loaders.py", SCRIPT)
    found = await published(python_client, uri, lambda p: len([d for d in p.diagnostics if d.code == "PTH005"]) == 5)
    by_line = {d.range.start.line: d for d in found.diagnostics}
    assert {d.code for d in found.diagnostics} == {"PTH005"}  # no "pass weights_only=True" (PTH002): it cannot help
    assert by_line[1].severity == 1 and "TorchScript archive" in by_line[1].message
    assert "`torch.jit.load(path)`" in by_line[1].message
    assert by_line[2].severity == 1 and "plain pickle" in by_line[2].message and "`pickle.load(f)`" in by_line[2].message
    assert by_line[3].severity == 2  # weights_only=False: torch.load hands it to torch.jit.load, which loads it
    assert by_line[4].severity == 1 and "torch < 0.4" in by_line[4].message and "weights_only=False" in by_line[4].message
    assert by_line[5].severity == 2
    for line, needle in ((1, '"scripted.pt"'), (2, '"model_final.pkl"'), (4, '"old.pth.tar"')):
        shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(SCRIPT, needle, 2)) or ""))
        assert shown.startswith("⚠ Not a torch.load checkpoint") and "safe_globals" not in shown
        titles = [a.title for a in await code_actions(python_client, uri, line)]
        assert not any("weights_only" in t or "safe_globals" in t for t in titles), titles



SET_SCRIPT = ('import torch\n'
              'whole = torch.load("dcp_run")\n'
              'meta = torch.load("dcp_run/.metadata", weights_only=False)\n'
              'shards = torch.load("hf_model", weights_only=True)\n'
              'index = torch.load("hf_model/model.safetensors.index.json", weights_only=True)\n'
              'one = torch.load("run_dir", weights_only=True)\n')


async def test_folders_and_sets_are_not_for_torch_load(python_client: LanguageClient, code_workspace: Path) -> None:
    import torch.distributed.checkpoint as dcp
    from huggingface_hub import save_torch_state_dict

    dcp_folder, hf_folder, run_dir = code_workspace / "dcp_run", code_workspace / "hf_model", code_workspace / "run_dir"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save({"model": nn.Linear(3, 2).state_dict()}, checkpoint_id=dcp_folder)
    hf_folder.mkdir()
    save_torch_state_dict({f"layers.{i}.weight": torch.ones(16, 16) for i in range(4)}, hf_folder,
                          max_shard_size="2KB")
    run_dir.mkdir()
    torch.save(nn.Linear(2, 2).state_dict(), run_dir / "last.pt")
    # What the diagnostics say of torch.load, from torch itself.
    for folder in (dcp_folder, hf_folder, run_dir):
        with pytest.raises(IsADirectoryError):
            torch.load(folder, weights_only=True)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(dcp_folder / ".metadata", weights_only=True)
    with pytest.raises(RuntimeError, match="magic number"):  # after unpickling it all, unrestricted
        torch.load(dcp_folder / ".metadata", weights_only=False)
    for weights_only in (True, False):  # "Unsupported operand 123" ('{'), "invalid load key, '{'"
        with pytest.raises(pickle.UnpicklingError):
            torch.load(hf_folder / "model.safetensors.index.json", weights_only=weights_only)

    uri = open_document(python_client, code_workspace / "set_loads.py", SET_SCRIPT)
    found = await published(python_client, uri, lambda p: len([d for d in p.diagnostics if d.code == "PTH005"]) == 5)
    assert {d.code for d in found.diagnostics} == {"PTH005"}  # no "pass weights_only=True": it cannot help
    by_line = {d.range.start.line: d for d in found.diagnostics}
    assert all(d.severity == 1 for d in found.diagnostics)  # weights_only=False does not load them either
    for line in (1, 2):
        assert "torch.distributed.checkpoint (DCP)" in by_line[line].message
        assert "`torch.distributed.checkpoint.load(state_dict, checkpoint_id=folder)`" in by_line[line].message
    shards = len(list(hf_folder.glob("*.safetensors")))
    assert shards > 1 and f"a folder of {shards} checkpoint files" in by_line[3].message
    assert "`safetensors.torch.load_file(path)` of each file" in by_line[3].message
    assert f"an index of {shards} checkpoint files (JSON)" in by_line[4].message
    assert "a folder, which torch.load cannot read" in by_line[5].message
    assert "`torch.load(path, weights_only=True)` of the file in it" in by_line[5].message
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(SET_SCRIPT, '"hf_model"', 2))
                                   or ""))
    assert shown.startswith(f"⚠ Not a torch.load checkpoint: a folder of {shards}") and "no such file" not in shown
    for line in range(1, 6):
        titles = [a.title for a in await code_actions(python_client, uri, line)]
        assert not any("weights_only" in t or "safe_globals" in t for t in titles), titles


async def test_torch_load_of_a_safetensors_file_depends_on_its_name(python_client: LanguageClient,
                                                                   code_workspace: Path) -> None:
    """torch.load reads a `.safetensors` path with the safetensors package (no pickle: no
    weights_only advice); the same bytes under a torch name it unpickles, and fails: PTH005
    says so and names the loader, with no weights_only fix."""
    from safetensors.torch import save_file

    named, renamed = code_workspace / "weights.safetensors", code_workspace / "weights_st.pth"
    save_file({"w": torch.ones(2)}, named)
    renamed.write_bytes(named.read_bytes())
    assert torch.equal(torch.load(named)["w"], torch.ones(2))  # what the diagnostics say, from torch
    for weights_only in (True, False):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(renamed, weights_only=weights_only)
    script = 'import torch\nsd = torch.load("weights.safetensors")\nsd2 = torch.load("weights_st.pth")\nend = 1\n'
    uri = open_document(python_client, code_workspace / "safetensors_loads.py", script)
    # both files linked: the PTH005 of the renamed one, and no PTH002 once the other is known
    found = await published(python_client, uri, lambda p: [d.code for d in p.diagnostics] == ["PTH005"])
    assert [(d.range.start.line, d.code, d.severity) for d in found.diagnostics] == [(2, "PTH005", 1)], found.diagnostics
    (renamed_error,) = found.diagnostics
    assert "safetensors file under another name" in renamed_error.message
    assert "`safetensors.torch.load_file(path)`" in renamed_error.message
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(script, '"weights.safetensors"', 2)) or ""))
    assert shown.startswith("✓ Safe: a safetensors file holds tensors only"), shown
    titles = [a.title for a in await code_actions(python_client, uri, 2)]
    assert not any("weights_only" in t or "safe_globals" in t for t in titles), titles


async def test_a_safetensors_file_that_is_a_pickle_too_is_dangerous_to_torch_load(python_client: LanguageClient,
                                                                                 code_workspace: Path) -> None:
    """A valid safetensors file built to be a pickle as well, named .pt: torch.load unpickles it,
    so `weights_only=False` gets PTH004 (it runs the canary: tests/reader/test_torch_route.py),
    not the renamed-safetensors advice; the same bytes named .safetensors are safe."""
    polyglot = code_workspace / "polyglot.pt"
    safetensors_and_pickle(polyglot)
    (code_workspace / "polyglot.safetensors").write_bytes(polyglot.read_bytes())
    script = ('import torch\nsd = torch.load("polyglot.pt", weights_only=False)\n'
              'st = torch.load("polyglot.safetensors")\nend = 1\n')
    uri = open_document(python_client, code_workspace / "polyglot_loads.py", script)
    # both files linked: the PTH004, and no PTH002 once the .safetensors one is known
    found = await published(python_client, uri, lambda p: [d.code for d in p.diagnostics] == ["PTH004"])
    assert [d.range.start.line for d in found.diagnostics] == [1], found.diagnostics
    assert f"{CANARY}.fire" in found.diagnostics[0].message
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(script, '"polyglot.pt"', 2)) or ""))
    assert f"{CANARY}.fire" in shown and not shown.startswith("✓"), shown
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(script, '"polyglot.safetensors"', 2)) or ""))
    assert shown.startswith("✓ Safe: a safetensors file holds tensors only"), shown

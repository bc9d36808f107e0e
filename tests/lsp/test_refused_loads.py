"""A file that `weights_only=True` refuses — for its pickle's opcodes (`torch.save(...,
pickle_protocol=4)`), or for the classes it imports — is never called loadable with it: PTH002
says it needs weights_only=False, an explicit `weights_only=True` gets PTH009, and their fixes
write code that loads. What each says of torch is checked against torch in the same test."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import pytest
import torch
from pytest_lsp import LanguageClient
from torch import nn

from ..code_intel.hostile_text import rendered_text
from .code_intel import (
    apply_lsp_edits,
    change_document,
    code_actions,
    code_workspace,
    hover_text,
    open_document,
    published,
    python_client,
    text_edits,
    utf16_position,
)

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCRIPT = ('import torch\n'
          'plain = torch.load("proto4.pt")\n'
          'told = torch.load("proto4.pt", weights_only=True)\n'
          'whole = torch.load("whole_net.pt", weights_only=True)\n'
          'fine = torch.load("proto4.pt", weights_only=False)\n'
          'both = torch.load("whole_p5.pt", weights_only=True)\n')


def _fails_weights_only(path: Path, why: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(pickle.UnpicklingError, match=why):
            torch.load(path, weights_only=True)
        torch.load(path, weights_only=False)


async def test_weights_only_true_is_never_promised_where_torch_refuses_it(
        python_client: LanguageClient, code_workspace: Path) -> None:
    state = nn.Linear(3, 2).state_dict()
    torch.save(state, code_workspace / "proto4.pt", pickle_protocol=4)
    torch.save(nn.Sequential(nn.Linear(2, 2)), code_workspace / "whole_net.pt")
    torch.save(nn.Sequential(nn.Linear(2, 2)), code_workspace / "whole_p5.pt", pickle_protocol=5)
    _fails_weights_only(code_workspace / "proto4.pt", "Unsupported operand 149")
    _fails_weights_only(code_workspace / "whole_net.pt", "Unsupported global")
    _fails_weights_only(code_workspace / "whole_p5.pt", "Unsupported operand 149")

    uri = open_document(python_client, code_workspace / "refused.py", SCRIPT)
    found = await published(python_client, uri, lambda p: len([d for d in p.diagnostics if d.code == "PTH009"]) == 3)
    by_line = {(d.range.start.line, d.code): d for d in found.diagnostics}
    assert not [d for d in found.diagnostics if d.range.start.line == 4], found.diagnostics  # weights_only=False: fine
    plain = by_line[(1, "PTH002")]
    assert plain.severity == 2 and "`proto4.pt` needs weights_only=False" in plain.message
    assert "uses the FRAME opcode at byte 2 (from pickle protocol 4)" in plain.message
    assert "It names nothing that runs code, so weights_only=False loads it safely" in plain.message
    told = by_line[(2, "PTH009")]
    assert told.severity == 1 and told.message.startswith("torch.load(weights_only=True) cannot read `proto4.pt`")
    whole = by_line[(3, "PTH009")]
    assert "refuses `whole_net.pt`: it imports 2 classes" in whole.message and "safe_globals" in whole.message
    assert whole.severity == 2  # add_safe_globals in code this script imports may allow them
    both = by_line[(5, "PTH009")]
    assert "cannot read `whole_p5.pt`" in both.message and "also imports its classes" in both.message

    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(SCRIPT, '"proto4.pt"', 2))
                                   or ""))
    assert shown.startswith("Needs weights_only=False: torch's weights_only unpickler cannot read its pickle; "
                            "nothing it names runs code"), shown
    assert "Safe to load with weights_only=True" not in shown and "FRAME opcode" in shown

    offered = {line: await code_actions(python_client, uri, line) for line in (1, 2, 3, 5)}
    titles = {line: [(a.title, bool(a.is_preferred)) for a in actions] for line, actions in offered.items()}
    assert ("Add weights_only=False (the file names nothing that runs code)", True) in titles[1]
    assert not any("weights_only=True" in t or "safe_globals" in t for t, _ in titles[1]), titles[1]
    assert ("Use weights_only=False (the file names nothing that runs code)", True) in titles[2]
    assert ("Allow its classes (safe_globals)", True) in titles[3]
    assert ("Use weights_only=False (only for a file you trust)", False) in titles[3]
    assert ("Use weights_only=False (only for a file you trust)", False) in titles[5]
    assert not any("safe_globals" in t for t, _ in titles[5])  # it cannot help: the opcodes are refused

    text = SCRIPT
    for line, title in ((1, "Add weights_only=False (the file names nothing that runs code)"),
                        (2, "Use weights_only=False (the file names nothing that runs code)"),
                        (3, "Allow its classes (safe_globals)")):
        action = next(a for a in offered[line] if a.title == title)
        resolved = await python_client.code_action_resolve_async(action)
        text = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    assert 'plain = torch.load("proto4.pt", weights_only=False)\n' in text
    assert 'told = torch.load("proto4.pt", weights_only=False)\n' in text
    assert "with torch.serialization.safe_globals([" in text and "weights_only=True, weights_only" not in text
    change_document(python_client, uri, 2, text)
    after = await published(python_client, uri, lambda p: p.version == 2)
    assert [(d.range.start.line, d.code) for d in after.diagnostics if d.code in ("PTH002", "PTH009")] == [
        (text.splitlines().index('both = torch.load("whole_p5.pt", weights_only=True)'), "PTH009")]
    # The fixed script runs: every load in it works.
    namespace: dict[str, object] = {}
    cwd = os.getcwd()
    os.chdir(code_workspace)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(text.replace('both = torch.load("whole_p5.pt", weights_only=True)\n', ""), namespace)
    finally:
        os.chdir(cwd)
    assert set(namespace["plain"]) == set(namespace["told"]) == set(state)  # type: ignore[call-overload]
    assert isinstance(namespace["whole"], nn.Sequential)


async def test_a_file_that_allows_globals_itself_is_not_second_guessed(
        python_client: LanguageClient, code_workspace: Path) -> None:
    torch.save(nn.Sequential(nn.Linear(2, 2)), code_workspace / "whole_allowed.pt")
    text = ('import torch\n'
            'torch.serialization.add_safe_globals([torch.nn.Sequential, torch.nn.Linear])\n'
            'net = torch.load("whole_allowed.pt", weights_only=True)\n')
    uri = open_document(python_client, code_workspace / "allowed.py", text)
    found = await published(python_client, uri, lambda p: True)
    assert not [d for d in found.diagnostics if d.code == "PTH009"], found.diagnostics


async def test_a_file_torch_load_fails_on_is_not_called_unchecked(
        python_client: LanguageClient, code_workspace: Path) -> None:
    path = code_workspace / "legacy_uint16.pt"
    torch.save({"w": torch.ones(2).to(torch.uint16)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(AttributeError):
        torch.load(path, weights_only=False)
    text = 'import torch\nsd = torch.load("legacy_uint16.pt", weights_only=True)\n'
    uri = open_document(python_client, code_workspace / "legacy_load.py", text)
    found = await published(python_client, uri, lambda p: any(d.code == "PTH005" for d in p.diagnostics))
    (error,) = [d for d in found.diagnostics if d.code == "PTH005"]
    assert error.severity == 1 and error.message.startswith("`legacy_uint16.pt` cannot be loaded by torch.load: ")
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(text, '"legacy_uint16.pt"', 2))
                                   or ""))
    assert shown.startswith("⚠ torch.load fails on this file, whatever weights_only says"), shown


async def test_a_file_torch_refuses_before_unpickling_is_not_said_to_run_code(
        python_client: LanguageClient, code_workspace: Path, tmp_path: Path) -> None:
    from tests.reader.test_weights_only_opcodes import _Marker, _with_member

    marker = tmp_path / "ran"
    path = code_workspace / "future.pt"
    torch.save({"w": torch.ones(2), "x": _Marker(marker)}, path)
    _with_member(path, "/version", b"11\n")
    with pytest.raises(RuntimeError, match="version 11"):
        torch.load(path, weights_only=False)
    assert not marker.exists()
    text = 'import torch\nsd = torch.load("future.pt", weights_only=False)\n'
    uri = open_document(python_client, code_workspace / "future_load.py", text)
    found = await published(python_client, uri, lambda p: any(d.code == "PTH005" for d in p.diagnostics))
    assert {d.code for d in found.diagnostics} == {"PTH005"}  # no PTH004: weights_only=False runs nothing here
    (error,) = found.diagnostics
    assert "cannot be loaded by torch.load: the archive says it is format version 11" in error.message
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(text, '"future.pt"', 2)) or ""))
    assert shown.startswith("⚠ Crafted: torch.load refuses it before unpickling, but a Python unpickler would run"), shown
    assert "Run by a Python unpickler (torch.load refuses the file)" in shown


async def test_a_payload_torch_does_not_read_is_no_load_that_runs_code(
        python_client: LanguageClient, code_workspace: Path) -> None:
    """A torch zip whose data.pkl is a plain state_dict and whose extra.pkl calls os.system:
    `torch.load(..., weights_only=False)` runs nothing (checked with a canary), so there is no
    PTH004; the hover says the file is crafted and what its own record loads with."""
    import io
    import zipfile

    from ..reader import hostile_files as H

    canary = code_workspace / "canary-extra"
    clean = io.BytesIO()
    torch.save(nn.Linear(2, 2).state_dict(), clean)
    extra = H.Asm().call("os", "system", H.s(H.shell_touch(canary))).stop()
    crafted = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(clean.getvalue())) as src, zipfile.ZipFile(crafted, "w") as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info))
        out.writestr(f"{src.namelist()[0].split('/')[0]}/extra.pkl", extra)
    (code_workspace / "crafted_extra.pt").write_bytes(crafted.getvalue())
    torch.load(code_workspace / "crafted_extra.pt", weights_only=False)
    assert not canary.exists()  # torch.load ran nothing

    script = 'import torch\nsd = torch.load("crafted_extra.pt", weights_only=False)\nok = torch.load("crafted_extra.pt")\n'
    uri = open_document(python_client, code_workspace / "crafted_extra.py", script)
    # once the file is linked, PTH002 carries its verdict
    found = await published(python_client, uri, lambda p: any(d.code == "PTH002" and (d.data or {}).get("verdict")
                                                              for d in p.diagnostics))
    assert not any(d.code == "PTH004" for d in found.diagnostics), found.diagnostics
    shown = " ".join(rendered_text(await hover_text(python_client, uri, utf16_position(script, '"crafted_extra.pt"', 2)) or ""))
    assert shown.startswith("⚠ Crafted: a pickle in the file that torch.load does not read names  os.system  "), shown
    assert "Safe to load with weights_only=True" in shown
    assert not canary.exists()

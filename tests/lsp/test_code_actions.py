"""textDocument/codeAction, codeAction/resolve and workspace/executeCommand over stdio.

The light-bulb list comes without edits; resolving one returns a versioned WorkspaceEdit.
Every quick fix and refactor on the action tests' scripts is resolved, applied the way an
editor does (UTF-16 positions) and compared with the golden file of tests/code_intel/golden.
"""

from __future__ import annotations

import ast
import asyncio
import re
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from .code_intel import (
    GOLDEN,
    SCRIPTS,
    WAIT_SECONDS,
    apply_lsp_edits,
    change_document,
    code_actions,
    code_workspace,
    codes,
    open_document,
    published,
    python_client,
    text_edits,
    utf16_position,
)

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Lines (1-based) where tests/code_intel/test_golden.py asks for the refactors.
REFACTOR_LINES = {"transfer_learning.py": 46, "training_loop.py": 22, "lightning_module.py": 16}
REFACTOR_KIND = "refactor.rewrite.pthscope."


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def _goldens(prefix: str) -> set[str]:
    """Slugs of the golden files `<prefix><slug>.py` (only those without a further `L…__`, and
    not the freezing code of the modules' quick pick, `…__code__…`)."""
    return {
        p.stem[len(prefix) :]
        for p in GOLDEN.glob(f"{prefix}*.py")
        if not re.match(r"L\d+__|code__", p.stem[len(prefix) :])
    }


async def _resolve(client: LanguageClient, action: types.CodeAction) -> types.CodeAction:
    return await client.code_action_resolve_async(action)


async def _actions_once_linked(
    client: LanguageClient, uri: str, lines: list[int], only: list[str], expected: set[str]
) -> list[types.CodeAction]:
    """The actions on `lines`, asked again until the linked checkpoints are read (the list
    does not wait for them: it must stay instant)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found: dict[str, types.CodeAction] = {}
        for line in lines:
            for action in await code_actions(client, uri, line, only):
                found.setdefault(action.title, action)
        if {_slug(t) for t in found} == expected or time.monotonic() > deadline:
            return list(found.values())
        await asyncio.sleep(0.1)


async def test_quick_fixes_come_without_edits_and_resolve(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    text = (code_workspace / "fresh_model_load.py").read_text()
    uri = open_document(python_client, code_workspace / "fixes_listed.py", text)
    line = utf16_position(text, "model_new.load_state_dict").line
    listed = await code_actions(python_client, uri, line)
    by_title = {a.title: a for a in listed}
    restore = by_title["Restore requires_grad flags"]
    assert restore.kind == types.CodeActionKind.QuickFix and restore.is_preferred
    assert restore.edit is None and restore.diagnostics and restore.diagnostics[0].code == "PTH001"
    weights_only = by_title["Add weights_only=True"]
    assert weights_only.is_preferred and weights_only.diagnostics[0].code == "PTH002"  # type: ignore[index]
    assert not by_title["Suppress PTH001 on this line"].is_preferred
    resolved = await _resolve(python_client, weights_only)
    assert resolved.edit is not None and resolved.edit.document_changes
    change = resolved.edit.document_changes[0]
    assert isinstance(change, types.TextDocumentEdit) and change.text_document.version == 1
    after = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    assert after == (GOLDEN / "fresh_model_load__add_weights_only_true.py").read_text()
    assert "torch.load(PATH, weights_only=True)" in after
    restored = apply_lsp_edits(text, text_edits((await _resolve(python_client, restore)).edit, uri))
    ast.parse(restored)
    assert restored == (GOLDEN / "fresh_model_load__restore_requires_grad_flags.py").read_text()


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py")))
async def test_every_quick_fix_matches_its_golden_file(
    python_client: LanguageClient, code_workspace: Path, script: str
) -> None:
    text = (code_workspace / script).read_text()
    uri = open_document(python_client, code_workspace / f"golden_fixes_{script}", text)
    found = await published(python_client, uri)
    stem = Path(script).stem
    expected = _goldens(f"{stem}__")
    # The tutorial restores into the frozen model; the Lightning model freezes itself.
    assert bool(expected) == (script not in ("transfer_learning.py", "lightning_module.py"))
    lines = sorted({d.range.start.line for d in found.diagnostics})
    listed = await _actions_once_linked(python_client, uri, lines, ["quickfix"], expected)
    assert {_slug(a.title) for a in listed} == expected
    for action in listed:
        assert action.kind == types.CodeActionKind.QuickFix and action.edit is None
        result = apply_lsp_edits(
            text, text_edits((await _resolve(python_client, action)).edit, uri)
        )
        ast.parse(result)
        assert result == (GOLDEN / f"{stem}__{_slug(action.title)}.py").read_text(), action.title


@pytest.mark.parametrize(("script", "line"), sorted(REFACTOR_LINES.items()))
async def test_every_refactor_matches_its_golden_file(
    python_client: LanguageClient, code_workspace: Path, script: str, line: int
) -> None:
    text = (code_workspace / script).read_text()
    uri = open_document(python_client, code_workspace / f"golden_refactors_{script}", text)
    stem = Path(script).stem
    expected = _goldens(f"{stem}__L{line}__")
    assert expected
    listed = await _actions_once_linked(python_client, uri, [line - 1], ["refactor"], expected)
    assert {_slug(a.title) for a in listed} == expected
    for action in listed:
        assert action.kind and action.kind.startswith(REFACTOR_KIND) and action.edit is None
        result = apply_lsp_edits(
            text, text_edits((await _resolve(python_client, action)).edit, uri)
        )
        ast.parse(result)
        golden = GOLDEN / f"{stem}__L{line}__{_slug(action.title)}.py"
        assert result == golden.read_text(), action.title


async def test_kinds_asked_for(python_client: LanguageClient, code_workspace: Path) -> None:
    text = (code_workspace / "training_loop.py").read_text()
    uri = open_document(python_client, code_workspace / "kinds.py", text)
    line = utf16_position(text, "restored.load_state_dict").line
    everything = await code_actions(python_client, uri, line)
    kinds = {a.kind for a in everything}
    assert types.CodeActionKind.QuickFix in kinds and f"{REFACTOR_KIND}requiresGrad" in kinds
    # No load snippet on a line that loads; on the line that builds the model, one.
    assert f"{REFACTOR_KIND}saveLoad" not in kinds
    built = utf16_position(text, "restored = Net()").line
    assert f"{REFACTOR_KIND}saveLoad" in {a.kind for a in await code_actions(python_client, uri, built)}
    quick = await code_actions(python_client, uri, line, ["quickfix"])
    assert quick and all(a.kind == types.CodeActionKind.QuickFix for a in quick)
    freezing = await code_actions(python_client, uri, line, [f"{REFACTOR_KIND}requiresGrad"])
    assert freezing and all(a.kind == f"{REFACTOR_KIND}requiresGrad" for a in freezing)
    # The fix-all source action is listed only when source actions are asked for.
    assert all(not (a.kind or "").startswith("source") for a in everything)
    assert [a.kind for a in await code_actions(python_client, uri, 0, ["source"])] == [
        "source.fixAll.pthscope"
    ]


async def test_fix_all_leaves_nothing_to_fix(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    text = (code_workspace / "fresh_model_load.py").read_text()
    uri = open_document(python_client, code_workspace / "fix_all.py", text)
    (action,) = await code_actions(python_client, uri, 0, ["source.fixAll"])
    result = apply_lsp_edits(text, text_edits((await _resolve(python_client, action)).edit, uri))
    ast.parse(result)
    assert "torch.load(PATH, weights_only=True)" in result and "requires_grad = False" in result
    fixed = open_document(python_client, code_workspace / "fix_all_applied.py", result)
    assert codes(await published(python_client, fixed)) == []
    assert await code_actions(python_client, fixed, 0, ["source.fixAll"]) == []


async def test_edits_count_utf16_units(python_client: LanguageClient, code_workspace: Path) -> None:
    text = 'import torch\nsd = ("😋", torch.load("runs/net_sd.pth"))\n'
    uri = open_document(python_client, code_workspace / "unicode_fix.py", text)
    (add,) = [
        a for a in await code_actions(python_client, uri, 1) if a.title == "Add weights_only=True"
    ]
    result = apply_lsp_edits(text, text_edits((await _resolve(python_client, add)).edit, uri))
    assert result == 'import torch\nsd = ("😋", torch.load("runs/net_sd.pth", weights_only=True))\n'


async def test_resolve_after_the_file_changed(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """Resolving recomputes from the current text: a stale entry edits the right place, or
    nothing when its target is gone."""
    text = (code_workspace / "fresh_model_load.py").read_text()
    uri = open_document(python_client, code_workspace / "stale.py", text)
    line = utf16_position(text, "torch.load(PATH)").line
    (add,) = [a for a in await code_actions(python_client, uri, line) if "weights_only" in a.title]
    moved = "# a new first line\n" + text
    change_document(python_client, uri, 2, moved)
    result = apply_lsp_edits(moved, text_edits((await _resolve(python_client, add)).edit, uri))
    assert "torch.load(PATH, weights_only=True)" in result and result.startswith("# a new")
    gone = moved.replace("torch.load(PATH)", "torch.load(PATH, weights_only=True)")
    change_document(python_client, uri, 3, gone)
    assert text_edits((await _resolve(python_client, add)).edit, uri) == []


async def test_insert_requires_grad_code_command(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """What the checkpoint tree's context menu runs: freeze all but a module, at a line."""
    text = (code_workspace / "training_loop.py").read_text()
    uri = open_document(python_client, code_workspace / "command.py", text)
    edits = python_client.applied_edits  # type: ignore[attr-defined]
    count = len(edits)
    result = await _run(python_client, uri, 20, "freezeAllExcept", "head")
    assert result == {
        "applied": True, "message": "Freeze all parameters of model except head", "optimizer_line": None
    }
    (applied,) = edits[count:]
    assert applied.label == result["message"]
    after = apply_lsp_edits(text, text_edits(applied.edit, uri))
    golden = GOLDEN / "training_loop__L21__code__freeze_all_parameters_of_model_except_head.py"
    assert after == golden.read_text()
    nested = await _run(python_client, uri, 20, "freezeModule", "backbone.0")
    assert nested["applied"] and nested["message"] == "Freeze model.backbone[0]"
    assert "model.backbone[0].requires_grad_(False)" in apply_lsp_edits(
        text, text_edits(edits[-1].edit, uri)
    )
    nothing = await _run(python_client, uri, 2, "unfreezeAll", None)
    assert nothing["applied"] is False and "no model variable" in nothing["message"]
    with pytest.raises(JsonRpcInvalidParams):
        await _run(python_client, uri, 20, "freezeModule", "head; import os")
    assert len(edits) == count + 2


async def _run(
    client: LanguageClient, uri: str, line: int, action: str, module: str | None
) -> dict:
    arguments = {"uri": uri, "line": line, "action": action, "module": module}
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pthscope.insertRequiresGradCode", arguments=[arguments])
    )


BULB_SCRIPT = """\
import torch
import torch.nn as nn
from torch import optim


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


def freeze(model):
    for p in model.parameters():
        p.requires_grad = False


net = Net()
optimizer = optim.SGD(net.parameters(), lr=0.1)
criterion = nn.CrossEntropyLoss()
net.load_state_dict(torch.load("net.pth", weights_only=True))
print(net)
torch.save(net.state_dict(), "net.pth")
"""


async def test_the_light_bulb_offers_load_on_the_models_line_and_save_elsewhere(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """protocol.md: the line that builds a model gets Load, other lines that neither load nor
    save get Save; a loss, an optimizer are not models (nothing to freeze, load or save)."""
    uri = open_document(python_client, code_workspace / "bulb.py", BULB_SCRIPT)

    async def titles(needle: str) -> list[str]:
        line = utf16_position(BULB_SCRIPT, needle).line
        return [a.title for a in await code_actions(python_client, uri, line, ["refactor"])]

    built = await titles("net = Net()")
    assert "Load net: state_dict" in built and not any(t.startswith("Save") for t in built), built
    for needle in ("criterion = ", "optimizer = ", "print(net)"):
        found = await titles(needle)
        assert not any("criterion" in t or "optimizer" in t for t in found), (needle, found)
        assert not any(t.startswith("Load") for t in found), (needle, found)
        assert any(t.startswith("Save net: ") for t in found), (needle, found)
    for needle in ("net.load_state_dict", "torch.save("):
        found = await titles(needle)
        assert not any(t.startswith(("Load", "Save")) for t in found), (needle, found)
    helper = await titles("p.requires_grad = False")
    assert not any(t.startswith("Load") for t in helper), helper

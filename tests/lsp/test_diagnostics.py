"""textDocument/publishDiagnostics over stdio: PTH001-003 on open, change and save.

The flags-lost finding appears on a load into a fresh model and not on the tutorial's restore
into the very model that was frozen; `# noqa` silences; changes are debounced and published
with their version; a linked checkpoint read later, or the side panel's, publishes again; a
linked file that would run code makes PTH002 an error.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import zipfile
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient

from tests.reader.hostile_files import Asm, s, shell_touch, torch_zip

from .code_intel import (
    change_document,
    code_actions,
    code_workspace,
    codes,
    hover_text,
    open_document,
    published,
    python_client,
    utf16_position,
)
from .conftest import ask

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_flags_lost_on_a_fresh_model(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    path = code_workspace / "fresh_model_load.py"
    text = path.read_text()
    uri = open_document(python_client, path)
    found = await published(python_client, uri)
    assert found.version == 1
    assert codes(found) == ["PTH001", "PTH002"]
    lost = next(d for d in found.diagnostics if d.code == "PTH001")
    assert lost.severity == types.DiagnosticSeverity.Warning and lost.source == "pthscope"
    assert "state_dict does not store requires_grad" in lost.message
    assert lost.range.start == utf16_position(text, "model_new.load_state_dict")
    unsafe = next(d for d in found.diagnostics if d.code == "PTH002")
    assert unsafe.range.start == utf16_position(text, "torch.load(PATH)")


async def test_no_flags_lost_when_restoring_into_the_frozen_model(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """The transfer-learning tutorial loads its best weights back into `model`, which keeps
    its flags: no PTH001 (and its torch.load passes weights_only=True: no PTH002)."""
    uri = open_document(python_client, code_workspace / "transfer_learning.py")
    found = await published(python_client, uri)
    assert codes(found) == []


async def test_noqa_and_debounced_changes(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    text = (code_workspace / "fresh_model_load.py").read_text()
    uri = open_document(python_client, code_workspace / "noqa.py", text)
    await published(python_client, uri, lambda p: p.version == 1)
    count = len(python_client.published[uri])  # type: ignore[attr-defined]
    line = "    model_new.load_state_dict(torch.load(PATH))"
    for version, comment in enumerate(
        ["  #", "  # noqa", "  # noqa: PTH00", "  # noqa: PTH001"], 2
    ):
        change_document(python_client, uri, version, text.replace(line, line + comment))
    found = await published(python_client, uri, lambda p: p.version == 5)
    assert codes(found) == ["PTH002"]
    await asyncio.sleep(0.3)
    # Four quick changes, one publication.
    assert [p.version for p in python_client.published[uri][count:]] == [5]  # type: ignore[attr-defined]
    # An incremental change, as VS Code sends them: drop the code list after noqa.
    end = utf16_position(text, line, len(line))
    start = types.Position(line=end.line, character=end.character + len("  # noqa"))
    python_client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=6),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=start,
                        end=types.Position(line=end.line, character=start.character + 8),
                    ),
                    text="",
                )
            ],
        )
    )
    assert codes(await published(python_client, uri, lambda p: p.version == 6)) == []


async def test_save_and_close(python_client: LanguageClient, code_workspace: Path) -> None:
    path = code_workspace / "training_loop.py"
    uri = open_document(python_client, path)
    # The first publication may come before the linked files are read; a later one has it all.
    expected = ["PTH001", "PTH002", "PTH003"]
    await published(python_client, uri, lambda p: codes(p) == expected)
    count = len(python_client.published[uri])  # type: ignore[attr-defined]
    python_client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert codes(await published(python_client, uri, after=count)) == expected
    python_client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    cleared = await published(python_client, uri, lambda p: not p.diagnostics, after=count)
    assert cleared.version is None


async def test_linked_whole_model_republishes_when_read(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """Nothing in the code freezes `model`; the linked whole model shows it partly frozen.
    The first publication may come before the file is read; the next one has the finding."""
    uri = open_document(python_client, code_workspace / "whole_model_link.py")
    found = await published(python_client, uri, lambda p: "PTH001" in codes(p))
    lost = next(d for d in found.diagnostics if d.code == "PTH001")
    assert "`full_model.pth` shows this model partly frozen" in lost.message


async def test_side_panel_checkpoint_is_linked(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    text = (
        "import torch\n"
        "from tests.code_intel.models import Net\n"
        "model = Net()\n"
        "model.load_state_dict(torch.load(weights_path, weights_only=True))\n"
        "model.head.weight\n"
    )
    uri = open_document(python_client, code_workspace / "side_panel.py", text)
    assert codes(await published(python_client, uri)) == []
    assert await hover_text(python_client, uri, utf16_position(text, "weight\n")) is None
    count = len(python_client.published[uri])  # type: ignore[attr-defined]
    full_model = code_workspace / "runs" / "full_model.pth"
    result = await ask(python_client, "pthscope/setActiveCheckpoint", {"file": str(full_model)})
    assert result.file == str(full_model)
    found = await published(python_client, uri, lambda p: "PTH001" in codes(p), after=count)
    assert "`full_model.pth` shows this model partly frozen" in found.diagnostics[0].message
    shown = await hover_text(python_client, uri, utf16_position(text, "weight\n"))
    assert shown is not None and "(parameter) model.head.weight" in shown
    count = len(python_client.published[uri])  # type: ignore[attr-defined]
    assert (await ask(python_client, "pthscope/setActiveCheckpoint", {"file": None})).file is None
    assert codes(await published(python_client, uri, after=count)) == []
    with pytest.raises(JsonRpcInvalidParams, match="file"):
        await ask(python_client, "pthscope/setActiveCheckpoint", {"file": "runs/x.pth"})


async def test_a_linked_file_that_would_run_code_is_an_error_with_no_weights_only_false(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """The verdict reaches the editor: `os.system` spliced into a real whole-model pickle makes
    PTH002 an error, the light bulb offers only weights_only=True, and the hover says why."""
    runs = code_workspace / "verdict_runs"
    runs.mkdir(exist_ok=True)
    template = (code_workspace / "runs" / "full_model.pth").read_bytes()
    with zipfile.ZipFile(io.BytesIO(template)) as archive:
        original = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    call = Asm(None).call("os", "system", s(shell_touch(runs / "canary"))).raw(pickle.POP)
    (runs / "evil.pth").write_bytes(
        torch_zip(original[:2] + call.out + original[2:], template=template)
    )
    text = "import torch\n\nmodel = torch.load('verdict_runs/evil.pth')\n"
    uri = open_document(python_client, code_workspace / "verdict_load.py", text)
    found = await published(
        python_client, uri, lambda p: any("would run code" in d.message for d in p.diagnostics)
    )
    assert len(found.diagnostics) == 1, found.diagnostics
    (unsafe,) = found.diagnostics
    assert unsafe.code == "PTH002" and unsafe.severity == types.DiagnosticSeverity.Error
    assert "os.system" in unsafe.message
    actions = await code_actions(python_client, uri, 2)
    titles = [a.title for a in actions if a.kind == "quickfix"]
    assert titles == [
        "Add weights_only=True (this file would run code with weights_only=False)",
        "Suppress PTH002 on this line",
    ]
    hover = await hover_text(python_client, uri, utf16_position(text, "verdict_runs", 1))
    assert hover is not None
    assert hover.startswith("⚠ Would run code if loaded with weights_only=False: `os.system`")
    assert not (runs / "canary").exists()

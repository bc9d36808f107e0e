"""textDocument/hover on Python files over stdio, against checkpoints made with torch.

Paths and keys, attribute paths, requires_grad statements and loops; UTF-16 columns after
non-ASCII text; the last analysis kept while the file does not parse; unreadable checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .code_intel import (
    change_document,
    code_workspace,
    hover_text,
    open_document,
    published,
    python_client,
    utf16_position,
)

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")

FLAG_LOOP = (
    "import torch\n"
    "model = torch.load('runs/full_model.pth', weights_only=False)\n"
    "for name, p in model.named_parameters():\n"
    "    if not name.startswith('head'):\n"
    "        p.requires_grad = False\n"
    "model.head.requires_grad_(False)\n"
)


async def test_checkpoint_path_literal(python_client: LanguageClient, code_workspace: Path) -> None:
    path = code_workspace / "training_loop.py"
    text = path.read_text()
    uri = open_document(python_client, path)
    whole = await hover_text(python_client, uri, utf16_position(text, '"runs/full_model.pth"', 3))
    # The verdict first, then the code block naming the file.
    assert whole is not None and whole.startswith(
        "Needs weights_only=False or safe_globals: imports 4 classes\n\n"
        "```python\n(checkpoint) runs/full_model.pth"
    )
    assert "whole model" in whole and "**stored**" in whole and "| 450 | 34 | 416 |" in whole
    assert "- `tests.code_intel.models.Net`" in whole
    training = await hover_text(
        python_client, uri, utf16_position(text, '"runs/checkpoint.pth"', 3)
    )
    assert training is not None and "**not stored**" in training
    assert training.startswith("✓ Safe to load with weights_only=True\n")
    # Where nothing is linked there is no hover.
    assert await hover_text(python_client, uri, utf16_position(text, "optimizer.zero_grad")) is None


async def test_parameter_key_and_attribute_path(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    path = code_workspace / "hover_keys.py"
    text = (code_workspace / "whole_model_link.py").read_text()
    text += (
        "full.backbone[2]\nfor name, p in full.named_parameters():\n"
        '    p.requires_grad = name != "backbone.0.weight"\n'
    )
    uri = open_document(python_client, path, text)
    weight = await hover_text(python_client, uri, utf16_position(text, "weight.requires_grad", 1))
    assert weight is not None
    assert "(parameter) full.head.weight: Tensor[2, 16] float32" in weight
    assert "| True (trainable) | [2, 16] | float32 | 32 |" in weight
    frozen = await hover_text(python_client, uri, utf16_position(text, '"backbone.0.weight"', 1))
    assert frozen is not None and "| False (frozen) |" in frozen
    module = await hover_text(python_client, uri, utf16_position(text, "[2]", 1))
    assert module is not None and "(module) full.backbone[2]: Linear" in module


async def test_requires_grad_loop_and_call(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    uri = open_document(python_client, code_workspace / "hover_loop.py", FLAG_LOOP)
    loop = await hover_text(python_client, uri, utf16_position(FLAG_LOOP, "named_parameters"))
    assert loop is not None and "| False | 4 | 416 |" in loop and "`backbone.0.weight`" in loop
    call = await hover_text(python_client, uri, utf16_position(FLAG_LOOP, "requires_grad_("))
    assert call is not None and "| False | 2 | 34 |" in call


async def test_utf16_columns_after_astral_characters(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """😋 is one code point but two UTF-16 units; a line break VS Code does not count (U+2028,
    inside a string) must not shift the lines either."""
    text = (code_workspace / "whole_model_link.py").read_text()
    text += 'label = "a\u2028b"\nprint("😋😋 é", full.head.weight, "runs/full_model.pth")\n'
    uri = open_document(python_client, code_workspace / "hover_unicode.py", text)
    position = utf16_position(text, "weight, ", 2)
    assert position.character == len('print("😋😋 é", full.head.we') + 2
    found = await python_client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    assert found is not None
    assert "(parameter) full.head.weight" in found.contents.value  # type: ignore[union-attr]
    # The range comes back in UTF-16 too: it covers exactly `weight`.
    start = utf16_position(text, "weight, ")
    assert found.range is not None
    assert (found.range.start, found.range.end.character) == (start, start.character + 6)
    path_hover = await hover_text(
        python_client, uri, utf16_position(text, '"runs/full_model.pth")', 1)
    )
    assert path_hover is not None and "whole model" in path_hover


async def test_syntax_error_mid_edit_keeps_hover_and_diagnostics(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    path = code_workspace / "hover_editing.py"
    text = (code_workspace / "fresh_model_load.py").read_text() + FLAG_LOOP.split("\n", 1)[1]
    uri = open_document(python_client, path, text)
    first = await published(python_client, uri, lambda p: "PTH001" in str(p.diagnostics))
    assert first.version == 1
    # Typing an unfinished call on a new line: the tolerant parse blanks that line.
    typing = text.replace("model_new.eval()", "model_new.eval()\n    model_new.load_state_dict(")
    change_document(python_client, uri, 2, typing)
    second = await published(python_client, uri, lambda p: p.version == 2)
    assert "PTH001" in str(second.diagnostics)
    loop_at = utf16_position(typing, "named_parameters", occurrence=1)
    loop = await hover_text(python_client, uri, loop_at)
    assert loop is not None and "| False | 4 | 416 |" in loop
    # A text broken in more places than the repair tries: the last analysis answers hovers
    # above the edit and no diagnostics are published (the client keeps the last ones).
    broken = typing + "(\n[\n{\n(\n"
    change_document(python_client, uri, 3, broken)
    assert await hover_text(python_client, uri, loop_at) == loop
    change_document(python_client, uri, 4, typing)
    fourth = await published(python_client, uri, lambda p: p.version == 4)
    assert "PTH001" in str(fourth.diagnostics)
    assert all(p.version != 3 for p in python_client.published[uri])  # type: ignore[attr-defined]


async def test_unreadable_linked_checkpoints(
    python_client: LanguageClient, code_workspace: Path
) -> None:
    """A file that crashes the parse worker and a garbage file: hovers say so, nothing breaks."""
    text = (
        "import torch\n"
        'crash = torch.load("hostile/crash-me.pt")\n'
        'junk = torch.load("hostile/garbage.pt")\n'
        "crash.fc.weight\n"
    )
    uri = open_document(python_client, code_workspace / "hover_hostile.py", text)
    for needle in ('"hostile/crash-me.pt"', '"hostile/garbage.pt"'):
        found = await hover_text(python_client, uri, utf16_position(text, needle, 2))
        assert found is not None and "not readable" in found, found
    assert "worker" in (
        await hover_text(python_client, uri, utf16_position(text, '"hostile/crash-me.pt"', 2)) or ""
    )
    assert await hover_text(python_client, uri, utf16_position(text, "weight")) is None
    diagnostics = await published(python_client, uri, lambda p: len(p.diagnostics) == 2)
    assert [d.code for d in diagnostics.diagnostics] == ["PTH002", "PTH002"]
    # The server still answers.
    training = code_workspace / "training_loop.py"
    other = await hover_text(
        python_client,
        open_document(python_client, code_workspace / "hover_after.py", training.read_text()),
        utf16_position(training.read_text(), '"runs/full_model.pth"', 3),
    )
    assert other is not None and "whole model" in other

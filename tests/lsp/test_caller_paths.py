"""A `torch.load(path)` in a function of the script reads what the script's calls pass: with
one path from every call, the load inside is linked (its check, its key hovers); with calls that
pass different or unknown paths, nothing is claimed. Counts are torch's own."""

from __future__ import annotations

from pathlib import Path

from pytest_lsp import LanguageClient

from .code_intel import hover_text, open_document, utf16_position
from .test_compat_diagnostics import (
    _load_models,
    _settled,
    client,
    compat_workspace,
    our_counts,
    pytestmark,
)
from .test_compat_diagnostics import strict_load_counts as torch_counts

__all__ = ["client", "compat_workspace", "pytestmark"]

SCRIPT = """\
import torch
from compat_models import Net


def load_checkpoint(path, model):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt)
    return ckpt["stem.weight"]


model = Net()
load_checkpoint("runs/{first}", model)
load_checkpoint(path="runs/{second}", model=model)
"""


async def test_the_path_every_call_passes_is_read_inside(client: LanguageClient, compat_workspace: Path) -> None:
    text = SCRIPT.format(first="dp.pth", second="dp.pth")
    path = compat_workspace / "resume_dp.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    found = await _settled(client, uri)
    assert len(found) == 1 and "'module.'" in found[0].message, found
    assert found[0].range.start.line == 6  # inside the function
    model = _load_models(compat_workspace).Net()
    assert our_counts(found[0].message) == torch_counts(model, compat_workspace / "runs" / "dp.pth")
    shown = await hover_text(client, uri, utf16_position(text, '"stem.weight"', 2)) or ""
    assert "not in the file" in shown.replace("\\", "") and "dp.pth" in shown.replace("\\", "")


async def test_calls_that_pass_different_paths_claim_nothing(client: LanguageClient, compat_workspace: Path) -> None:
    text = SCRIPT.format(first="dp.pth", second="net.pth")
    path = compat_workspace / "resume_two.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    assert await _settled(client, uri) == []
    assert await hover_text(client, uri, utf16_position(text, '"stem.weight"', 2)) is None

"""Hovers over stdio on a model linked to a checkpoint through `load_state_dict`: on a layer
assignment of its class, the checkpoint's tensors for that layer (shapes, and requires_grad
where the file stores it), mismatches marked; on its construction, the file it is loaded from
and what the check found.

The class, its construction and the load are in one script; the checkpoints are saved in the
test run by torch from that very class: a head for 1000 classes, and a DataParallel
state_dict kept with its Parameters (`keep_vars=True`, so requires_grad is stored) whose stem is
frozen, under a file name full of Markdown characters. The shapes shown are checked against
`torch.load` of the same file.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_lsp
import torch
from pytest_lsp import LanguageClient

from .code_intel import PYTHON_SERVER, hover_text, initialize, open_document, utf16_position

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL = """\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10, hidden=16):
        super().__init__()
        self.stem = nn.Conv2d(3, hidden, 3, padding=1)
        self.blocks = nn.Sequential(*[nn.Linear(hidden, hidden) for _ in range(2)])
        self.fc = nn.Linear(hidden, num_classes)
"""

SCRIPT = MODEL + """

model = Net(num_classes=10)
model.load_state_dict(torch.load("runs/{file}", weights_only=True))
"""
ODD_NAME = "dp_*[x](y)_`z`.pth"


@pytest.fixture(scope="module")
def hover_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compat_hovers")
    namespace: dict[str, object] = {}
    exec(compile(MODEL, "model.py", "exec"), namespace)  # the test's own class, to save from
    net_class = namespace["Net"]
    runs = root / "runs"
    runs.mkdir()
    torch.save(net_class(num_classes=1000).state_dict(), runs / "head1000.pth")  # type: ignore[operator]
    net = net_class()  # type: ignore[operator]
    net.stem.requires_grad_(False)
    torch.save(torch.nn.DataParallel(net).state_dict(keep_vars=True), runs / ODD_NAME)
    ema = net_class(num_classes=1000).state_dict()  # type: ignore[operator]
    torch.save({"model": net_class().state_dict(), "model_ema": ema}, runs / "with_ema.pth")  # type: ignore[operator]
    return root


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def client(lsp_client: LanguageClient, hover_workspace: Path):
    await initialize(lsp_client, hover_workspace)
    yield
    await lsp_client.shutdown_session()


async def hover_when(client: LanguageClient, uri: str, text: str, needle: str, word: str) -> str:
    """The hover at `needle` once it has something to say about `word` (the check is made in
    the analysis thread after the linked file is read; until then the hover says nothing)."""
    shown = None
    for _ in range(200):
        shown = await hover_text(client, uri, utf16_position(text, needle, 2))
        if shown is not None and word in _unescaped(shown):
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"no hover about {word!r} at {needle!r}: {shown!r}")


def _open(root: Path, name: str, file: str, client: LanguageClient) -> tuple[str, str]:
    text = SCRIPT.format(file=file)
    path = root / name
    path.write_text(text)
    return open_document(client, path, text), text


def _unescaped(markdown: str) -> str:
    return markdown.replace("\\", "")


async def test_a_layer_shows_the_checkpoints_tensors_and_marks_a_changed_head(
    client: LanguageClient, hover_workspace: Path
) -> None:
    uri, text = _open(hover_workspace, "head.py", "head1000.pth", client)
    saved = torch.load(hover_workspace / "runs" / "head1000.pth", weights_only=True)
    head = _unescaped(await hover_when(client, uri, text, "self.fc = ", "fc.weight"))
    assert "self.fc = nn.Linear(hidden, num_classes)" in head
    assert "head1000.pth" in head and "2 not as here" in head
    for key in ("fc.weight", "fc.bias"):
        here = [10, 16] if key == "fc.weight" else [10]
        row = next(line for line in head.splitlines() if line.startswith(f"| {key} |"))
        assert f"{list(saved[key].shape)} (differs)" in row and f"| {here} |" in row, row
    assert "requires_grad" not in head  # a plain state_dict does not store it
    stem = _unescaped(await hover_when(client, uri, text, "self.stem = ", "stem.weight"))
    assert "all as here" in stem and f"{list(saved['stem.weight'].shape)} |" in stem
    blocks = _unescaped(await hover_when(client, uri, text, "self.blocks = ", "blocks.1.bias"))
    assert all(f"| blocks.{i}.{p} |" in blocks for i in (0, 1) for p in ("weight", "bias"))


async def test_under_a_prefix_the_checkpoints_keys_and_requires_grad_are_shown(
    client: LanguageClient, hover_workspace: Path
) -> None:
    uri, text = _open(hover_workspace, "dp.py", ODD_NAME, client)
    saved = torch.load(hover_workspace / "runs" / ODD_NAME, weights_only=True)
    shown = await hover_when(client, uri, text, "self.stem = ", "requires")
    plain = _unescaped(shown)
    row = next(line for line in plain.splitlines() if line.startswith("| stem.weight "))
    assert "(module.stem.weight)" in row and row.rstrip().endswith("| False |"), row
    assert list(saved["module.stem.weight"].shape) == [16, 3, 3, 3] and "[16, 3, 3, 3] |" in row
    fc = _unescaped(await hover_when(client, uri, text, "self.fc = ", "requires"))
    assert next(line for line in fc.splitlines() if line.startswith("| fc.weight ")).rstrip().endswith("| True |")
    # The file's name reaches the Markdown escaped: no emphasis, link or code span from it.
    assert "dp\\_\\*\\[x\\]\\(y\\)\\_\\`z\\`.pth" in shown.replace("\\.", ".")


async def test_a_load_of_the_ema_copy_shows_the_ema_tensors(client: LanguageClient, hover_workspace: Path) -> None:
    """The reader leaves an EMA copy out of the file's model; a load of it still shows its tensors."""
    text = MODEL + '\nema = Net()\nema.load_state_dict(torch.load("runs/with_ema.pth", weights_only=True)["model_ema"])\n'
    path = hover_workspace / "ema.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    saved = torch.load(hover_workspace / "runs" / "with_ema.pth", weights_only=True)["model_ema"]
    head = _unescaped(await hover_when(client, uri, text, "self.fc = ", "fc.weight"))
    row = next(line for line in head.splitlines() if line.startswith("| fc.weight "))
    assert "(model_ema.fc.weight)" in row and f"{list(saved['fc.weight'].shape)} (differs)" in row, row
    stem = _unescaped(await hover_when(client, uri, text, "self.stem = ", "stem.weight"))
    assert "all as here" in stem and "missing" not in stem


async def test_the_construction_says_which_checkpoint_it_loads_and_how_it_fits(
    client: LanguageClient, hover_workspace: Path
) -> None:
    uri, text = _open(hover_workspace, "built.py", "head1000.pth", client)
    shown = _unescaped(await hover_when(client, uri, text, "model = Net", "Loaded from"))
    assert "(model) model = Net(num_classes=10)" in shown
    assert "Loaded from head1000.pth by model.load_state_dict (line 14)" in shown
    assert "6/8 tensors match; 2 shape mismatches" in shown
    assert "trained for 1000 outputs" in shown
    uri, text = _open(hover_workspace, "built_dp.py", ODD_NAME, client)
    shown = _unescaped(await hover_when(client, uri, text, "model = Net", "Loaded from"))
    assert "every key starts with 'module.'" in shown.lower()

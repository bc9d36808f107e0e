"""PTH008 and the layer hovers when the model is split across workspace modules and its layers
are built by helpers: `nets/blocks.py` (a `conv3x3` helper, a helper returning an
`nn.Sequential` head, a block class), `nets/resnet.py` (the model, importing them, its stages
made by `_make_layer`), and a script `train.py` that imports the model and loads a checkpoint.

Checkpoints are saved in the test run by torch from the real classes: a matching one, a head for
1,000 classes, a DataParallel one, a deeper stage. Each diagnostic's counts are compared with
torch's own load_state_dict; the hovers on the layer statements of the model files (open beside
the script) show the checkpoint's tensors, checked against `torch.load`; a model file edited
since the script's analysis read it says nothing rather than point at the wrong line.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
import pytest_lsp
import torch
from lsprotocol import types
from pytest_lsp import LanguageClient

from .code_intel import (
    PYTHON_SERVER,
    change_document,
    hover_text,
    initialize,
    open_document,
    utf16_position,
)
from .test_compat_diagnostics import our_counts, strict_load_counts

pytestmark = pytest.mark.asyncio(loop_scope="module")

BLOCKS = '''\
import torch.nn as nn


def conv3x3(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def classifier(width, num_classes, hidden=32):
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
'''

RESNET = '''\
import torch.nn as nn

from .blocks import BasicBlock, classifier


class ResNet(nn.Module):
    def __init__(self, depths=(2, 1), width=8, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.layer1 = self._make_layer(width, width, depths[0])
        self.layer2 = self._make_layer(width, width * 2, depths[1], stride=2)
        self.fc = classifier(width * 2, num_classes)

    def _make_layer(self, c_in, c_out, blocks, stride=1):
        layers = [BasicBlock(c_in, c_out, stride)]
        for _ in range(1, blocks):
            layers.append(BasicBlock(c_out, c_out))
        return nn.Sequential(*layers)
'''

SCRIPT = """\
import torch
from nets.resnet import ResNet

model = ResNet({args})
model.load_state_dict(torch.load("runs/{file}", weights_only=True))
"""


@pytest.fixture(scope="module")
def split_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("split")
    (root / "nets").mkdir()
    (root / "nets" / "__init__.py").write_text("")
    (root / "nets" / "blocks.py").write_text(BLOCKS)
    (root / "nets" / "resnet.py").write_text(RESNET)
    sys.path.insert(0, str(root))
    try:
        from nets.resnet import ResNet  # the fixture's own package, imported to save from

        runs = root / "runs"
        runs.mkdir()
        torch.manual_seed(0)
        torch.save(ResNet().state_dict(), runs / "net.pth")
        torch.save(ResNet(num_classes=1000).state_dict(), runs / "head1000.pth")
        torch.save(torch.nn.DataParallel(ResNet()).state_dict(), runs / "dp.pth")
        torch.save(ResNet(depths=(3, 1)).state_dict(), runs / "deep.pth")
    finally:
        sys.path.remove(str(root))
        for name in ("nets.resnet", "nets.blocks", "nets"):
            sys.modules.pop(name, None)
    return root


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def client(lsp_client: LanguageClient, split_workspace: Path):
    await initialize(lsp_client, split_workspace)
    yield
    await lsp_client.shutdown_session()


def torch_counts(root: Path, args: str, file: str) -> tuple[int, int, int]:
    """(missing, unexpected, size mismatches) as torch's strict load_state_dict reports them."""
    sys.path.insert(0, str(root))
    try:
        from nets.resnet import ResNet

        model = eval(f"ResNet({args})", {"ResNet": ResNet})  # our own test text
        return strict_load_counts(model, root / "runs" / file)
    finally:
        sys.path.remove(str(root))
        for name in ("nets.resnet", "nets.blocks", "nets"):
            sys.modules.pop(name, None)


async def settled(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The PTH008 diagnostics once the linked checkpoint is read and the check made."""
    await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0)))
    for _ in range(100):
        found = client.published.get(uri, [])  # type: ignore[attr-defined]
        if found and any(d.code == "PTH008" for d in found[-1].diagnostics):
            break
        await asyncio.sleep(0.05)
    found = client.published.get(uri, [])  # type: ignore[attr-defined]
    return [d for d in found[-1].diagnostics if d.code == "PTH008"] if found else []


def open_script(client: LanguageClient, root: Path, name: str, args: str, file: str) -> tuple[str, str]:
    text = SCRIPT.format(args=args, file=file)
    (root / name).write_text(text)
    return open_document(client, root / name, text), text


async def layer_hover(client: LanguageClient, uri: str, text: str, needle: str, word: str) -> str:
    shown = None
    for _ in range(200):
        shown = await hover_text(client, uri, utf16_position(text, needle, 10))
        if shown is not None and word in shown.replace("\\", ""):
            return shown.replace("\\", "")
        await asyncio.sleep(0.05)
    raise AssertionError(f"no hover about {word!r} at {needle!r}: {shown!r}")


@pytest.mark.parametrize(("args", "file", "words"), [
    ("num_classes=10", "head1000.pth", ["fc.2.weight is [1000, 32]", "num_classes=10 here"]),
    ("", "dp.pth", ["'module.'"]),
    ("depths=(2, 1)", "deep.pth", ["3 blocks in layer1"]),
])  # fmt: skip
async def test_the_diagnostic_follows_imports_and_helpers(
    client: LanguageClient, split_workspace: Path, args: str, file: str, words: list[str]
) -> None:
    uri, _ = open_script(client, split_workspace, f"train_{file.split('.')[0]}.py", args, file)
    (diagnostic,) = await settled(client, uri)
    for word in words:
        assert word in diagnostic.message, diagnostic.message
    assert our_counts(diagnostic.message) == torch_counts(split_workspace, args, file), diagnostic.message


async def test_a_matching_checkpoint_has_no_diagnostic(client: LanguageClient, split_workspace: Path) -> None:
    uri, text = open_script(client, split_workspace, "train_net.py", "", "net.pth")
    total = len(torch.load(split_workspace / "runs" / "net.pth", weights_only=True))
    shown = await layer_hover(client, uri, text, "model.load_state_dict", "tensors match")
    assert f"{total}/{total} tensors match" in shown
    assert not await settled(client, uri)


async def test_layer_hovers_in_the_model_files(client: LanguageClient, split_workspace: Path) -> None:
    """With the script open, the statements of the model's classes in the other files show the
    checkpoint's tensors for them, also where a helper builds the layer."""
    open_script(client, split_workspace, "train_head.py", "num_classes=10", "head1000.pth")
    saved = torch.load(split_workspace / "runs" / "head1000.pth", weights_only=True)
    blocks_uri = open_document(client, split_workspace / "nets" / "blocks.py", BLOCKS)
    resnet_uri = open_document(client, split_workspace / "nets" / "resnet.py", RESNET)

    conv1 = await layer_hover(client, blocks_uri, BLOCKS, "self.conv1 = conv3x3", "conv1.weight")
    assert "loaded by model.load_state_dict, train_head.py, line 5" in conv1
    keys = [k for k in saved if ".conv1." in k]
    assert f"{len(keys)} tensors, all as here" in conv1
    for key in keys:
        row = next(line for line in conv1.splitlines() if line.startswith(f"| {key} |"))
        assert f"| {list(saved[key].shape)} |" in row, row

    head = await layer_hover(client, resnet_uri, RESNET, "self.fc = classifier", "fc.2.weight")
    assert "4 tensors, 2 not as here" in head
    assert re.search(r"\| fc\.2\.weight \| \[1000, 32\] \(differs\) \| \[10, 32\] \|", head), head
    assert "| fc.0.weight | [32, 16] | [32, 16] |" in head
    stage = await layer_hover(client, resnet_uri, RESNET, "self.layer1 = self._make_layer", "layer1.0.conv1")
    assert f"{len([k for k in saved if k.startswith('layer1.')])} tensors, all as here" in stage
    # Where the helper makes the layer: every convolution it makes.
    made = await layer_hover(client, blocks_uri, BLOCKS, "return nn.Conv2d", "conv2.weight")
    assert f"{len([k for k in saved if '.conv1.' in k or '.conv2.' in k])} tensors" in made

    # Edited since the script's analysis read it: the lines have moved (conv1's old line now
    # holds the statement before it); nothing is said rather than the wrong layer's tensors.
    edited = "# a new first line\n" + BLOCKS
    change_document(client, blocks_uri, 2, edited)
    old_line = utf16_position(BLOCKS, "self.conv1 = conv3x3").line
    assert edited.splitlines()[old_line] == "        super().__init__()"
    for _ in range(20):
        shown = await hover_text(client, blocks_uri, types.Position(line=old_line, character=10))
        assert shown is None or "conv1" not in shown, shown
        await asyncio.sleep(0.05)

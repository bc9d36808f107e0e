"""Diagnostics on the realistic scripts: exactly the expected codes on the expected lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pthscope.analysis import analyze
from pthscope.code_intel import diagnostics, fixes
from pthscope.reader.model_view import ModelView
from tests.code_intel.conftest import SCRIPTS

EXPECTED = {
    # The tutorial restores its best weights into the very model it froze: no PTH001.
    "transfer_learning.py": [],
    "fresh_model_load.py": [("PTH001", 27), ("PTH002", 27)],
    "training_loop.py": [("PTH001", 42), ("PTH002", 40), ("PTH003", 36)],
    # The class freezes its backbone in __init__, so a fresh instance is frozen too.
    "lightning_module.py": [],
    "whole_model_link.py": [("PTH001", 13), ("PTH002", 9)],
}


def _codes(source: str, name: str, workspace: Path, checkpoints: dict[str, ModelView]) -> list:
    facts = analyze(source, str(SCRIPTS / name), (str(workspace),))
    found = diagnostics(facts, checkpoints)
    return sorted((d.code, d.range.start.line + 1) for d in found)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_diagnostics(
    name: str, workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    source = (SCRIPTS / name).read_text()
    assert _codes(source, name, workspace, checkpoints) == sorted(EXPECTED[name])


def test_noqa_silences_one_code(workspace: Path, checkpoints: dict[str, ModelView]) -> None:
    lines = (SCRIPTS / "fresh_model_load.py").read_text().split("\n")
    lines[26] += "  # noqa: PTH001"
    assert _codes("\n".join(lines), "fresh_model_load.py", workspace, checkpoints) == [
        ("PTH002", 27)
    ]
    lines[26] = lines[26].replace("# noqa: PTH001", "# noqa")
    assert _codes("\n".join(lines), "fresh_model_load.py", workspace, checkpoints) == []


def test_whole_model_checkpoint_explains_itself(
    workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    facts = analyze(
        (SCRIPTS / "whole_model_link.py").read_text(), str(SCRIPTS / "x.py"), (str(workspace),)
    )
    by_code = {d.code: d for d in diagnostics(facts, checkpoints)}
    assert "pickled whole model" in by_code["PTH002"].message
    assert by_code["PTH002"].data["whole_model"] is True
    assert "full_model.pth" in by_code["PTH001"].message
    # Without the checkpoint there is nothing to say the model was frozen: no PTH001.
    assert [d.code for d in diagnostics(facts, {})] == ["PTH002"]


@pytest.mark.parametrize(
    "source",
    [
        # Frozen and loaded object are the same: flags survive load_state_dict.
        "import torch\nm = Net()\nm.fc.requires_grad_(False)\nm.load_state_dict(torch.load('a.pth', weights_only=True))\n",
        # The fresh model is frozen after the load.
        "import torch\na = Net()\na.fc.requires_grad_(False)\nb = Net()\nb.load_state_dict(torch.load('a.pth', weights_only=True))\nb.fc.requires_grad_(False)\n",
        # A different class is frozen.
        "import torch\na = Other()\na.requires_grad_(False)\nb = Net()\nb.load_state_dict(torch.load('a.pth', weights_only=True))\n",
        # The fresh model goes through code we cannot see before the load.
        "import torch\nfrom lib import prepare\na = Net()\na.requires_grad_(False)\nb = Net()\nprepare(b)\nb.load_state_dict(torch.load('a.pth', weights_only=True))\n",
        # An alias, not a new object.
        "import torch\na = Net()\na.requires_grad_(False)\nb = a.to('cpu')\nb.load_state_dict(torch.load('a.pth', weights_only=True))\n",
        # torch.save of a dict or a state_dict is fine; torch.load with **kwargs is not judged.
        "import torch\nd = {}\ntorch.save(d, 'x.pt')\ntorch.load('x.pt', **opts)\n",
    ],
)
def test_no_diagnostic_without_the_pattern(source: str) -> None:
    assert diagnostics(analyze(source, "/w/x.py"), {}) == []


ATTRIBUTE_SAVES = '''\
import torch
import torch.nn as nn
from encoders import Encoder, Settings


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


class Trainer:
    encoder: "Encoder"

    def __init__(self, make):
        self.head = Head()
        self.stack = nn.Sequential(nn.Linear(4, 4))
        self.encoder = make()
        self.other = make()
        self.settings = Settings()
        self.optimizer = torch.optim.SGD(self.head.parameters(), lr=0.1)
        self.mixed = Head()
        self.scale = nn.Parameter(torch.ones(1))
        self.hook = nn.utils.parametrize.ParametrizationList

    def reset(self):
        self.mixed = None

    def save(self, path):
        torch.save(self.head.cpu(), path)  # PTH003: Head is an nn.Module here
        torch.save(self.stack, path)  # PTH003: torch.nn's
        torch.save(self.encoder.to("cpu"), path)  # PTH003: annotated with a workspace module
        torch.save(self.other, path)  # not known what make() returns
        torch.save(self.settings, path)  # a workspace class that is not a module
        torch.save(self.optimizer, path)  # torch.optim is not torch.nn
        torch.save(self.mixed, path)  # also None
        torch.save(self.head.state_dict(), path)  # weights only
        torch.save(self.scale, path)  # a Parameter is a tensor
'''

ENCODERS = '''\
import torch.nn as nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)


class Settings:
    pass
'''


def test_a_module_saved_through_an_attribute(tmp_path: Path) -> None:
    """`torch.save(self.bert.cpu(), path)` pickles a whole module when the class says
    `self.bert` is one (its annotation or a construction assigned to it); nothing is guessed."""
    (tmp_path / "encoders.py").write_text(ENCODERS)
    facts = analyze(ATTRIBUTE_SAVES, str(tmp_path / "trainer.py"), (str(tmp_path),))
    lines = ATTRIBUTE_SAVES.splitlines()
    found = [(d.code, lines[d.range.start.line].strip()) for d in diagnostics(facts, {}) if d.code == "PTH003"]
    assert [text for _, text in found] == [line.strip() for line in lines if "# PTH003" in line]
    assert "`self.head.cpu()`" not in found[0][1]


    index = next(i for i, s in enumerate(facts.saves) if s.obj_text == "self.head.cpu()")
    (edit,) = fixes.save_with_grad_map(facts, index) or []
    assert '"model": self.head.cpu().state_dict(),' in edit.new_text
    assert '"requires_grad": {n: p.requires_grad for n, p in self.head.cpu().named_parameters()},' in edit.new_text

"""Diagnostics on the realistic scripts: exactly the expected codes on the expected lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pthscope.analysis import analyze
from pthscope.code_intel import diagnostics
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

"""Hovers against checkpoints made with torch: paths, keys, attribute paths, flag statements."""

from __future__ import annotations

from pathlib import Path

from pthscope.analysis import analyze
from pthscope.code_intel import hover
from pthscope.reader.model_view import ModelView
from tests.code_intel.conftest import SCRIPTS


def _hover(source: str, needle: str, workspace: Path, checkpoints: dict, offset: int = 0) -> str:
    facts = analyze(source, str(SCRIPTS / "probe.py"), (str(workspace),))
    line = next(i for i, text in enumerate(source.split("\n")) if needle in text)
    found = hover(facts, line, source.split("\n")[line].index(needle) + offset, checkpoints)
    assert found is not None, needle
    lines = found.contents.split("\n")
    # A path's hover opens with the verdict, then the code block; others with the code block.
    assert lines[0] == "```python" or (lines[1:3] == ["", "```python"]), found.contents
    return found.contents


def test_checkpoint_path_hovers(workspace: Path, checkpoints: dict[str, ModelView]) -> None:
    source = (SCRIPTS / "training_loop.py").read_text()
    text = _hover(source, '"runs/full_model.pth"', workspace, checkpoints, 2)
    assert "whole model" in text and "**stored**" in text and "| 450 | 34 | 416 |" in text
    assert text.startswith("Needs weights_only=False or safe_globals: imports 4 classes\n")
    assert "- `tests.code_intel.models.Net`" in text and "- `torch.nn.modules.linear.Linear`" in text
    text = _hover(source, '"runs/checkpoint.pth")', workspace, checkpoints, 2)
    assert "**not stored**" in text
    assert text.startswith("✓ Safe to load with weights_only=True\n")


def test_attribute_path_and_key_string(workspace: Path, checkpoints: dict[str, ModelView]) -> None:
    source = (SCRIPTS / "whole_model_link.py").read_text()
    text = _hover(source, "weight.requires_grad", workspace, checkpoints)
    assert "(parameter) full.head.weight: Tensor[2, 16] float32" in text
    assert "| True (trainable) |" in text
    source += (
        "\nfull.backbone[2]\nfor name, p in full.named_parameters():\n"
        '    p.requires_grad = name.startswith("backbone.0.weight")\n'
    )
    # A key string in a loop over `full`'s parameters: `full`'s file (the other one is not it).
    assert "| False (frozen) |" in _hover(source, '"backbone.0.weight"', workspace, checkpoints)
    text = _hover(source, "[2]", workspace, checkpoints, 1)
    assert "(module) full.backbone[2]: Linear" in text and "| 272 | 0 | 272 | 2 |" in text


def test_state_dict_and_data_parallel_keys(
    workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    source = (
        "import torch\nmodel = Net()\n"
        'model.load_state_dict(torch.load("runs/dp_sd.pth", weights_only=True))\n'
        "model.head.bias\nmodel.module.backbone\n"
    )
    assert "not stored in this state_dict" in _hover(source, "bias", workspace, checkpoints)
    text = _hover(source, "backbone", workspace, checkpoints)
    assert "(module) model.module.backbone" in text and "not stored in this state_dict" in text


def test_flag_statements_show_affected_parameters(
    workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    source = (
        "import torch\nmodel = torch.load('runs/full_model.pth', weights_only=False)\n"
        "for name, p in model.named_parameters():\n"
        "    if not name.startswith('head'):\n"
        "        p.requires_grad = False\n"
        "model.head.requires_grad_(False)\n"
    )
    text = _hover(source, "named_parameters", workspace, checkpoints)
    assert "| False | 4 | 416 |" in text and "`backbone.0.weight`" in text
    assert "| False | 2 | 34 |" in _hover(source, "requires_grad_", workspace, checkpoints)


def test_a_path_naming_no_file_says_where_it_looked(workspace: Path) -> None:
    source = 'import torch\nm = torch.load("runs/missing.pth")\nm.fc.weight\n'
    facts = analyze(source, str(SCRIPTS / "probe.py"), (str(workspace),))
    found = hover(facts, 1, 20, {})
    assert found is not None and "no such file" in found.contents
    assert f"`{workspace / 'runs' / 'missing.pth'}`" in found.contents
    assert hover(facts, 2, 3, {}) is None  # nothing is known of what it holds
    # A bare name may be joined to a folder elsewhere (`os.path.join(MODEL_DIR, WEIGHTS)`): no claim.
    bare = analyze('WEIGHTS = "pytorch_model.bin"\n', str(SCRIPTS / "probe.py"), (str(workspace),))
    assert bare.paths and hover(bare, 0, 14, {}) is None


def test_freezing_idioms_and_the_code_pthscope_inserts(
    workspace: Path, checkpoints: dict[str, ModelView]
) -> None:
    """Loops over a submodule's parameters, `requires_grad_`, name tests, a helper doing either
    — and the code the modules' quick pick inserts — each hover against the model's file."""
    source = (
        "import torch\n"
        "model = torch.load('runs/full_model.pth', weights_only=False)\n"
        "def freeze(net):\n"
        "    for p in net.backbone.parameters():\n"
        "        p.requires_grad = False\n"
        "    net.head.requires_grad_(True)\n"
        "freeze(model)\n"
        "for name, param in model.named_parameters():\n"
        "    param.requires_grad = name.startswith(('head.', 'backbone.2.'))\n"
        "for name, q in model.named_parameters():\n"
        "    if name.startswith('backbone'):\n"
        "        q.requires_grad = False\n"
    )
    helper = _hover(source, "freeze(model)", workspace, checkpoints)
    assert "| False | 4 | 416 |" in helper and "| True | 2 | 34 |" in helper, helper
    inserted = _hover(source, "param.requires_grad", workspace, checkpoints, 6)
    assert "| False | 2 | 144 |" in inserted and "| True | 4 | 306 |" in inserted, inserted
    condition = _hover(source, "q.requires_grad", workspace, checkpoints, 2)
    assert "| False | 4 | 416 |" in condition and "`full_model.pth`" in condition, condition

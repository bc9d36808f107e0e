"""PTH002 and its fixes follow the linked file's verdict, and the path hover states it first.

Files made in the test run: a whole model of a class in a `demo_models` module (classes only),
the same whole model with an `os.system` call spliced into its pickle (runs code; proven to run
under `torch.load(weights_only=False)`), every payload of tests/reader/hostile_files.py in a
torch zip, a state_dict, and a dict holding an `argparse.Namespace`. The safe_globals fix is
applied and the fixed script is run with torch: the load succeeds with weights_only=True inside
the block, where it fails without it.
"""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

import pthscope
from pthscope.analysis import analyze
from pthscope.code_intel import Range, code_actions, diagnostics, hover, resolve_code_action
from pthscope.reader.model_view import ModelView, model_view
from tests.code_intel.applying import apply_edits
from tests.code_intel.hostile_text import assert_edit_is_inert, assert_markdown_is_inert, shows
from tests.reader.hostile_files import Asm, payloads, s, shell_touch, torch_zip

DEMO_MODELS = """
import torch.nn as nn


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.fc = nn.Linear(4, 2)
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with `demo_models.py` (importable while the module's tests run) and `runs/`."""
    root = tmp_path_factory.mktemp("verdicts")
    (root / "demo_models.py").write_text(DEMO_MODELS)
    sys.path.insert(0, str(root))
    try:
        import demo_models  # type: ignore[import-not-found]

        runs = root / "runs"
        runs.mkdir()
        torch.manual_seed(0)
        model = demo_models.SmallResNet()
        model.conv.requires_grad_(False)
        torch.save(model, runs / "resnet_full.pt")
        torch.save(model.state_dict(), runs / "resnet_sd.pt")
        import argparse

        torch.save({"args": argparse.Namespace(lr=0.1), "w": torch.ones(2)}, runs / "args.pt")
        _write_runs_code_files(runs, root / "canary")
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("demo_models", None)


def _write_runs_code_files(runs: Path, canary: Path) -> None:
    """The whole model with `os.system(...)` run (and popped) before the model is built, and
    every reader payload that needs no extra module, each as a torch zip."""
    template = (runs / "resnet_full.pt").read_bytes()
    original = _data_pkl(template)
    call = Asm(None).call("os", "system", s(shell_touch(canary))).raw(pickle.POP).stop()[:-1]
    spliced = original[:2] + call + original[2:]
    (runs / "evil_model.pt").write_bytes(torch_zip(spliced, template=template))
    for payload in payloads(canary):
        if not payload.needs_evil_module and payload.dangerous:
            (runs / f"payload-{payload.name}.pt").write_bytes(torch_zip(payload.data))


def _data_pkl(archive: bytes) -> bytes:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))


def _checkpoints(root: Path) -> dict[str, Any]:
    return {os.path.normpath(str(p)): model_view(pthscope.inspect(str(p))) for p in (root / "runs").iterdir()}


def _fixes(source: str, root: Path, checkpoints: dict[str, Any]) -> tuple[Any, list, list]:
    facts = analyze(source, str(root / "load.py"), (str(root),))
    found = [d for d in diagnostics(facts, checkpoints) if d.code == "PTH002"]
    actions = [
        a
        for d in found
        for a in code_actions(facts, Range.of_lines(d.range.start.line), checkpoints, [d])
    ]
    return facts, found, actions


def test_the_spliced_payload_really_runs(root: Path) -> None:
    canary = root / "canary"
    canary.unlink(missing_ok=True)
    torch.load(root / "runs" / "evil_model.pt", weights_only=False)
    assert canary.exists()
    canary.unlink()


def _runs_code_files(root: Path) -> list[str]:
    return sorted(
        p.name for p in (root / "runs").iterdir() if p.name.startswith(("evil", "payload"))
    )


def test_a_file_that_would_run_code_gets_an_error_and_no_weights_only_false(root: Path) -> None:
    checkpoints = _checkpoints(root)
    names = _runs_code_files(root)
    assert "evil_model.pt" in names and len(names) > 10
    for name in names:
        source = f"import torch\n\nmodel = torch.load('runs/{name}')\n"
        facts, found, actions = _fixes(source, root, checkpoints)
        (diagnostic,) = found
        assert diagnostic.severity == "error", name
        assert "would run code" in diagnostic.message, name
        assert [a.data["action"] for a in actions] == ["weights_only", "suppress"], name
        assert actions[0].data["value"] is True and actions[0].is_preferred
        for action in actions:
            edits = resolve_code_action(facts, action.data, checkpoints).edits or []
            assert "weights_only=False" not in "".join(e.new_text for e in edits), name
        # Asked directly (a forged or stale entry), the fixes that go through False refuse.
        for forged in (
            {"action": "weights_only", "torch_load": 0, "value": False},
            {"action": "state_dict_load", "torch_load": 0},
            {"action": "safe_globals", "torch_load": 0},
        ):
            assert not resolve_code_action(facts, forged, checkpoints).edits, (name, forged)
        contents = hover(facts, 2, 25, checkpoints)
        assert contents is not None
        assert contents.contents.startswith("⚠ Would run code if loaded with weights_only=False: `")


def test_the_whole_model_with_a_payload_is_not_offered_the_class_routes(root: Path) -> None:
    checkpoints = _checkpoints(root)
    source = (
        "import torch\n\nfrom demo_models import SmallResNet\n\n"
        "model = torch.load('runs/evil_model.pt')\n"
    )
    facts, (diagnostic,), actions = _fixes(source, root, checkpoints)
    assert "os.system" in diagnostic.message and diagnostic.data["whole_model"] is True
    assert {a.data["action"] for a in actions} == {"weights_only", "suppress"}


def test_a_safe_file_gets_weights_only_true(root: Path) -> None:
    checkpoints = _checkpoints(root)
    source = "import torch\n\nsd = torch.load('runs/resnet_sd.pt')\n"
    facts, (diagnostic,), actions = _fixes(source, root, checkpoints)
    assert diagnostic.severity == "warning"
    assert [a.title for a in actions] == ["Add weights_only=True", "Suppress PTH002 on this line"]
    found = hover(facts, 2, 20, checkpoints)
    assert found is not None and found.contents.startswith(
        "✓ Safe to load with weights_only=True\n"
    )


def _apply_fix(source: str, root: Path, action_name: str = "safe_globals") -> str:
    checkpoints = _checkpoints(root)
    facts, found, actions = _fixes(source, root, checkpoints)
    (diagnostic,) = found
    assert diagnostic.severity == "warning" and diagnostic.data["verdict"] == "classes"
    (action,) = [a for a in actions if a.data["action"] == action_name]
    assert action.title == "Load with weights_only=True, allowing its classes (safe_globals)"
    edits = resolve_code_action(facts, action.data, checkpoints).edits
    assert edits
    return apply_edits(source, edits)


def _run(source: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(root)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, str(root / "load.py"), "exec"), namespace)
    return namespace


def _assert_same_model(loaded: torch.nn.Module, root: Path) -> None:
    import demo_models

    assert type(loaded) is demo_models.SmallResNet
    saved = torch.load(root / "runs" / "resnet_full.pt", weights_only=False)
    for (name, mine), (_, theirs) in zip(
        loaded.named_parameters(), saved.named_parameters(), strict=True
    ):
        assert torch.equal(mine, theirs) and mine.requires_grad == theirs.requires_grad, name
    assert not loaded.conv.weight.requires_grad and loaded.fc.weight.requires_grad


def test_the_safe_globals_block_loads_the_whole_model_with_weights_only_true(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "import torch\n\nmodel = torch.load('runs/resnet_full.pt')\n"
    with pytest.raises(pickle.UnpicklingError):
        _run(source.replace("')", "', weights_only=True)"), root, monkeypatch)
    fixed = _apply_fix(source, root)
    assert fixed == textwrap.dedent("""\
        import torch

        from demo_models import SmallResNet
        from torch.nn.modules.activation import ReLU
        from torch.nn.modules.batchnorm import BatchNorm2d
        from torch.nn.modules.container import Sequential
        from torch.nn.modules.conv import Conv2d
        from torch.nn.modules.linear import Linear
        with torch.serialization.safe_globals([SmallResNet, ReLU, BatchNorm2d, Sequential, Conv2d, Linear]):
            model = torch.load('runs/resnet_full.pt', weights_only=True)
        """)
    assert_edit_is_inert(
        source, fixed, "safe_globals",
        classes={"demo_models", "SmallResNet", "torch", "nn", "modules", "conv", "Conv2d",
                 "batchnorm", "BatchNorm2d", "container", "Sequential", "linear", "Linear",
                 "activation", "ReLU"},
    )  # fmt: skip
    namespace = _run(fixed, root, monkeypatch)
    _assert_same_model(namespace["model"], root)
    # The block allowed them for the load only.
    assert namespace["SmallResNet"] not in torch.serialization.get_safe_globals()


def test_the_block_inside_a_function_reuses_imports_and_avoids_taken_names(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = textwrap.dedent("""\
        import torch as th

        from demo_models import SmallResNet as Net

        Linear = 3


        def load():
            model = th.load(  # keep this comment
                "runs/resnet_full.pt",
                map_location="cpu",
            )
            return model


        model = load()
        """)
    fixed = _apply_fix(source, root)
    assert "from demo_models import" not in fixed.split("Linear = 3")[1]
    assert "    from torch.nn.modules.linear import Linear as Linear_2\n" in fixed
    assert "    with th.serialization.safe_globals([Net, ReLU, " in fixed
    assert '        model = th.load(  # keep this comment\n            "runs/' in fixed
    namespace = _run(fixed, root, monkeypatch)
    _assert_same_model(namespace["model"], root)
    assert namespace["Linear"] == 3


def test_a_class_saved_from_a_script_is_allowed_as_the_script_defines_it(
    root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = textwrap.dedent("""\
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)


        model = torch.load("runs/main_net.pt")
        """)
    saved = _run(source.split("model =")[0], root, monkeypatch)["Net"]
    monkeypatch.setattr(sys.modules["__main__"], "Net", saved, raising=False)
    torch.save(saved(), root / "runs" / "main_net.pt")
    try:
        fixed = _apply_fix(source, root)
        assert "with torch.serialization.safe_globals([Net, Linear]):" in fixed
        assert "import Net" not in fixed
        loaded = _run(fixed, root, monkeypatch)
        assert type(loaded["model"]) is loaded["Net"]
        # The same file loaded from a script that does not define the class: not offered.
        other = "import torch\n\nmodel = torch.load('runs/main_net.pt')\n"
        _, _, actions = _fixes(other, root, _checkpoints(root))
        assert "safe_globals" not in {a.data["action"] for a in actions}
    finally:
        (root / "runs" / "main_net.pt").unlink()


def test_a_namespace_in_a_training_dict_gets_its_import(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "import torch\n\nckpt = torch.load('runs/args.pt')\n"
    fixed = _apply_fix(source, root)
    assert "from argparse import Namespace\n" in fixed
    assert _run(fixed, root, monkeypatch)["ckpt"]["args"].lr == 0.1


@pytest.mark.parametrize(
    "statement",
    [
        "x = 1; model = torch.load('runs/resnet_full.pt')",
        "model = torch.load('runs/resnet_full.pt'); x = 1",
        "if True: model = torch.load('runs/resnet_full.pt')",
        "model = (torch.load('runs/resnet_full.pt'), '''a\nb''')",
        "model = (torch.load('runs/resnet_full.pt'), f'''a\n{1}b''')",
        "model = torch.load('runs/resnet_full.pt', **{})",
        "model = load('runs/resnet_full.pt')",
    ],
)
def test_the_block_is_not_offered_where_it_would_change_the_code(
    root: Path, statement: str
) -> None:
    source = f"import torch\nfrom torch import load\n\n{statement}\n"
    checkpoints = _checkpoints(root)
    facts = analyze(source, str(root / "load.py"), (str(root),))
    data = {"action": "safe_globals", "torch_load": 0}
    assert facts.torch_loads or "load(" in statement
    assert not resolve_code_action(facts, data, checkpoints).edits


def test_a_long_class_list_is_one_class_per_line(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = textwrap.dedent("""\
        import torch


        class Loader:
            def load(self):
                model = torch.load("runs/resnet_full.pt")
                return model


        model = Loader().load()
        """)
    fixed = _apply_fix(source, root)
    assert "        with torch.serialization.safe_globals([\n            SmallResNet,\n" in fixed
    assert "            Linear,\n        ]):\n            model = torch.load(" in fixed
    assert max(len(line) for line in fixed.split("\n")) <= 100
    _assert_same_model(_run(fixed, root, monkeypatch)["model"], root)


def test_the_hover_states_the_readers_effect_sentence_as_text(root: Path) -> None:
    """`globals[i].effect` is listed under the verdict, escaped."""
    checkpoints = {k: c.to_json() for k, c in _checkpoints(root).items()}
    evil = checkpoints[os.path.normpath(str(root / "runs" / "evil_model.pt"))]
    effect = "would call `os.system(…)` with 1 argument from the file **[x](command:y)**"
    for name, risk in evil["risky_globals"]:
        if risk == "dangerous":
            evil["global_effects"][name] = effect
    checkpoints = {k: ModelView.from_json(c) for k, c in checkpoints.items()}
    source = "import torch\n\nmodel = torch.load('runs/evil_model.pt')\n"
    facts = analyze(source, str(root / "load.py"), (str(root),))
    contents = hover(facts, 2, 25, checkpoints)
    assert contents is not None
    text = contents.contents
    assert text.startswith("⚠ Would run code if loaded with weights_only=False: `os.system`\n")
    assert_markdown_is_inert(text)
    assert shows(text, effect) and "- `os.system` — would call" in text
    assert "Classes it imports" in text and shows(text, "demo_models.SmallResNet")

"""PTH008 and the hovers when the model or the loaded dict is changed in place before the load.

A replaced submodule (`model.fc = nn.Linear(16, 5)`, the transfer-learning idiom) is replayed on
the model the class builds; a loaded dict edited with literal keys (`del sd["fc.weight"]`) leaves
those keys out. Anything else — keys from a loop or a variable, a store pthscope cannot
evaluate, `setattr`, a change inside an `if` — makes the load unclear: nothing is said about it.
Each script is run with torch in the same test (its `load_state_dict` calls recorded), and what
the server says at each load is checked against that: a diagnostic only where torch raises, with
torch's counts, and "k/n tensors match" with torch's missing keys where it loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
import torch
from lsprotocol import types
from pytest_lsp import LanguageClient

from .code_intel import PYTHON_SERVER, hover_text, initialize, open_document, utf16_position
from .test_compat_diagnostics import torch_error_counts

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODELS = '''\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10, hidden=16):
        super().__init__()
        self.stem = nn.Linear(8, hidden)
        self.blocks = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.fc = nn.Linear(hidden, num_classes)
        self.out = nn.Linear(num_classes, 2)


class LazyNet(nn.Module):
    def __init__(self, n=10):
        super().__init__()
        self.fc = nn.LazyLinear(n)
        self.bn = nn.LazyBatchNorm1d()


class NormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
'''

HEAD = """\
import torch
import torch.nn as nn
from change_models import LazyNet, Net, NormNet

"""
# Loaded last in every script: once its hover answers, the file's checks are made.
CONTROL = """
ctrl = Net()
ctrl.load_state_dict(torch.load("runs/net.pth", weights_only=True))
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("changes")
    (root / "change_models.py").write_text(MODELS)
    sys.path.insert(0, str(root))
    import change_models  # type: ignore[import-not-found]

    runs = root / "runs"
    runs.mkdir()
    torch.manual_seed(0)
    torch.save(change_models.Net().state_dict(), runs / "net.pth")
    torch.save(change_models.Net(num_classes=1000).state_dict(), runs / "head1000.pth")
    torch.save({"model": change_models.Net(num_classes=1000).state_dict(), "epoch": 300}, runs / "train.pth")
    torch.save(torch.nn.Linear(16, 10), runs / "head.pt")  # a whole module
    lightning = {f"model.{k}": v for k, v in change_models.Net().state_dict().items()}
    torch.save({"state_dict": {**lightning, "loss_fn.weight": torch.ones(10)}, "epoch": 3}, runs / "lightning.ckpt")
    for name, classes in (("ddp.pth", 10), ("ddp1000.pth", 1000)):  # saved from DistributedDataParallel
        torch.save({f"module.{k}": v for k, v in change_models.Net(num_classes=classes).state_dict().items()},
                   runs / name)
    tuned = change_models.Net(num_classes=1000)
    tuned.fc = torch.nn.Linear(16, 5)
    torch.save(tuned.state_dict(), runs / "tuned.pth")
    tuned.blocks[2] = torch.nn.Linear(16, 4)
    torch.save(tuned.state_dict(), runs / "tuned_block.pth")
    lazy = change_models.LazyNet()
    lazy.bn(lazy.fc(torch.zeros(2, 16)))  # its first input gives the lazy layers their shapes
    torch.save(lazy.state_dict(), runs / "lazy16.pth")
    norm = change_models.NormNet().state_dict()
    # A dict comprehension keeps no _metadata: torch fills in the num_batches_tracked it leaves out.
    torch.save({k: v for k, v in norm.items() if "num_batches_tracked" not in k}, runs / "norm_old.pth")
    del norm["bn.num_batches_tracked"]  # _metadata kept (BatchNorm version 2): torch reports it missing
    torch.save(norm, runs / "norm_v2.pth")
    return root


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize(lsp_client, workspace)
    yield
    await lsp_client.shutdown_session()


def torch_loads(root: Path, path: Path) -> dict[int, dict[str, Any]]:
    """Run the script with torch; each `load_state_dict` call's outcome by its 0-based line."""
    outcomes: dict[int, dict[str, Any]] = {}
    original = torch.nn.Module.load_state_dict

    def recorded(self: torch.nn.Module, state: Any, strict: bool = True, **kw: Any) -> Any:
        line = sys._getframe(1).f_lineno - 1
        try:
            result = original(self, state, strict=strict, **kw)
        except RuntimeError as error:
            missing, unexpected, mismatches = torch_error_counts(str(error))
            outcomes[line] = {"raises": True, "mismatches": mismatches, "missing": missing, "unexpected": unexpected}
            return None
        outcomes[line] = {"raises": False, "missing": len(result.missing_keys),
                          "unexpected": len(result.unexpected_keys), "total": len(self.state_dict())}  # fmt: skip
        return result

    torch.nn.Module.load_state_dict = recorded  # type: ignore[method-assign]
    try:
        with contextlib.chdir(root):
            runpy.run_path(str(path), run_name="__main__")
    finally:
        torch.nn.Module.load_state_dict = original  # type: ignore[method-assign]
    return outcomes


async def server_claims(client: LanguageClient, uri: str, text: str) -> dict[int, tuple[str | None, str | None]]:
    """(the PTH008 message, the load_state_dict hover) at each load, once the control load's
    check is made."""
    lines = [i for i, line in enumerate(text.splitlines()) if "load_state_dict(" in line]
    control = types.Position(line=lines[-1], character=text.splitlines()[lines[-1]].index("load_state_dict") + 3)
    for _ in range(200):
        if await hover_text(client, uri, control) is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the control load was never checked")
    await asyncio.sleep(0.2)  # the diagnostics of that analysis
    published = client.published[uri][-1].diagnostics  # type: ignore[attr-defined]
    claims = {}
    for line in lines[:-1]:
        at = types.Position(line=line, character=text.splitlines()[line].index("load_state_dict") + 3)
        messages = [d.message for d in published if d.code == "PTH008" and d.range.start.line == line]
        shown = await hover_text(client, uri, at)
        claims[line] = (messages[0] if messages else None, shown.replace("\\", "") if shown else None)
    return claims


def check_against_torch(claim: tuple[str | None, str | None], truth: dict[str, Any]) -> None:
    """What the server says at a load agrees with what torch did there."""
    message, shown = claim
    assert shown is not None, "the load was not checked"
    summary = re.search(r"(\d+)/(\d+) tensors match(?:; (\d+) missing)?(?:, (\d+) unexpected)?", shown)
    assert summary, shown
    if truth["raises"]:
        assert message is not None and "would raise" in message, (message, truth)
        assert f"{truth['mismatches']} shape mismatch" in message if truth["mismatches"] else "mismatch" not in message
        assert int(summary.group(3) or 0) == truth["missing"], (shown, truth)
        return
    assert message is None or "would raise" not in message, (message, truth)
    matched, total = int(summary.group(1)), int(summary.group(2))
    assert (total, int(summary.group(3) or 0)) == (truth["total"], truth["missing"]), (shown, truth)
    assert matched == truth["total"] - truth["missing"], (shown, truth)


async def _run(client: LanguageClient, workspace: Path, name: str, body: str) -> tuple[str, str, dict, dict]:
    text = HEAD + body + CONTROL
    path = workspace / f"{name}.py"
    path.write_text(text)
    truth = torch_loads(workspace, path)
    uri = open_document(client, path, text)
    return text, uri, truth, await server_claims(client, uri, text)


CHECKED = [
    # a replaced head: the 10-class file now loads into the 1000-class construction
    ("replaced_head", 'model = Net(num_classes=1000)\nmodel.fc = nn.Linear(16, 10)\nmodel.out = nn.Linear(10, 2)\n'
                      'model.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    # the torchvision idiom, with in_features read from the layer it replaces
    ("in_features", 'model = Net(num_classes=1000)\nmodel.load_state_dict(torch.load("runs/head1000.pth", weights_only=True))\n'
                    'model.fc = nn.Linear(model.fc.in_features, 5)\n'
                    'model.load_state_dict(torch.load("runs/tuned.pth", weights_only=True))\n'),
    # a head made by a function of the script
    ("helper_head", 'def head(n):\n    return nn.Sequential(nn.Linear(16, n))[0]\n\n'
                    'model = Net(num_classes=1000)\nmodel.fc = head(10)\nmodel.out = nn.Linear(10, 2)\n'
                    'model.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    # a replaced head of the wrong size still raises, with torch's counts
    ("wrong_head", 'model = Net()\nmodel.fc = nn.Linear(16, 7)\n'
                   'model.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    # an index into a Sequential, and a module added after the others
    ("indexed", 'model = Net(num_classes=1000)\nmodel.fc = nn.Linear(16, 5)\nmodel.blocks[2] = nn.Linear(16, 4)\n'
                'model.load_state_dict(torch.load("runs/tuned_block.pth", weights_only=True))\n'),
    ("added", 'model = Net()\nmodel.extra = nn.Linear(2, 2)\nmodel.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    # literal keys deleted from the loaded dict: left out, as torch reports them missing
    ("deleted_keys", 'sd = torch.load("runs/head1000.pth", weights_only=True)\ndel sd["fc.weight"]\nsd.pop("fc.bias")\n'
                     'del sd["out.weight"], sd["out.bias"]\n'
                     'model = Net()\nmodel.load_state_dict(sd, strict=False)\n'),
    ("deleted_strict", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nsd = ckpt["model"]\ndel sd["fc.weight"]\n'
                       'model = Net(num_classes=1000)\nmodel.load_state_dict(ckpt["model"])\n'),
    # a renaming comprehension bound to a name first (the usual DDP-resume form)
    ("renamed", 'sd = torch.load("runs/ddp.pth", weights_only=True)\n'
                'sd = {k.removeprefix("module."): v for k, v in sd.items()}\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    ("renamed_wrong_size", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\n'
                           'state = {k.removeprefix("module."): v for k, v in sd.items()}\nmodel = Net()\n'
                           'model.load_state_dict(state)\n'),
    # literal keys deleted before the renaming are left out; an edit of the original after it is not the copy's
    ("renamed_after_edits", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\ndel sd["module.fc.weight"]\n'
                            'sd.pop("module.fc.bias")\ndel sd["module.out.weight"]\n'
                            'state = {k.removeprefix("module."): v for k, v in sd.items()}\n'
                            'model = Net()\nmodel.load_state_dict(state, strict=False)\n'),
    ("original_edited_after", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\n'
                              'state = {k.removeprefix("module."): v for k, v in sd.items()}\ndel sd["module.fc.weight"]\n'
                              'model = Net(num_classes=1000)\nmodel.load_state_dict(state)\n'),
    # str.replace, every occurrence (the commonest spelling), alone or after a startswith filter
    ("replaced", 'sd = torch.load("runs/ddp.pth", weights_only=True)\n'
                 'sd = {k.replace("module.", ""): v for k, v in sd.items()}\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    ("replaced_inline", 'sd = torch.load("runs/ddp.pth", weights_only=True)\nmodel = Net()\n'
                        'model.load_state_dict({k.replace("module.", ""): v for k, v in sd.items()})\n'),
    ("replaced_mid_key", 'sd = torch.load("runs/net.pth", weights_only=True)\n'
                         'sd = {k.replace(".weight", ".w"): v for k, v in sd.items()}\nmodel = Net()\n'
                         'model.load_state_dict(sd)\n'),
    ("lightning_replace", 'ckpt = torch.load("runs/lightning.ckpt", weights_only=True)\n'
                          'sd = {k.replace("model.", ""): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}\n'
                          'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("cut", 'sd = torch.load("runs/ddp.pth", weights_only=True)\nsd = {k[7:]: v for k, v in sd.items()}\n'
            'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("cut_too_far", 'sd = torch.load("runs/ddp.pth", weights_only=True)\n'
                    'sd = {k[len("module.s"):]: v for k, v in sd.items()}\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    # the forum-famous loop that copies a state_dict under new keys
    ("copy_loop", 'from collections import OrderedDict\nsd = torch.load("runs/ddp.pth", weights_only=True)\n'
                  'new_state_dict = OrderedDict()\nfor k, v in sd.items():\n    name = k[7:]  # remove `module.`\n'
                  '    new_state_dict[name] = v\nmodel = Net()\nmodel.load_state_dict(new_state_dict)\n'),
    ("copy_loop_replace", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\nclean = {}\n'
                          'for key, value in sd.items():\n    clean[key.replace("module.", "")] = value\n'
                          'model = Net()\nmodel.load_state_dict(clean)\n'),
    # torch's own helper, in place
    ("consume_prefix", 'from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present\n'
                       'sd = torch.load("runs/ddp.pth", weights_only=True)\n'
                       'consume_prefix_in_state_dict_if_present(sd, "module.")\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    ("consume_prefix_wrong_size", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\n'
                                  'torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(sd, "module.")\n'
                                  'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("strip_if", 'sd = torch.load("runs/ddp.pth", weights_only=True)\n'
                 'sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}\n'
                 'model = Net()\nmodel.load_state_dict(sd)\n'),
    # the entry the file has, where the code tests for it: `if "k" in x:` and its other forms
    ("key_test", 'ckpt = torch.load("runs/lightning.ckpt", weights_only=True)\nif "state_dict" in ckpt:\n'
                 '    ckpt = ckpt["state_dict"]\n'
                 'sd = {k.removeprefix("model."): v for k, v in ckpt.items() if k.startswith("model.")}\n'
                 'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("key_test_absent", 'sd = torch.load("runs/net.pth", weights_only=True)\nif "model" in sd:\n    sd = sd["model"]\n'
                        'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("key_test_raises", 'sd = torch.load("runs/train.pth", weights_only=True)\nif "model" in sd.keys():\n'
                        '    sd = sd["model"]\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    ("key_test_else", 'ckpt = torch.load("runs/train.pth", weights_only=True)\n'
                      'if isinstance(ckpt, dict) and "state_dict" in ckpt:\n    sd = ckpt["state_dict"]\n'
                      'else:\n    sd = ckpt["model"]\nmodel = Net(num_classes=1000)\nmodel.load_state_dict(sd)\n'),
    ("key_test_elif", 'def load(path, model):\n    ckpt = torch.load(path, weights_only=True)\n'
                      '    if "state_dict" in ckpt:\n        sd = ckpt["state_dict"]\n    elif "model" in ckpt:\n'
                      '        sd = ckpt["model"]\n    else:\n        sd = ckpt\n    model.load_state_dict(sd)\n\n'
                      'load("runs/train.pth", Net())\n'),
    ("key_loop", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nfor key in ("state_dict", "model", "net"):\n'
                 '    if key in ckpt:\n        ckpt = ckpt[key]\n        break\n'
                 'model = Net(num_classes=1000)\nmodel.load_state_dict(ckpt)\n'),
    ("key_loop_nested", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nfor key in ["model", "state_dict"]:\n'
                        '    if key in ckpt:\n        ckpt = ckpt[key]\nmodel = Net(num_classes=1000)\nmodel.load_state_dict(ckpt)\n'),
    ("key_loop_other_name", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nsd = ckpt\n'
                            'for key in ("state_dict", "model"):\n    if key in ckpt:\n        sd = ckpt[key]\n        break\n'
                            'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("conditional_other_entry", 'ckpt = torch.load("runs/train.pth", weights_only=True)\n'
                                'sd = ckpt["state_dict"] if "state_dict" in ckpt else ckpt["model"]\n'
                                'model = Net(num_classes=1000)\nmodel.load_state_dict(sd)\n'),
    ("get_other_entry", 'ckpt = torch.load("runs/lightning.ckpt", weights_only=True)\n'
                        'sd = ckpt.get("model", ckpt.get("state_dict", ckpt))\nmodel = Net()\nmodel.load_state_dict(sd)\n'),
    # a model a class keeps on self, loaded in a method; a path passed to a method
    ("trainer", 'class Trainer:\n    def __init__(self, path):\n        self.model = Net(num_classes=1000)\n        self.path = path\n\n'
                '    def load(self, path):\n        ckpt = torch.load(path, weights_only=True)\n        self.model.load_state_dict(ckpt["model"])\n\n'
                't = Trainer("x")\nt.load("runs/train.pth")\n'),
    ("trainer_wrong", 'class Trainer:\n    def __init__(self):\n        self.model = Net()\n\n'
                '    def resume(self, path):\n        ckpt = torch.load(path, weights_only=True)\n        self.model.load_state_dict(ckpt["model"])\n\n'
                'Trainer().resume("runs/train.pth")\n'),
    ("trainer_literal", 'class Trainer:\n    def __init__(self):\n        self.model = Net(num_classes=1000)\n\n'
                '    def load(self):\n        ckpt = torch.load("runs/train.pth", weights_only=True)\n        self.model.load_state_dict(ckpt["model"])\n\n'
                't = Trainer()\nt.load()\n'),
    ("trainer_self_call", 'class Trainer:\n    def __init__(self):\n        self.model = Net(num_classes=1000)\n        self.load("runs/head1000.pth")\n\n'
                '    def load(self, path):\n        self.model.load_state_dict(torch.load(path, weights_only=True))\n\n'
                't = Trainer()\n'),
    ("method_param_path", 'class Trainer:\n    def load(self, path):\n        m = Net(num_classes=1000)\n        ckpt = torch.load(path, weights_only=True)\n        m.load_state_dict(ckpt["model"])\n\n'
                'Trainer().load("runs/train.pth")\n'),
    ("kept_prefix", 'sd = torch.load("runs/head1000.pth", weights_only=True)\n'
                    'stem = {k: v for k, v in sd.items() if k.startswith("stem.")}\n'
                    'model = Net()\nmodel.load_state_dict(stem, strict=False)\n'),
    # a lazy layer's tensors take the checkpoint's shapes, whatever the construction says
    ("lazy", 'model = LazyNet(n=5)\nmodel.load_state_dict(torch.load("runs/lazy16.pth", weights_only=True))\n'),
    ("filtered", 'sd = torch.load("runs/head1000.pth", weights_only=True)\n'
                 'kept = {k: v for k, v in sd.items() if k not in ("fc.weight", "fc.bias", "out.weight")}\n'
                 'model = Net()\nmodel.load_state_dict(kept, strict=False)\n'),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), CHECKED)
async def test_a_change_that_is_modelled_agrees_with_torch(
    client: LanguageClient, workspace: Path, name: str, body: str
) -> None:
    text, _, truth, claims = await _run(client, workspace, name, body)
    for line, claim in claims.items():
        check_against_torch(claim, truth[line])


UNCLEAR = [
    # the DeiT/MAE/timm fine-tune: keys from a loop, deleted under a condition
    ("deit", 'model = Net()\ncheckpoint = torch.load("runs/train.pth", weights_only=True)\n'
             'checkpoint_model = checkpoint["model"]\nstate_dict = model.state_dict()\n'
             'for k in ["fc.weight", "fc.bias", "out.weight"]:\n'
             '    if k in checkpoint_model and checkpoint_model[k].shape != state_dict[k].shape:\n'
             '        del checkpoint_model[k]\n'
             'model.load_state_dict(checkpoint_model, strict=False)\n'),
    ("conditional_del", 'import sys\nsd = torch.load("runs/head1000.pth", weights_only=True)\n'
                        'if sys.argv:\n    del sd["fc.weight"], sd["fc.bias"], sd["out.weight"]\n'
                        'model = Net()\nmodel.load_state_dict(sd, strict=False)\n'),
    ("stored_key", 'sd = torch.load("runs/head1000.pth", weights_only=True)\nsd["fc.weight"] = torch.zeros(10, 16)\n'
                   'sd.update({"fc.bias": torch.zeros(10), "out.weight": torch.zeros(2, 10)})\n'
                   'model = Net()\nmodel.load_state_dict(sd)\n'),
    ("helper", 'def fix(d):\n    for k in [k for k in d if k.startswith(("fc.", "out.w"))]:\n        d.pop(k)\n\n'
               'sd = torch.load("runs/head1000.pth", weights_only=True)\nfix(sd)\n'
               'model = Net()\nmodel.load_state_dict(sd, strict=False)\n'),
    # a renamed copy edited, or handed to code that may edit it
    ("renamed_edited", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\n'
                       'state = {k.removeprefix("module."): v for k, v in sd.items()}\n'
                       'for k in ["fc.weight", "fc.bias", "out.weight"]:\n    del state[k]\n'
                       'model = Net()\nmodel.load_state_dict(state, strict=False)\n'),
    ("renamed_passed", 'def fix(d):\n    for k in [k for k in d if k.startswith(("fc.", "out.w"))]:\n        d.pop(k)\n\n'
                       'sd = torch.load("runs/ddp1000.pth", weights_only=True)\n'
                       'state = {k.removeprefix("module."): v for k, v in sd.items()}\nfix(state)\n'
                       'model = Net()\nmodel.load_state_dict(state, strict=False)\n'),
    # a key loop that does more than look
    ("key_loop_more", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nfor key in ("state_dict", "model"):\n'
                      '    print(key)\n    if key in ckpt:\n        ckpt = ckpt[key]\n        break\n'
                      'model = Net(num_classes=1000)\nmodel.load_state_dict(ckpt)\n'),
    # a key test with another condition, or of another dict: which entry is not the file's choice
    ("key_test_and_more", 'import sys\nckpt = torch.load("runs/train.pth", weights_only=True)\n'
                          'if "model" in ckpt and len(sys.argv) > 5:\n    sd = ckpt["model"]\nelse:\n    sd = ckpt\n'
                          'model = Net(num_classes=1000)\nmodel.load_state_dict(sd, strict=False)\n'),
    ("key_test_other_dict", 'ckpt = torch.load("runs/train.pth", weights_only=True)\nother = {"model": 1}\n'
                            'sd = ckpt\nif "model" in other:\n    sd = ckpt["model"]\n'
                            'model = Net(num_classes=1000)\nmodel.load_state_dict(sd)\n'),
    # the dict consume_prefix_in_state_dict_if_present renamed in place, loaded by another name
    ("consume_prefix_alias", 'from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present\n'
                             'state = torch.load("runs/ddp.pth", weights_only=True)\nsd = state\n'
                             'consume_prefix_in_state_dict_if_present(sd, "module.")\nmodel = Net()\n'
                             'model.load_state_dict(state)\n'),
    # a model kept on self that something else changes
    ("trainer_changed", 'class Trainer:\n    def __init__(self):\n        self.model = Net()\n        self.model.fc = nn.Linear(16, 1000)\n        self.model.out = nn.Linear(1000, 2)\n\n'
                '    def load(self, path):\n        self.model.load_state_dict(torch.load(path, weights_only=True))\n\n'
                'Trainer().load("runs/head1000.pth")\n'),
    ("trainer_replaced", 'class Trainer:\n    def __init__(self):\n        self.model = Net()\n\n'
                '    def grow(self):\n        self.model = Net(num_classes=1000)\n\n'
                '    def load(self, path):\n        self.model.load_state_dict(torch.load(path, weights_only=True))\n\n'
                't = Trainer()\nt.grow()\nt.load("runs/head1000.pth")\n'),
    ("trainer_outside_store", 'class Trainer:\n    def __init__(self):\n        self.model = Net()\n\n'
                              '    def load(self, path):\n        self.model.load_state_dict(torch.load(path, weights_only=True))\n\n'
                              't = Trainer()\nt.model.fc = nn.Linear(16, 1000)\nt.model.out = nn.Linear(1000, 2)\n'
                              't.load("runs/head1000.pth")\n'),
    # a copy loop that does more than copy
    ("copy_loop_filtered", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\nclean = {}\n'
                           'for k, v in sd.items():\n    if not k.startswith(("module.fc", "module.out.w")):\n'
                           '        clean[k[7:]] = v\nmodel = Net()\nmodel.load_state_dict(clean, strict=False)\n'),
    ("copy_loop_not_empty", 'sd = torch.load("runs/ddp1000.pth", weights_only=True)\nclean = Net().state_dict()\n'
                            'for k, v in sd.items():\n    clean[k[7:]] = v\n'
                            'for k in ["fc.weight", "fc.bias", "out.weight"]:\n    clean.pop(k)\n'
                            'model = Net()\nmodel.load_state_dict(clean, strict=False)\n'),
    # stores the evaluator cannot replay
    ("not_evaluable", 'model = Net(num_classes=1000)\nmodel.fc = torch.load("runs/head.pt", weights_only=False)\n'
                      'model.out = nn.Linear(10, 2)\nmodel.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    ("setattr", 'model = Net(num_classes=1000)\nsetattr(model, "fc", nn.Linear(16, 10))\nmodel.out = nn.Linear(10, 2)\n'
                'model.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
    ("branch", 'import sys\nmodel = Net(num_classes=1000)\nif sys.argv:\n    model.fc = nn.Linear(16, 10)\n'
               '    model.out = nn.Linear(10, 2)\nmodel.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'),
]  # fmt: skip


@pytest.mark.parametrize(("name", "body"), UNCLEAR)
async def test_a_change_that_is_not_clear_gets_nothing(
    client: LanguageClient, workspace: Path, name: str, body: str
) -> None:
    """Torch loads each of these; a check of the file against the class alone would say it
    raises. Nothing is said instead."""
    text, _, truth, claims = await _run(client, workspace, name, body)
    for line, (message, shown) in claims.items():
        assert not truth[line]["raises"], truth[line]  # the scripts are right
        assert message is None, message
        assert shown is None, shown


async def test_hovers_after_a_replaced_head_show_the_new_one(client: LanguageClient, workspace: Path) -> None:
    """After `model.fc = nn.Linear(...)` the hovers on `model.fc` are about the new head (the
    file saved from it), not the one the earlier load filled."""
    body = ('model = Net(num_classes=1000)\nmodel.load_state_dict(torch.load("runs/head1000.pth", weights_only=True))\n'
            'old = model.fc.weight.shape\nmodel.fc = nn.Linear(model.fc.in_features, 5)\n'
            'new = model.fc.weight.shape\ncount = sum(p.numel() for p in model.fc.parameters())\n'
            'torch.save(model.state_dict(), "runs/saved_tuned.pth")\n')  # fmt: skip
    text = HEAD + body + CONTROL
    path = workspace / "hovers.py"
    path.write_text(text)
    with contextlib.chdir(workspace):
        ran = runpy.run_path(str(path), run_name="__main__")
    uri = open_document(client, path, text)
    await server_claims(client, uri, text)

    async def shown(needle: str, occurrence: int = 0) -> str:
        for _ in range(100):
            found = await hover_text(client, uri, utf16_position(text, needle, 1, occurrence))
            if found is not None:
                return found.replace("\\", "")
            await asyncio.sleep(0.05)
        raise AssertionError(f"no hover on {needle}")

    assert f"Tensor[{', '.join(map(str, ran['old']))}]" in await shown("weight.shape")
    assert f"Tensor[{', '.join(map(str, ran['new']))}]" in await shown("weight.shape", 1)
    assert f"| {ran['count']:,} |" in await shown("fc.parameters")
    assert f"| {ran['count']:,} |" in await shown("fc = nn")  # the stored attribute: the new head


async def test_a_key_read_under_a_test_for_it_is_not_a_missing_key(client: LanguageClient, workspace: Path) -> None:
    """`sd["model"]` under `if "model" in sd:` (or in `sd["model"] if "model" in sd else ...`)
    cannot fail on a file without it; a read of a missing key after the test still can (PTH006)."""
    body = ('sd = torch.load("runs/net.pth", weights_only=True)\nif "model" in sd:\n    sd = sd["model"]\n'
            'head = sd["state_dict"] if "state_dict" in sd else sd\nbad = sd["fc.weights"]\n')
    text = HEAD + body + CONTROL
    path = workspace / "guarded.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    await server_claims(client, uri, text)
    missing = [d for d in client.published[uri][-1].diagnostics if d.code == "PTH006"]  # type: ignore[attr-defined]
    assert [text.splitlines()[d.range.start.line] for d in missing] == ['bad = sd["fc.weights"]'], missing


SIZES_NOT_KNOWN = [
    # argparse: its value is what the command line says
    ("sizes_argparse", 'import argparse\nparser = argparse.ArgumentParser()\n'
                       'parser.add_argument("--num-classes", type=int, default=10)\nargs = parser.parse_args([])\n'
                       'model = Net(num_classes=args.num_classes)\n'
                       'model.load_state_dict(torch.load("runs/head1000.pth", weights_only=True))\n'),
    # a function's parameter, whether the call passes what the file needs or not
    ("sizes_parameter", 'def main(num_classes):\n    model = Net(num_classes=num_classes)\n'
                        '    model.load_state_dict(torch.load("runs/head1000.pth", weights_only=True))\n\n\n'
                        'main(10)\n'),
    ("sizes_parameter_loads", 'def main(num_classes):\n    model = Net(num_classes=num_classes)\n'
                              '    model.load_state_dict(torch.load("runs/head1000.pth", weights_only=True))\n\n\n'
                              'main(1000)\n'),
    # strict=False does not skip a size mismatch
    ("sizes_not_strict", 'import json\ncfg = json.loads(\'{"num_classes": 10}\')\nmodel = Net(num_classes=cfg["num_classes"])\n'
                         'model.load_state_dict(torch.load("runs/head1000.pth", weights_only=True), strict=False)\n'),
]


@pytest.mark.parametrize(("name", "body"), SIZES_NOT_KNOWN)
async def test_a_size_not_known_here_is_no_match(client: LanguageClient, workspace: Path, name: str, body: str) -> None:
    """`Net(num_classes=args.num_classes)`: the head's tensors fit the file only where the size is
    not known, so they are not counted as matches, and nothing is claimed either way (torch raises
    for some of these scripts and loads for others)."""
    text, _, truth, claims = await _run(client, workspace, name, body)
    [(line, (message, shown))] = claims.items()
    assert message is None, message
    assert shown is not None and "7/10 tensors match; 3 with sizes not known here" in shown, shown
    assert "Not known here: the size of fc.weight, [?, 16] here and [1000, 16] in the file" in shown, shown
    assert truth[line]["raises"] == (name != "sizes_parameter_loads")  # the scripts are right


@pytest.mark.parametrize(("file", "raises"), [("norm_old.pth", False), ("norm_v2.pth", True)])
async def test_num_batches_tracked_left_out_is_named(client: LanguageClient, workspace: Path, file: str,
                                                     raises: bool) -> None:
    """A state_dict without BatchNorm's num_batches_tracked: torch fills it in only when the dict
    kept no version metadata, which the server does not see, so the hover names it and no error
    is claimed."""
    body = f'model = NormNet()\nmodel.load_state_dict(torch.load("runs/{file}", weights_only=True))\n'
    text, _, truth, claims = await _run(client, workspace, file.replace(".", "_"), body)
    [(line, (message, shown))] = claims.items()
    assert truth[line]["raises"] is raises
    assert message is None, message
    assert shown is not None and (
        "6/7 tensors match; 1 num_batches_tracked missing (torch fills them in if the file kept no state_dict "
        "version metadata)") in shown, shown

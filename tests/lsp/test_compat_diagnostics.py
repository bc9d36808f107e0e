"""PTH008 over stdio: will the linked checkpoint load into the model built in the script?

A workspace holds a model module (`compat_models.py`) and checkpoints saved in the test run by
torch from that very module's classes: the common failure causes (a DataParallel `module.`
prefix, torch.compile's `_orig_mod.`, a Lightning-style `model.` prefix under `state_dict`, a
training dict, an optimizer's state_dict, a head for another number of classes, a wider and a
deeper config, `strict=False` loading nothing) and a clean match. Each diagnostic's counts are
compared with what torch's own `load_state_dict` reports for the same pair; the prefix, wrapper
and argument fixes are applied through codeAction/resolve, the diagnostic goes away, and the
fixed script is run with torch in a subprocess. A model whose part is not known statically
gets no diagnostic, and neither does a model changed between its construction and the load.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import pytest_lsp
import torch
from lsprotocol import types
from pytest_lsp import LanguageClient

from .code_intel import (
    PYTHON_SERVER,
    apply_lsp_edits,
    change_document,
    code_actions,
    hover_text,
    initialize,
    open_document,
    published,
    text_edits,
    utf16_position,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODELS = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes=10, hidden=16, depth=2):
        super().__init__()
        self.stem = nn.Conv2d(3, hidden, 3, padding=1)
        self.bn = nn.BatchNorm2d(hidden)
        self.blocks = nn.Sequential(*[nn.Linear(hidden, hidden) for _ in range(depth)])
        self.fc = nn.Linear(hidden, num_classes)


class Configured(nn.Module):
    """Its body is built from layers only known when it runs."""

    def __init__(self, layers):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.body = nn.Sequential(*layers)
'''

SCRIPT = """\
import torch
from compat_models import Net

model = Net({args})
sd = torch.load("runs/{file}", weights_only=True)
model.load_state_dict(sd{strict})
"""


def _load_models(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_models", root / "compat_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compat_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compat")
    (root / "compat_models.py").write_text(MODELS)
    models = _load_models(root)
    runs = root / "runs"
    runs.mkdir()
    torch.manual_seed(0)
    net = models.Net()
    sd = net.state_dict()
    torch.save(sd, runs / "net.pth")
    torch.save(torch.nn.DataParallel(net).state_dict(), runs / "dp.pth")
    torch.save(torch.compile(net).state_dict(), runs / "compiled.pth")
    torch.save({"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 4,
                "global_step": 40, "pytorch-lightning_version": "2.4.0"}, runs / "lightning.ckpt")  # fmt: skip
    # A LightningModule with a weighted loss: `loss_fn.weight` is in its state_dict, outside `model.`.
    torch.save({"state_dict": {**{"model." + k: v for k, v in sd.items()}, "loss_fn.weight": torch.ones(10)},
                "epoch": 4}, runs / "lightning_loss.ckpt")  # fmt: skip
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    torch.save({"epoch": 3, "model_state_dict": net.state_dict(), "optimizer_state_dict": optimizer.state_dict()},
               runs / "train.pth")  # fmt: skip
    torch.save(optimizer.state_dict(), runs / "optimizer.pth")
    torch.save(models.Net(num_classes=1000).state_dict(), runs / "head1000.pth")
    torch.save({"state_dict": sd, "model_ema": sd, "epoch": 1,
                "hyper_parameters": {"lr": 0.1, "num_classes": 10}}, runs / "ema.ckpt")  # fmt: skip
    torch.save(models.Net(hidden=32).state_dict(), runs / "wide.pth")
    torch.save(models.Net(depth=4).state_dict(), runs / "deep.pth")
    configured = models.Configured([torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)])
    torch.save(configured.state_dict(), runs / "configured.pth")
    return root


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def client(lsp_client: LanguageClient, compat_workspace: Path):
    await initialize(lsp_client, compat_workspace)
    yield
    await lsp_client.shutdown_session()


def torch_report(root: Path, args: str, file: str) -> tuple[int, int, int]:
    """(missing, unexpected, size mismatches) as torch's strict load_state_dict reports them."""
    models = _load_models(root)
    model = eval(f"models.Net({args})", {"models": models})  # our own test text
    return strict_load_counts(model, root / "runs" / file)


def strict_load_counts(model: torch.nn.Module, file: Path) -> tuple[int, int, int]:
    """(missing, unexpected, size mismatches) of `model.load_state_dict(<file>)`, from torch's error."""
    state = torch.load(file, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        return torch_error_counts(str(error))
    return 0, 0, 0


def torch_error_counts(text: str) -> tuple[int, int, int]:
    """(missing, unexpected, size mismatches) that torch's load_state_dict error lists."""
    missing = re.search(r"Missing key\(s\) in state_dict: (.*?)\.\s*(?:Unexpected|size|$)", text, re.S)
    unexpected = re.search(r"Unexpected key\(s\) in state_dict: (.*?)\.\s*(?:size|$)", text, re.S)
    return (missing.group(1).count('"') // 2 if missing else 0,
            unexpected.group(1).count('"') // 2 if unexpected else 0,
            text.count("size mismatch for"))  # fmt: skip


def our_counts(message: str) -> tuple[int, int, int]:
    def count(word: str) -> int:
        found = re.search(rf"(\d+) {word}", message)
        return int(found.group(1)) if found else 0

    return count("missing"), count("unexpected"), count("shape mismatch")


async def _settled(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    """The diagnostics once the linked checkpoint is read (the hover waits for the read)."""
    await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0)))
    for _ in range(100):
        found = client.published.get(uri, [])  # type: ignore[attr-defined]
        if found and any(d.code == "PTH008" for d in found[-1].diagnostics):
            return [d for d in found[-1].diagnostics if d.code == "PTH008"]
        await _sleep()
    found = client.published.get(uri, [])  # type: ignore[attr-defined]
    return [d for d in found[-1].diagnostics if d.code == "PTH008"] if found else []


async def load_hover(client: LanguageClient, uri: str, text: str) -> str | None:
    """The hover on `load_state_dict`: it says nothing until the comparison is made (in the
    analysis thread, after the linked file is read), so ask again until it does."""
    for _ in range(100):
        shown = await hover_text(client, uri, utf16_position(text, "load_state_dict", 3))
        if shown is not None:
            return shown
        await _sleep()
    return None


async def _sleep() -> None:
    await asyncio.sleep(0.05)


CASES = [
    # name, constructor args, file, strict, severity, words in the message
    ("dp", "", "dp.pth", "", "error", ["'module.'", "DataParallel"]),
    ("compiled", "", "compiled.pth", "", "error", ["'_orig_mod.'", "torch.compile"]),
    ("lightning", "", "lightning.ckpt", "", "error", ["checkpoint['state_dict']", "'model.'"]),
    ("train", "", "train.pth", "", "error", ["checkpoint['model_state_dict']"]),
    ("optimizer", "", "optimizer.pth", "", "error", ["optimizer's state_dict"]),
    ("head", "num_classes=10", "head1000.pth", "", "error",
     ["fc = nn.Linear(hidden, num_classes)", "fc.weight is [1000, 16]", "num_classes=10 here"]),
    ("wide", "hidden=16", "wide.pth", "", "error", ["hidden=16 here", "hidden=32"]),
    ("deep", "depth=2", "deep.pth", "", "error", ["4 blocks", "depth=2"]),
    ("lenient", "", "dp.pth", ", strict=False", "warning", ["none of the model's 13 tensors would load", "'module.'"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "file", "strict", "severity", "words"), CASES)
async def test_a_checkpoint_that_does_not_load(
    client: LanguageClient, compat_workspace: Path, name: str, args: str, file: str, strict: str,
    severity: str, words: list[str],
) -> None:  # fmt: skip
    text = SCRIPT.format(args=args, file=file, strict=strict)
    path = compat_workspace / f"load_{name}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    found = await _settled(client, uri)
    assert len(found) == 1, found
    diagnostic = found[0]
    assert diagnostic.severity == getattr(types.DiagnosticSeverity, severity.capitalize())
    assert diagnostic.range.start == utf16_position(text, "load_state_dict")
    assert "\n" not in diagnostic.message
    for word in words:
        assert word in diagnostic.message, diagnostic.message
    assert diagnostic.related_information
    if strict:
        return
    assert our_counts(diagnostic.message) == torch_report(compat_workspace, args, file), diagnostic.message


async def test_related_information_points_at_the_layer_and_the_argument(
    client: LanguageClient, compat_workspace: Path
) -> None:
    text = SCRIPT.format(args="num_classes=10", file="head1000.pth", strict="")
    path = compat_workspace / "load_head_related.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    (diagnostic,) = await _settled(client, uri)
    related = diagnostic.related_information or []
    models_uri = (compat_workspace / "compat_models.py").as_uri()
    layer = next(r for r in related if r.location.uri == models_uri)
    assert layer.location.range.start.line == MODELS.splitlines().index(
        "        self.fc = nn.Linear(hidden, num_classes)")
    argument = next(r for r in related if r.location.uri == uri and "implies num_classes=1000" in r.message)
    assert argument.location.range.start == utf16_position(text, "10)")


@pytest.mark.parametrize(("args", "file"), [("", "net.pth"), ("num_classes=1000", "head1000.pth"),
                                            ("depth=4", "deep.pth"), ("hidden=32", "wide.pth")])  # fmt: skip
async def test_a_clean_match_has_no_diagnostic(
    client: LanguageClient, compat_workspace: Path, args: str, file: str
) -> None:
    text = SCRIPT.format(args=args, file=file, strict="")
    path = compat_workspace / f"clean_{file.replace('.', '_')}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    shown = await load_hover(client, uri, text)
    assert shown is not None and re.search(r"\b(\d+)/\1 tensors match$", shown.replace("\\", ""), re.M)
    assert not [d for d in (await published(client, uri)).diagnostics if d.code == "PTH008"]
    assert not [d for d in client.published[uri][-1].diagnostics if d.code == "PTH008"]  # type: ignore[attr-defined]


async def test_an_unknown_part_and_a_changed_model_give_no_false_alarm(
    client: LanguageClient, compat_workspace: Path
) -> None:
    unknown = """\
import json
import torch
from compat_models import Configured

layers = build(json.load(open("layers.json")))
model = Configured(layers)
model.load_state_dict(torch.load("runs/configured.pth", weights_only=True))
"""
    changed = SCRIPT.format(args="num_classes=1000", file="net.pth", strict="").replace(
        "sd = torch", "setattr(model, \"fc\", torch.nn.Linear(16, 10))\nsd = torch")
    for name, text in (("unknown_part", unknown), ("changed_model", changed)):
        path = compat_workspace / f"{name}.py"
        path.write_text(text)
        uri = open_document(client, path, text)
        if name == "unknown_part":
            shown = await load_hover(client, uri, text)
            assert shown is not None and "Not known here: body" in shown.replace("\\", "")
        else:
            await published(client, uri)
            assert await hover_text(client, uri, utf16_position(text, "load_state_dict", 3)) is None
        assert not [d for d in client.published[uri][-1].diagnostics if d.code == "PTH008"]  # type: ignore[attr-defined]


async def test_the_hover_says_what_is_wrong(client: LanguageClient, compat_workspace: Path) -> None:
    text = SCRIPT.format(args="", file="dp.pth", strict="")
    path = compat_workspace / "hover_dp.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    shown = (await load_hover(client, uri, text)) or ""
    plain = shown.replace("\\", "")
    assert "dp.pth → Net: 0/13 tensors match; 12 missing, 13 unexpected" in plain
    assert "Every key starts with 'module.'" in plain
    assert "[Open in pthscope](command:pthscope.openCheckpoint?" in shown


FIXES = [
    ("dp", "", "dp.pth", "Strip the 'module.' prefix"),
    ("compiled", "", "compiled.pth", "Strip the '_orig_mod.' prefix"),
    ("lightning", "", "lightning.ckpt", "Load ['state_dict'], strip the 'model.' prefix"),
    ("train", "", "train.pth", "Load ['model_state_dict']"),
    ("head", "num_classes=10", "head1000.pth", "Construct the model with num_classes=1000"),
    # num_classes left at Net's default: the fix adds the keyword
    ("head_default", "", "head1000.pth", "Construct the model with num_classes=1000"),
    ("head_default_more", "hidden=16", "head1000.pth", "Construct the model with num_classes=1000"),
    ("wide", "hidden=16", "wide.pth", "Construct the model with hidden=32"),
    ("deep", "depth=2", "deep.pth", "Construct the model with depth=4"),
]


@pytest.mark.parametrize(("name", "args", "file", "title"), FIXES)
async def test_a_fix_makes_it_load(
    client: LanguageClient, compat_workspace: Path, name: str, args: str, file: str, title: str
) -> None:
    text = SCRIPT.format(args=args, file=file, strict="")
    path = compat_workspace / f"fix_{name}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    assert await _settled(client, uri)
    line = utf16_position(text, "load_state_dict").line
    offered = await code_actions(client, uri, line)
    action = next(a for a in offered if a.title.startswith(title))
    assert action.is_preferred
    # One preferred fix per finding; the fine-tuning one (a choice) never is.
    assert len([a for a in offered if a.is_preferred]) == 1, [(a.title, a.is_preferred) for a in offered]
    resolved = await client.code_action_resolve_async(action)
    fixed = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    assert fixed != text
    if name.startswith("head_default"):
        assert f"model = Net({args + ', ' if args else ''}num_classes=1000)" in fixed, fixed
    change_document(client, uri, 2, fixed)
    after = await published(client, uri, lambda p: p.version == 2)
    assert not [d for d in after.diagnostics if d.code == "PTH008"], after.diagnostics
    shown = (await load_hover(client, uri, fixed)) or ""
    assert re.search(r"\b(\d+)/\1 tensors match$", shown.replace("\\", ""), re.M), shown
    # Offered again on the fixed text? Nothing to fix: the entry is gone.
    assert not [a for a in await code_actions(client, uri, line) if a.title.startswith(title)]
    path.write_text(fixed)
    run = subprocess.run([sys.executable, str(path)], cwd=compat_workspace, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr


async def test_the_prefix_fix_leaves_out_the_keys_outside_the_prefix(
    client: LanguageClient, compat_workspace: Path
) -> None:
    """62 of 63 keys under 'model.' and a loss's weight: stripping the prefix alone would leave
    `loss_fn.weight` unexpected; the fix keeps only the keys under the prefix and says so."""
    text = SCRIPT.format(args="", file="lightning_loss.ckpt", strict="")
    path = compat_workspace / "fix_lightning_loss.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    found = [d for d in await _settled(client, uri) if d.code == "PTH008"]
    assert len(found) == 1 and "13 of 14 keys there start with 'model.'" in found[0].message, found
    assert "keeping only those, stripped, 13 of 13 tensors match" in found[0].message, found[0].message
    line = utf16_position(text, "load_state_dict").line
    offered = await code_actions(client, uri, line)
    title = "Load ['state_dict'], strip the 'model.' prefix, leaving out the 1 key outside it"
    action = next(a for a in offered if a.title == title)
    assert action.is_preferred
    resolved = await client.code_action_resolve_async(action)
    fixed = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    assert ('model.load_state_dict({k.removeprefix("model."): v for k, v in sd["state_dict"].items() '
            'if k.startswith("model.")})') in fixed, fixed
    change_document(client, uri, 2, fixed)
    after = await published(client, uri, lambda p: p.version == 2)
    assert not [d for d in after.diagnostics if d.code == "PTH008"], after.diagnostics
    shown = ((await load_hover(client, uri, fixed)) or "").replace("\\", "")
    assert "13/13 tensors match" in shown, shown
    # torch agrees: the fixed script loads (strict) and has the checkpoint's weights.
    path.write_text(fixed + 'print(torch.equal(model.fc.weight, sd["state_dict"]["model.fc.weight"]))\n')
    run = subprocess.run([sys.executable, str(path)], cwd=compat_workspace, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True", run.stdout


@pytest.mark.parametrize("strict", ["", ", strict=True", ", strict=False"])
async def test_the_fine_tuning_fix_leaves_out_the_changed_head(
    client: LanguageClient, compat_workspace: Path, strict: str
) -> None:
    """A head changed on purpose (num_classes=10 on a 1,000-class checkpoint): the fix drops the
    mismatched keys, loads with strict=False and asserts that exactly those are missing."""
    text = SCRIPT.format(args="num_classes=10", file="head1000.pth", strict=strict)
    if strict == ", strict=True":
        text = text.replace('"', "'")  # the fix follows the file's quotes
    path = compat_workspace / f"finetune{strict.count('True')}{strict.count('False')}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    assert await _settled(client, uri)
    line = utf16_position(text, "load_state_dict").line
    offered = await code_actions(client, uri, line)
    action = next(a for a in offered if a.title.startswith("Fine-tune fc: load without fc.weight, fc.bias"))
    assert not action.is_preferred  # constructing with num_classes=1000 comes first
    resolved = await client.code_action_resolve_async(action)
    fixed = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    q = "'" if strict == ", strict=True" else '"'
    assert (f"missing, unexpected = model.load_state_dict({{k: v for k, v in sd.items() if k not in "
            f"({q}fc.weight{q}, {q}fc.bias{q})}}, strict=False)\n"
            f"assert set(missing) == {{{q}fc.bias{q}, {q}fc.weight{q}}} and not unexpected, "
            f"(missing, unexpected)\n") in fixed, fixed  # fmt: skip
    change_document(client, uri, 2, fixed)
    after = await published(client, uri, lambda p: p.version == 2)
    assert not [d for d in after.diagnostics if d.code == "PTH008"], after.diagnostics
    shown = ((await load_hover(client, uri, fixed)) or "").replace("\\", "")
    assert "11/13 tensors match; 2 missing" in shown and "Left out on purpose (trained here): fc.weight" in shown
    assert not [a for a in await code_actions(client, uri, line) if a.title.startswith("Fine-tune")]
    # Run it: torch loads everything but the head, and says exactly the head is missing.
    path.write_text(fixed + 'print(sorted(missing), list(unexpected))\n'
                    'print(torch.equal(model.stem.weight, sd["stem.weight"]), model.fc.weight.shape[0])\n')  # fmt: skip
    run = subprocess.run([sys.executable, str(path)], cwd=compat_workspace, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["['fc.bias', 'fc.weight'] []", "True 10"], run.stdout


async def test_a_checkpoint_saved_again_is_checked_again(client: LanguageClient, compat_workspace: Path) -> None:
    """A training run saves the file again: with the same structure, the view already read is
    kept (and what was derived from it); with another structure, the check is made anew."""
    file = compat_workspace / "runs" / "resaved.pth"
    dp = torch.load(compat_workspace / "runs" / "dp.pth", weights_only=True)
    torch.save(dp, file)
    text = SCRIPT.format(args="", file="resaved.pth", strict="")
    path = compat_workspace / "resaved.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    (first,) = await _settled(client, uri)
    assert "'module.'" in first.message

    def views(how: str) -> int:
        return sum(f"view of {file}: {how} in " in m.message for m in client.log_messages)

    async def reread(state: dict[str, torch.Tensor], stamp: int) -> None:
        count = len(client.published[uri])  # type: ignore[attr-defined]
        torch.save(state, file)
        os.utime(file, ns=(stamp, stamp))
        for _ in range(200):  # a hover asks for the file again: read if it changed on disk
            await hover_text(client, uri, utf16_position(text, '"runs/', 1))
            if len(client.published[uri]) > count:  # type: ignore[attr-defined]
                return
            await _sleep()
        raise AssertionError("not published again")

    stamp = file.stat().st_mtime_ns
    same_before = views("the same as before")
    for value in dp.values():  # another epoch: new values, the same structure (and _metadata)
        value.add_(1)
    await reread(dp, stamp + 10**9)
    assert views("the same as before") == same_before + 1
    (again,) = [d for d in client.published[uri][-1].diagnostics if d.code == "PTH008"]  # type: ignore[attr-defined]
    assert again.message == first.message
    decoded = views("decoded")
    await reread(torch.load(compat_workspace / "runs" / "net.pth", weights_only=True), stamp + 2 * 10**9)
    assert views("decoded") == decoded + 1
    assert not [d for d in client.published[uri][-1].diagnostics if d.code == "PTH008"]  # type: ignore[attr-defined]


KEYS_SCRIPT = """\
import torch

ckpt = torch.load("runs/ema.ckpt", weights_only=True)
a = ckpt["hparams"]
b = ckpt["state_dict_ema"]
"""


async def test_a_missing_keys_fixes_are_keys_of_its_level(client: LanguageClient, compat_workspace: Path) -> None:
    """PTH006's closest keys are keys of the dict read (not `hyper_parameters.lr`, a key of a
    dict under it), found by a shared word part too (`model_ema` for `state_dict_ema`), and
    each "Use" fix runs with torch."""
    path = compat_workspace / "keys.py"
    path.write_text(KEYS_SCRIPT)
    uri = open_document(client, path, KEYS_SCRIPT)
    found = await published(client, uri, lambda p: len([d for d in p.diagnostics if d.code == "PTH006"]) == 2)
    messages = {d.range.start.line: d.message for d in found.diagnostics if d.code == "PTH006"}
    hparams, ema = utf16_position(KEYS_SCRIPT, '"hparams"').line, utf16_position(KEYS_SCRIPT, '"state_dict_ema"').line
    assert messages[hparams].endswith("closest: 'hyper_parameters'"), messages[hparams]
    assert "'model_ema'" in messages[ema], messages[ema]
    for line in (hparams, ema):
        fixes = [a for a in await code_actions(client, uri, line) if a.title.startswith("Use ")]
        assert fixes and fixes[0].is_preferred and len([a for a in fixes if a.is_preferred]) == 1
        for action in fixes:
            resolved = await client.code_action_resolve_async(action)
            fixed = apply_lsp_edits(KEYS_SCRIPT, text_edits(resolved.edit, uri)).splitlines()
            path.write_text("\n".join([*fixed[:3], fixed[line]]) + "\n")  # the load and the fixed line
            run = subprocess.run([sys.executable, str(path)], cwd=compat_workspace, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
            assert run.returncode == 0, (action.title, run.stderr)

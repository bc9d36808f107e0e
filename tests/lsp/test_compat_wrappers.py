"""PTH008 over stdio for wrapped and copied models, each claim checked against torch.

A DataParallel / DistributedDataParallel wrapper's state_dict is its model's under `module.`,
torch.compile's under `_orig_mod.`; `wrapper.module` (`compiled._orig_mod`) is the model
itself, and `model.compile()` in place changes no key. Each script below is run with torch in
the test (its load raises or not, and with which counts), and the server must say the same:
an error with torch's counts, or "n/n tensors match" and no diagnostic. A wrapper whose keys
cannot be told (applied on one branch only, or not torch's) gets nothing. The prefix fix is
applied and the fixed script loads. A `copy.deepcopy` is a model of its own: loads into it are
not reported on the original's construction, and the original's not on the copy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
from .test_compat_diagnostics import (
    MODELS,
    _load_models,
    _settled,
    load_hover,
    our_counts,
    torch_error_counts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def wrap_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compat_wrappers")
    (root / "compat_models.py").write_text(MODELS)
    (root / "helpers.py").write_text("def DataParallel(model):\n    return model\n")
    models = _load_models(root)
    runs = root / "runs"
    runs.mkdir()
    torch.manual_seed(0)
    net = models.Net()
    torch.save(net.state_dict(), runs / "net.pth")
    torch.save(torch.nn.DataParallel(net).state_dict(), runs / "dp.pth")
    torch.save(torch.compile(net).state_dict(), runs / "compiled.pth")
    return root


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def client(lsp_client: LanguageClient, wrap_workspace: Path):
    await initialize(lsp_client, wrap_workspace)
    yield
    await lsp_client.shutdown_session()


@contextlib.contextmanager
def _in(root: Path) -> Iterator[None]:
    before, module = os.getcwd(), sys.modules.get("compat_models")
    os.chdir(root)
    sys.modules["compat_models"] = _load_models(root)
    try:
        yield
    finally:
        os.chdir(before)
        if module is not None:
            sys.modules["compat_models"] = module
        else:
            sys.modules.pop("compat_models", None)


# A script with a process group (DDP) runs in a child: a gloo group in the test process once
# hung the suite. The child prints the RuntimeError its load raised, as JSON, or null.
_TRUTH = (
    "import json, sys\n"
    "try:\n"
    "    exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'), {'__name__': '__main__'})\n"
    "except RuntimeError as error:\n"
    "    print(json.dumps(str(error)))\n"
    "else:\n"
    "    print('null')\n"
)


def torch_says(root: Path, text: str) -> tuple[int, int, int] | None:
    """Run the script with torch: None when its load_state_dict loads, else (missing,
    unexpected, size mismatches) from the error torch raises."""
    message = _in_child(root, text) if "init_process_group" in text else _in_process(root, text)
    if message is None:
        return None
    assert "Error(s) in loading state_dict" in message, message
    return torch_error_counts(message)


def _in_process(root: Path, text: str) -> str | None:
    with _in(root):
        try:
            exec(compile(text, str(root / "script.py"), "exec"), {"__name__": "__main__"})
        except RuntimeError as error:
            return str(error)
    return None


def _in_child(root: Path, text: str) -> str | None:
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=root, delete=False) as f:
        f.write(text)
    try:
        run = subprocess.run([sys.executable, "-c", _TRUTH, f.name], cwd=root, capture_output=True, text=True,
                             timeout=120, check=True)  # fmt: skip
    finally:
        os.unlink(f.name)
    message: str | None = json.loads(run.stdout.strip().splitlines()[-1])
    return message


def script(build: str, receiver: str, file: str) -> str:
    return (f"import copy\nimport torch\nimport torch.nn as nn\nfrom compat_models import Net\n\n{build}\n"
            f'sd = torch.load("runs/{file}", weights_only=True)\n{receiver}.load_state_dict(sd)\n')  # fmt: skip


# DistributedDataParallel needs a process group: one process on CPU (gloo).
DDP = ("import tempfile\nimport torch.distributed as dist\n"
       "from torch.nn.parallel import DistributedDataParallel as DDP\n"
       'dist.init_process_group("gloo", init_method="file://" + tempfile.mktemp(), rank=0, world_size=1)\n')
WRAPPED = [
    # name, the lines building the model, the receiver of load_state_dict, the file
    ("dp_plain", "model = nn.DataParallel(Net())", "model", "net.pth"),
    ("dp_dp", "model = nn.DataParallel(Net())", "model", "dp.pth"),
    ("dp_later", "model = Net()\nmodel = torch.nn.DataParallel(model)", "model", "dp.pth"),
    ("dp_from", "from torch.nn import DataParallel as DP\nmodel = DP(Net())", "model", "net.pth"),
    ("dp_inner", "model = nn.DataParallel(Net())", "model.module", "net.pth"),
    ("dp_inner_dp", "model = nn.DataParallel(Net())", "model.module", "dp.pth"),
    ("unwrapped", "dp = nn.DataParallel(Net())\nmodel = dp.module", "model", "net.pth"),
    ("compiled_plain", "model = torch.compile(Net())", "model", "net.pth"),
    ("compiled", "net = Net()\nmodel = torch.compile(net)", "model", "compiled.pth"),
    ("compiled_inner", "model = torch.compile(Net())", "model._orig_mod", "net.pth"),
    ("compiled_in_place", "model = Net()\nmodel.compile()", "model", "net.pth"),
    ("compiled_in_place_prefixed", "model = Net()\nmodel.compile()", "model", "compiled.pth"),
    ("dp_compiled", "model = nn.DataParallel(torch.compile(Net()))", "model", "compiled.pth"),
    ("ddp_plain", DDP + "model = DDP(Net())", "model", "net.pth"),
    ("ddp_dp", DDP + "model = DDP(Net())", "model", "dp.pth"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "receiver", "file"), WRAPPED)
async def test_a_wrapped_model_is_checked_as_torch_loads_it(
    client: LanguageClient, wrap_workspace: Path, name: str, build: str, receiver: str, file: str
) -> None:
    text = script(build, receiver, file)
    truth = torch_says(wrap_workspace, text)
    path = wrap_workspace / f"wrapped_{name}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    shown = ((await load_hover(client, uri, text)) or "").replace("\\", "")
    found = await _settled(client, uri)
    if truth is None:
        assert not found, found
        assert re.search(r"\b(\d+)/\1 tensors match$", shown, re.M), shown
    else:
        assert len(found) == 1 and found[0].severity == types.DiagnosticSeverity.Error, found
        assert our_counts(found[0].message) == truth, (found[0].message, truth)
        assert not re.search(r"\b(\d+)/\1 tensors match$", shown, re.M), shown


UNKNOWN = [
    ("one_branch", "model = Net()\nif torch.cuda.device_count() > 1:\n    model = nn.DataParallel(model)"),
    ("not_torchs", "from helpers import DataParallel\nmodel = DataParallel(Net())"),
    ("shallow", "net = Net()\nmodel = copy.copy(net)"),
]


@pytest.mark.parametrize(("name", "build"), UNKNOWN)
async def test_a_wrapper_whose_keys_are_not_known_gets_nothing(
    client: LanguageClient, wrap_workspace: Path, name: str, build: str
) -> None:
    """On this machine (no GPUs; helpers.DataParallel hands the model back) the file loads
    or not depending on what was not known statically: nothing is said either way."""
    for file in ("net.pth", "dp.pth"):
        text = script(build, "model", file)
        path = wrap_workspace / f"unknown_{name}_{file[:-4]}.py"
        path.write_text(text)
        uri = open_document(client, path, text)
        assert not await _settled(client, uri)
        await published(client, uri)
        assert await hover_text(client, uri, utf16_position(text, "load_state_dict", 3)) is None


FIXES = [
    ("dp", "model = nn.DataParallel(Net())", "net.pth", "Add the 'module.' prefix"),
    ("compiled", "model = torch.compile(Net())", "net.pth", "Add the '_orig_mod.' prefix"),
    ("dp_compiled_file", "model = nn.DataParallel(Net())", "compiled.pth", ""),
]


@pytest.mark.parametrize(("name", "build", "file", "title"), FIXES)
async def test_the_prefix_fix_for_a_wrapper_makes_it_load(
    client: LanguageClient, wrap_workspace: Path, name: str, build: str, file: str, title: str
) -> None:
    text = script(build, "model", file)
    assert torch_says(wrap_workspace, text) is not None
    path = wrap_workspace / f"fix_{name}.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    assert await _settled(client, uri)
    line = utf16_position(text, "load_state_dict").line
    offered = [a for a in await code_actions(client, uri, line) if a.is_preferred and "prefix" in a.title]
    assert len(offered) == 1 and offered[0].title.startswith(title), offered
    resolved = await client.code_action_resolve_async(offered[0])
    fixed = apply_lsp_edits(text, text_edits(resolved.edit, uri))
    change_document(client, uri, 2, fixed)
    after = await published(client, uri, lambda p: p.version == 2)
    assert not [d for d in after.diagnostics if d.code == "PTH008"], after.diagnostics
    assert torch_says(wrap_workspace, fixed) is None, fixed
    path.write_text(fixed)
    run = subprocess.run([sys.executable, str(path)], cwd=wrap_workspace, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr


async def test_the_construction_hover_of_a_wrapped_model_says_what_torch_does(
    client: LanguageClient, wrap_workspace: Path
) -> None:
    text = script("model = nn.DataParallel(Net())", "model", "net.pth")
    truth = torch_says(wrap_workspace, text)
    assert truth is not None
    path = wrap_workspace / "built_dp.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    await load_hover(client, uri, text)
    shown = ((await hover_text(client, uri, utf16_position(text, "model = nn", 2))) or "").replace("\\", "")
    assert "Loaded from net.pth by model.load_state_dict" in shown, shown
    assert our_counts(shown.split("\n\n")[1]) == truth, shown


async def test_a_deep_copy_is_a_model_of_its_own(client: LanguageClient, wrap_workspace: Path) -> None:
    """`ema = copy.deepcopy(student)`: a DataParallel file loaded into the copy raises, a plain
    one into the original loads (torch says so); each construction's hover names its own."""
    text = ("import copy\nimport torch\nfrom compat_models import Net\n\n"
            "student = Net()\n"
            'student.load_state_dict(torch.load("runs/net.pth", weights_only=True))\n'
            "ema = copy.deepcopy(student)\n"
            'ema.load_state_dict(torch.load("runs/dp.pth", weights_only=True))\n')  # fmt: skip
    truth = torch_says(wrap_workspace, text)  # the first load passes; the copy's raises
    assert truth is not None
    path = wrap_workspace / "ema.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    (found,) = await _settled(client, uri)
    assert found.range.start == utf16_position(text, "load_state_dict", 0, 1)
    assert our_counts(found.message) == truth, found.message
    await load_hover(client, uri, text)
    student = ((await hover_text(client, uri, utf16_position(text, "student = ", 2))) or "").replace("\\", "")
    assert "by student.load_state_dict" in student and "ema" not in student, student
    assert re.search(r"\b(\d+)/\1 tensors match", student), student
    ema = ((await hover_text(client, uri, utf16_position(text, "ema = ", 2))) or "").replace("\\", "")
    assert "by ema.load_state_dict" in ema and "student.load" not in ema, ema
    assert "dp.pth" in ema and "net.pth" not in ema, ema


async def test_the_layer_hover_shows_the_wrapped_models_keys(client: LanguageClient, wrap_workspace: Path) -> None:
    """The model file's layer statement, with a script open that loads a DataParallel file into
    a DataParallel model: the wrapper's keys, as torch's state_dict of that wrapper has them."""
    text = script("model = nn.DataParallel(Net())", "model", "dp.pth")
    assert torch_says(wrap_workspace, text) is None
    path = wrap_workspace / "layers_dp.py"
    path.write_text(text)
    uri = open_document(client, path, text)
    await load_hover(client, uri, text)
    with _in(wrap_workspace):
        wrapped = torch.nn.DataParallel(sys.modules["compat_models"].Net()).state_dict()
    models_uri = open_document(client, wrap_workspace / "compat_models.py", MODELS)
    shown = ""
    for _ in range(200):
        shown = ((await hover_text(client, models_uri, utf16_position(MODELS, "self.fc = ", 10))) or "").replace("\\", "")
        if "layers_dp.py" in shown:
            break
        await asyncio.sleep(0.05)
    section = next(part for part in shown.split("In dp.pth") if "layers_dp.py" in part)
    assert "2 tensors, all as here" in section, section
    for key in ("module.fc.weight", "module.fc.bias"):
        shape = list(wrapped[key].shape)
        assert f"| {key} | {shape} | {shape} |" in section, section

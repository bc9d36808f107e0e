"""Python files follow the data flow, over stdio: one script loads a state_dict, a whole model,
a Lightning checkpoint, a file whose pickle would call `os.system`, a Git LFS pointer and a file
saved on CUDA (all made with torch here), and every hover, diagnostic, code action, command and
document link is checked against the file that code reads — never another one.

The client says it has pthscope's client commands (`capabilities.experimental`), as the
extension does: the light bulb then offers the modules' quick pick and snippet insertions.
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import pytest_lsp
import torch
import torch.serialization
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from tests.lsp.flow_models import SmallResNet
from tests.reader.hostile_files import ReduceToSystem

from .code_intel import (
    PYTHON_SERVER,
    apply_lsp_edits,
    code_actions,
    hover_text,
    open_document,
    published,
    text_edits,
    utf16_position,
)
from .conftest import ask

pytestmark = pytest.mark.asyncio(loop_scope="module")

SCRIPT = textwrap.dedent(
    '''
    import os
    from pathlib import Path

    import torch
    from torch import nn

    from tests.lsp.flow_models import SmallResNet

    ROOT = Path("runs")


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
            self.head = nn.Linear(8, 2)


    def freeze_stem(model):
        for p in model.layer1.parameters():
            p.requires_grad = False


    sd = torch.load(ROOT / "resnet_state_dict.pth", weights_only=True)
    full = torch.load(os.path.join("runs", "whole_model.pth"), weights_only=False)
    weight = sd["layer2.0.conv1.weight"]
    typo = sd["layer2.0.conv1.weigth"]
    for p in full.layer1.parameters():
        p.requires_grad = False
    full.layer2.requires_grad_(False)
    ckpt = torch.load(f"{ROOT}/lightning.ckpt", weights_only=True)
    state = ckpt.get("state_dict", ckpt)
    head = state["model.fc.weight"]
    nope = ckpt["model_state"]
    net = SmallResNet()
    net.load_state_dict(torch.load("runs/resnet_state_dict.pth", weights_only=True))
    freeze_stem(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    small = Net()
    bad = torch.load("runs/hostile.pth", weights_only=False)
    pointer = torch.load("runs/lfs_pointer.pth", weights_only=True)
    gpu = torch.load("runs/cuda_saved.pth", weights_only=True)
    gone = torch.load("runs/not_there.pth", weights_only=True)
    '''
).lstrip()

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 1048576\n"
)


def _saved_on_cuda(path: Path) -> None:
    """A state_dict whose storages say `cuda:0`, written on this machine without a GPU (torch
    asks registered taggers for each storage's location)."""
    tensors = {"fc.weight": torch.randn(4, 8), "fc.bias": torch.zeros(4)}
    on_gpu = {t.untyped_storage().data_ptr() for t in tensors.values()}
    # torch keeps a tagger for the whole process: it must tag nothing once this save is done, or
    # later saves whose storages reuse this memory would say cuda:0 too.
    torch.serialization.register_package(
        1, lambda storage: "cuda:0" if storage.data_ptr() in on_gpu else None, lambda obj, where: None
    )
    try:
        torch.save(tensors, path)
    finally:
        on_gpu.clear()


def write_flow_workspace(root: Path) -> Path:
    runs = root / "runs"
    runs.mkdir(parents=True)
    torch.manual_seed(0)
    whole = SmallResNet()
    whole.layer1.requires_grad_(False)
    torch.save(whole, runs / "whole_model.pth")
    torch.save(SmallResNet().state_dict(), runs / "resnet_state_dict.pth")
    model = SmallResNet()
    optimizer = torch.optim.Adam(model.parameters())
    torch.save(
        {
            "epoch": 3,
            "global_step": 30,
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "optimizer_states": [optimizer.state_dict()],
            "hyper_parameters": {"lr": 0.1},
        },
        runs / "lightning.ckpt",
    )
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "hook": ReduceToSystem("true")}, runs / "hostile.pth")
    (runs / "lfs_pointer.pth").write_text(LFS_POINTER)
    _saved_on_cuda(runs / "cuda_saved.pth")
    (root / "flow.py").write_text(SCRIPT)
    return root


@pytest.fixture(scope="module")
def flow_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_flow_workspace(tmp_path_factory.mktemp("flow"))


@pytest_lsp.fixture(config=PYTHON_SERVER, scope="module")
async def flow_client(lsp_client: LanguageClient, flow_workspace: Path):
    capabilities = pytest_lsp.client_capabilities("visual-studio-code")
    capabilities.experimental = {"pthscopeClientCommands": True}
    folder = from_fs_path(str(flow_workspace))
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=folder,
            workspace_folders=[types.WorkspaceFolder(uri=folder, name="flow")],  # type: ignore[arg-type]
        )
    )
    yield
    await lsp_client.shutdown_session()


async def _opened(client: LanguageClient, workspace: Path, name: str = "flow.py") -> str:
    """Open the script and wait until every linked checkpoint has been read (the diagnostics
    published then name them)."""
    uri = open_document(client, workspace / name, SCRIPT)
    await published(client, uri, lambda p: {"PTH004", "PTH005", "PTH006", "PTH007"} <= _codes(p))
    return uri


def _codes(params: types.PublishDiagnosticsParams) -> set[str]:
    return {str(d.code) for d in params.diagnostics}


async def _hover(client: LanguageClient, uri: str, needle: str, offset: int = 1, n: int = 0) -> str:
    found = await hover_text(client, uri, utf16_position(SCRIPT, needle, offset, n))
    assert found is not None, needle
    return found


async def _command(client: LanguageClient, command: str, arguments: dict[str, Any]) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=[arguments])
    )


def _line(needle: str) -> int:
    return utf16_position(SCRIPT, needle).line


# ----------------------------------------------------------------------------- hovers


async def test_a_key_hovers_against_the_file_it_is_read_from(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    key = await _hover(flow_client, uri, '"layer2.0.conv1.weight"')
    assert "(parameter) sd['layer2.0.conv1.weight']: Tensor[8, 8, 3, 3] float32" in key
    assert "`resnet_state_dict.pth`" in key and "not stored" in key
    assert "whole_model" not in key  # the other loaded file has the same key, trainable there
    lightning = await _hover(flow_client, uri, '"model.fc.weight"')
    # `state` is `ckpt["state_dict"]` (the file has it): the key is looked up in there.
    assert "(parameter) state['model.fc.weight']" in lightning and "`lightning.ckpt`" in lightning
    container = await _hover(flow_client, uri, '"state_dict", ckpt')
    assert "(dict)" in container and "`lightning.ckpt`" in container


async def test_freezing_hovers_follow_the_model_they_freeze(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    loop = await _hover(flow_client, uri, "parameters():\n    p.requires_grad", 0)
    assert "| False | 6 |" in loop and "`whole_model.pth`" in loop, loop
    method = await _hover(flow_client, uri, "requires_grad_(False)", 0)
    assert "`whole_model.pth`" in method and "| False | 3 |" in method, method
    # The helper, called on `net`, which is loaded from the state_dict: its layer1, from there.
    helper = await _hover(flow_client, uri, "freeze_stem(net)", 0)
    assert "| False | 6 |" in helper and "`resnet_state_dict.pth`" in helper, helper
    # Inside the helper, `model` is what its one caller passes.
    inside = await _hover(flow_client, uri, "parameters():\n        p.requires_grad", 0)
    assert "`resnet_state_dict.pth`" in inside, inside


async def test_path_hovers_link_to_the_page_and_say_when_there_is_no_file(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    whole = await _hover(flow_client, uri, '"whole_model.pth"')
    link = whole.rsplit("\n", 1)[-1]
    assert link.startswith("[Open in pthscope](command:pthscope.openCheckpoint?"), whole
    target = link.split("?", 1)[1].rstrip(")")
    assert json.loads(unquote(target)) == [str(flow_workspace / "runs" / "whole_model.pth")]
    gone = await _hover(flow_client, uri, '"runs/not_there.pth"')
    assert "no such file" in gone and str(flow_workspace / "runs" / "not_there.pth") in gone
    assert "Open in pthscope" not in gone


async def test_document_links_open_each_existing_checkpoint(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    links = await flow_client.text_document_document_link_async(
        types.DocumentLinkParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert links
    targets = {}
    for link in links:
        assert link.target is not None and link.target.startswith("command:pthscope.openCheckpoint?")
        (file,) = json.loads(unquote(link.target.split("?", 1)[1]))
        line = SCRIPT.split("\n")[link.range.start.line]
        targets[os.path.basename(file)] = line[link.range.start.character : link.range.end.character]
    assert targets["lightning.ckpt"] == 'f"{ROOT}/lightning.ckpt"'
    assert targets["whole_model.pth"] == 'os.path.join("runs", "whole_model.pth")'
    assert set(targets) == {
        "resnet_state_dict.pth", "whole_model.pth", "lightning.ckpt", "hostile.pth",
        "lfs_pointer.pth", "cuda_saved.pth",
    }  # fmt: skip


# ----------------------------------------------------------------------------- diagnostics


async def test_what_the_loaded_files_say_is_diagnosed_on_the_load(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    # Each file is read in the background and the diagnostics published again: wait for all four.
    every = {"PTH004", "PTH005", "PTH006", "PTH007"}
    found = (await published(flow_client, uri, lambda p: every <= _codes(p))).diagnostics
    by_code: dict[str, list[types.Diagnostic]] = {}
    for d in found:
        by_code.setdefault(str(d.code), []).append(d)
    (runs_code,) = by_code["PTH004"]
    assert runs_code.severity == types.DiagnosticSeverity.Error
    assert runs_code.range.start.line == _line('"runs/hostile.pth"') and "system" in runs_code.message
    (pointer,) = by_code["PTH005"]
    assert pointer.severity == types.DiagnosticSeverity.Error
    assert "is not a checkpoint: Git LFS pointer" in pointer.message and "git lfs pull" in pointer.message
    keys = {d.range.start.line: d.message for d in by_code["PTH006"]}
    assert "closest: 'layer2.0.conv1.weight'" in keys[_line('"layer2.0.conv1.weigth"')]
    assert "has no key 'model_state' at its top level" in keys[_line('"model_state"')]
    assert len(keys) == 2  # the keys that exist, and `.get`'s, are not flagged
    (cuda,) = by_code["PTH007"]
    assert cuda.severity == types.DiagnosticSeverity.Hint and cuda.range.start.line == _line("runs/cuda_saved")
    assert "saved on cuda:0 (2 tensors); on a machine without CUDA pass map_location='cpu'" in cuda.message


async def test_their_quick_fixes(flow_client: LanguageClient, flow_workspace: Path) -> None:
    uri = await _opened(flow_client, flow_workspace)
    cases = {
        "layer2.0.conv1.weigth": ("Use 'layer2.0.conv1.weight'", 'sd["layer2.0.conv1.weight"]'),
        "runs/hostile.pth": ("Use weights_only=True", 'torch.load("runs/hostile.pth", weights_only=True)'),
        "runs/cuda_saved.pth": (
            "Add map_location='cpu'",
            'torch.load("runs/cuda_saved.pth", weights_only=True, map_location="cpu")',
        ),
    }
    for needle, (title, fixed) in cases.items():
        listed = await code_actions(flow_client, uri, _line(needle), ["quickfix"])
        action = next((a for a in listed if a.title == title), None)
        assert action is not None and action.is_preferred, [a.title for a in listed]
        resolved = await flow_client.code_action_resolve_async(action)
        assert fixed in apply_lsp_edits(SCRIPT, text_edits(resolved.edit, uri)), title


# ----------------------------------------------------------------------------- code actions


async def test_the_light_bulb_is_short_and_picks_modules_through_one_entry(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    built = await code_actions(flow_client, uri, _line("small = Net()"))
    titles = [a.title for a in built]
    assert titles[0] == "Freeze / unfreeze modules of small…" and len(titles) <= 5, titles
    assert built[0].command is not None and built[0].command.command == "pthscope.chooseModules"
    assert list(built[0].command.arguments or []) == [{"uri": uri, "line": _line("small = Net()"), "version": 1}]
    snippet = next(a for a in built if a.title == "Load small: state_dict")
    assert snippet.command is not None and snippet.command.command == "pthscope.insertSnippet"
    loading = [a.title for a in await code_actions(flow_client, uri, _line("net.load_state_dict"))]
    assert not any(t.startswith(("Load", "Save")) for t in loading), loading
    assert not any("entire model" in t for t in titles + loading)


async def test_the_modules_come_from_the_models_file_or_its_class(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    loaded = await _command(flow_client, "pthscope.listModules", {"uri": uri, "line": _line("freeze_stem(net)")})
    assert loaded["title"] == "Freeze / unfreeze modules of net (from resnet_state_dict.pth)"
    keys = [m["key"] for m in loaded["modules"]]
    assert {"conv1", "layer1", "layer1.0", "layer2", "fc"} <= set(keys) and "features" not in keys
    assert [a["action"] for a in loaded["actions"]] == [
        "freezeModule", "freezeAllExcept", "unfreezeModule", "unfreezeAll"
    ]  # fmt: skip
    own = await _command(flow_client, "pthscope.listModules", {"uri": uri, "line": _line("small = Net()")})
    assert own["title"] == "Freeze / unfreeze modules of small (from class Net)"
    assert [m["key"] for m in own["modules"]] == ["features", "features.0", "features.1", "head"]
    assert own["modules"][0]["description"] == "Sequential · 40 parameters"
    stale = await _command(flow_client, "pthscope.listModules", {"uri": uri, "line": 1, "version": 99})
    assert stale["var"] is None and "changed" in stale["message"]


async def test_the_modules_of_a_replaced_head_or_a_wrapper_are_the_models_own(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    """After `model.head = nn.Sequential(...)` the choices are the new head's; inside
    nn.DataParallel they are under `module.` (what `dp.module.head` names); each checked with torch."""
    text = textwrap.dedent(
        """
        import torch
        from torch import nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
                self.head = nn.Linear(8, 2)


        model = Net()
        model.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
        print(model)
        dp = nn.DataParallel(Net())
        print(dp)
        """
    ).lstrip()
    uri = open_document(flow_client, flow_workspace / "replaced_head.py", text)
    ran: dict[str, Any] = {}
    exec(compile(text.replace("print(", "id("), "replaced_head.py", "exec"), ran)
    for var in ("model", "dp"):
        at = utf16_position(text, f"print({var})").line
        listed = await _command(flow_client, "pthscope.listModules", {"uri": uri, "line": at})
        assert listed["var"] == var, listed
        keys = [m["key"] for m in listed["modules"]]
        named = {name for name, _ in ran[var].named_modules() if name}
        assert set(keys) <= named, (var, keys, named)
        if var == "model":
            assert {"head.0", "head.2"} <= set(keys), keys
        else:
            assert all(k.startswith("module") for k in keys), keys


async def test_freezing_code_checks_the_module_and_the_optimizer(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    blank = _line("small = Net()") - 1  # the blank line after the optimizer
    assert SCRIPT.split("\n")[blank] == ""
    edits = flow_client.applied_edits  # type: ignore[attr-defined]
    count = len(edits)
    ask_first = {"uri": uri, "line": blank, "action": "freezeModule", "modules": ["layer2"]}
    asked = await _command(flow_client, "pthscope.insertRequiresGradCode", ask_first)
    assert asked["applied"] is False and asked["optimizer_line"] == _line("optimizer = torch"), asked
    assert "`optimizer` (line" in asked["message"] and "keeps holding" in asked["message"]
    missing = await _command(flow_client, "pthscope.insertRequiresGradCode", {**ask_first, "modules": ["layer9"]})
    assert missing["applied"] is False and "`net` has no module `layer9`" in missing["message"]
    assert "resnet_state_dict.pth" in missing["message"]
    before = await _command(flow_client, "pthscope.insertRequiresGradCode", {**ask_first, "placement": "beforeOptimizer"})
    assert before["applied"], before
    moved = apply_lsp_edits(SCRIPT, text_edits(edits[-1].edit, uri))
    assert "freeze_stem(net)\nnet.layer2.requires_grad_(False)\noptimizer = torch.optim.SGD" in moved
    here = await _command(flow_client, "pthscope.insertRequiresGradCode", {**ask_first, "placement": "here"})
    assert here["applied"]
    placed = apply_lsp_edits(SCRIPT, text_edits(edits[-1].edit, uri))
    assert "lr=0.1)\nnet.layer2.requires_grad_(False)\nsmall = Net()" in placed  # on the blank line
    assert len(edits) == count + 2


async def test_snippets_come_with_tab_stops(flow_client: LanguageClient, flow_workspace: Path) -> None:
    uri = await _opened(flow_client, flow_workspace)
    line = _line("small = Net()")
    found = await _command(
        flow_client, "pthscope.snippetEdit",
        {"uri": uri, "line": line, "action": "load_state_dict", "var": "small", "version": 1},
    )  # fmt: skip
    assert (found["line"], found["character"]) == (line + 1, 0) and found["message"] == ""
    assert found["snippet"].startswith("small.load_state_dict(torch.load(${1:\"model.pth\"}, ")
    stale = await _command(
        flow_client, "pthscope.snippetEdit",
        {"uri": uri, "line": line, "action": "load_state_dict", "var": "small", "version": 7},
    )  # fmt: skip
    assert stale["snippet"] == "" and "changed" in stale["message"]


# ----------------------------------------------------------------------------- the side panel


async def test_the_side_panel_file_is_only_for_code_that_names_none(
    flow_client: LanguageClient, flow_workspace: Path
) -> None:
    uri = await _opened(flow_client, flow_workspace)
    plain = "from tests.lsp.flow_models import SmallResNet\nmodel = SmallResNet()\nmodel.eval()\nmodel.fc.weight\n"
    other = open_document(flow_client, flow_workspace / "names_none.py", plain)
    at = utf16_position(plain, "weight")
    assert await hover_text(flow_client, other, at) is None
    whole = str(flow_workspace / "runs" / "whole_model.pth")
    assert (await ask(flow_client, "pthscope/setActiveCheckpoint", {"file": whole})).file == whole
    shown = await _wait_for_hover(flow_client, other, at)
    assert "(parameter) model.fc.weight" in shown and "`whole_model.pth`" in shown
    # The script names its files: the side panel's is not used for what it does not link.
    assert await hover_text(flow_client, uri, utf16_position(SCRIPT, "small = Net()", 0)) is None
    assert (await ask(flow_client, "pthscope/setActiveCheckpoint", {"file": None})).file is None
    assert await hover_text(flow_client, other, at) is None


async def _wait_for_hover(client: LanguageClient, uri: str, at: types.Position) -> str:
    """The hover once the side panel's file has been read (it is read in the background)."""
    for _ in range(100):
        found = await hover_text(client, uri, at)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("no hover")

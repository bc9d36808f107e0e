"""`analyze`: paths and their locations, flag statements, loads, tolerance and speed."""

from __future__ import annotations

import ast

from pthscope.analysis import analyze, loop_rule
from pthscope.analysis.facts import KeyChanges
from pthscope.analysis.flow import Loaded

SOURCE = """import os
from pathlib import Path
import torch

ROOT = Path("runs")
best = ROOT / "best.pth"
model = Net()
for name, p in model.named_parameters():
    if "fc" not in name:
        p.requires_grad = False
model.layer4.requires_grad_(True)
torch.save(model.state_dict(), os.path.join("out", "w.pt"))
ckpt = torch.load(best, weights_only=True)
model.load_state_dict(ckpt["model"])  # noqa: PTH001
"""


def test_paths_are_resolved_statically() -> None:
    facts = analyze(SOURCE, "/w/proj/train.py", ("/w",))
    paths = {(p.text, p.role, p.var) for p in facts.checkpoint_paths()}
    assert ("runs/best.pth", "load", "model") in paths
    assert ("out/w.pt", "save", "model") in paths
    best = next(p for p in facts.paths if p.text == "runs/best.pth")
    assert best.candidates == ("/w/proj/runs/best.pth", "/w/runs/best.pth")
    assert facts.lines[best.span.start_line][best.span.start_char : best.span.end_char] == "best"


def test_flag_ops_loads_and_noqa() -> None:
    facts = analyze(SOURCE, "/w/train.py")
    kinds = [(op.kind, op.module_path, op.value) for op in facts.flag_ops]
    assert kinds == [("loop", (), False), ("method", ("layer4",), True)]
    load = facts.loads[0]
    assert (load.var, load.source_var, load.source_key) == ("model", "ckpt", "model")
    assert facts.suppressed(13, "PTH001") and not facts.suppressed(13, "PTH002")
    assert facts.torch_loads[0].has_weights_only


def test_loop_rule_evaluates_name_conditions() -> None:
    facts = analyze(SOURCE, "/w/train.py")
    loop = facts.flag_ops[0].loop
    assert loop is not None
    rule = loop_rule(loop)
    assert rule is not None
    assert rule("fc.weight") is None and rule("layer1.0.conv1.weight") is False
    unclear = analyze(
        "for n, p in m.named_parameters():\n    if f(n):\n        p.requires_grad = False\n"
        "m.train()\n",
        "/w/x.py",
    )
    assert unclear.flag_ops[0].loop is not None and loop_rule(unclear.flag_ops[0].loop) is None


def test_syntax_errors_keep_the_rest() -> None:
    broken = SOURCE.replace("model.layer4.requires_grad_(True)", "model.layer4.requires_grad_(True")
    facts = analyze(broken, "/w/train.py")
    assert not facts.ok and facts.syntax_error
    assert facts.loads and facts.torch_loads
    previous = analyze(SOURCE, "/w/train.py")
    hopeless = analyze("def (:\n  ]]\n(((\n)))\n" * 3, "/w/train.py", previous=previous)
    assert not hopeless.ok and hopeless.loads == previous.loads


def test_a_block_opened_but_not_written_yet() -> None:
    """`for …:` just typed at the end: Python blames the line after; the repair blanks the
    `for` line itself, so the rest of the file is still analysed."""
    typing = SOURCE + "for name, p in model.named_parameters():\n# a comment\n"
    facts = analyze(typing, "/w/train.py")
    assert not facts.ok and "expected an indented block" in (facts.syntax_error or "")
    assert len(facts.loads) == 1 and len(facts.lines) == len(SOURCE.splitlines()) + 2


def test_lines_are_counted_as_python_and_lsp_count_them() -> None:
    """A form feed or U+2028 inside a line is not a line break (unlike `str.splitlines`)."""
    source = 'note = "a\u2028b\x0cc"\nmodel = Net()\nmodel.load_state_dict(sd)\r\nx = 1\n'
    facts = analyze(source, "/w/x.py")
    assert len(facts.lines) == 4 and facts.lines[0] == 'note = "a\u2028b\x0cc"'
    assert [load.call.start_line for load in facts.loads] == [2]


def test_helper_functions_that_freeze() -> None:
    source = (
        "def freeze(net, on=True):\n    for p in net.parameters():\n        p.requires_grad = not on\n"
        "m = models.resnet18()\nfreeze(m)\n"
    )
    facts = analyze(source, "/w/x.py")
    assert [(op.var, op.kind) for op in facts.flag_ops if op.scope == "<module>"] == [
        ("m", "helper")
    ]


def generated_source(lines: int = 2000) -> str:
    """A long training script: many functions that build, freeze, save and load models."""
    block = [
        "def step_{i}(loader):",
        "    model_{i} = models.resnet18()",
        "    for name, param in model_{i}.named_parameters():",
        "        if not name.startswith('fc'):",
        "            param.requires_grad = False",
        "    torch.save(model_{i}.state_dict(), 'runs/best.pth')",
        "    fresh = models.resnet18()",
        "    fresh.load_state_dict(torch.load('runs/best.pth'))",
        "    x = fresh.layer1[0].conv1.weight + model_{i}.fc.bias",
        "    return {{'fc.weight': x, 'loss': loader}}",
        "",
    ]
    out = ["import torch", "from torchvision import models", ""]
    i = 0
    while len(out) < lines:
        out += [line.format(i=i) for line in block]
        i += 1
    return "\n".join(out[:lines]) + "\n"


def test_two_thousand_lines_are_analysed() -> None:
    """A 2,000-line file is analysed completely (its speed: benchmarks/bench_code_intel.py)."""
    facts = analyze(generated_source(), "/w/big.py")
    assert len(facts.loads) > 150


CHUNKY = '''import torch
@decorate
def f(x=(1,
2)):
    """doc
x = 1
"""
    return x
x = [
"a",
]
y = 1 + \\
2
if x:
    pass
else:
    y = 3
try:
    pass
except Exception:
    pass
finally:
    pass
class C:
    a = 1
# comment
z = f"""
{y}
"""
'''


def test_chunked_parse_gives_the_tree_ast_parse_gives() -> None:
    """Statements parsed one at a time (a decorator, brackets, strings and continuations that
    run over several lines joined), with the same line numbers as one `ast.parse`; unchanged
    chunks are taken from the last analysis."""
    from pthscope.analysis.source import parse_in_chunks

    for source in (CHUNKY, generated_source(300), "x = 1\r\ny = 2\r\n", "", "\n\n# only\n"):
        found = parse_in_chunks(source, {})
        assert found is not None
        tree, chunks = found
        assert ast.dump(tree, include_attributes=True) == ast.dump(
            ast.parse(source), include_attributes=True
        )
    first = parse_in_chunks(CHUNKY, {})
    assert first is not None
    tree, chunks = first
    edited = CHUNKY + "w = 5\n"
    reused = parse_in_chunks(edited, chunks)
    assert reused is not None and reused[0].body[0] is tree.body[0]
    assert ast.dump(reused[0], include_attributes=True) == ast.dump(ast.parse(edited), include_attributes=True)
    assert parse_in_chunks("x = (\n", {}) is None
    facts = analyze(CHUNKY, "/w/x.py")
    again = analyze(CHUNKY.replace("y = 3", "y = 4"), "/w/x.py", previous=facts)
    assert again.ok and len(again.chunks) == len(facts.chunks)


def test_a_load_argument_that_renames_or_leaves_out_keys() -> None:
    cases = {
        '{k.removeprefix("module."): v for k, v in sd.items()}': KeyChanges(renames=("module.", "")),
        '{"model." + k: v for k, v in sd.items()}': KeyChanges(renames=("", "model.")),
        '{k.replace("module.", ""): v for k, v in sd.items()}': KeyChanges(replaced=("module.", "")),
        '{k: v for k, v in sd.items() if k not in ("fc.weight", "fc.bias")}': KeyChanges(("fc.weight", "fc.bias")),
        '{k: v for k, v in sd.items() if k not in {"fc.weight"}}': KeyChanges(("fc.weight",)),
        '{k.removeprefix("module."): v for k, v in sd.items() if k not in ["module.fc.bias"]}':
            KeyChanges(("module.fc.bias",), renames=("module.", "")),
        '{k.replace("model.", ""): v for k, v in sd.items() if k.startswith("model.")}':
            KeyChanges(kept_prefix="model.", replaced=("model.", "")),
        '{k: v for k, v in sd.items() if k.startswith("backbone.")}': KeyChanges(kept_prefix="backbone."),
        # Not understood (nothing is checked).
        '{k: v for k, v in sd.items() if not k.startswith("fc.")}': None,
        '{k: v for k, v in sd.items() if k not in HEAD}': None,
        '{k: v for k, v in sd.items()}': None,
        '{k.replace("module.", "", 1): v for k, v in sd.items()}': None,
        '{k.replace(old, ""): v for k, v in sd.items()}': None,
        '{k[7:]: v for k, v in sd.items()}': KeyChanges(cut=7),
        '{k[len("module."):]: v for k, v in sd.items() if k.startswith("module.")}':
            KeyChanges(kept_prefix="module.", cut=7),
        '{k[i:]: v for k, v in sd.items()}': None,
        '{k[7:-1]: v for k, v in sd.items()}': None,
    }  # fmt: skip
    for argument, expected in cases.items():
        for bound in (False, True):  # inline, or bound to a name first
            body = (f"state = {argument}\nnet.load_state_dict(state)\n" if bound
                    else f"net.load_state_dict({argument})\n")
            source = f'import torch\nsd = torch.load("w.pth", weights_only=True)\n{body}'
            (load,) = analyze(source, "/w/train.py", ("/w",)).loads
            if expected is None:
                assert load.changes == KeyChanges() and not isinstance(load.source, Loaded), argument
            else:
                assert load.changes == expected, argument
                assert isinstance(load.source, Loaded) and load.source_var == ("state" if bound else "sd"), argument
    changes = KeyChanges(("module.fc.bias",), kept_prefix="module.", replaced=("module.", ""))
    assert [changes.model_key(k) for k in ("module.fc.bias", "module.a.module.b", "head.w")] == [None, "a.b", None]


def test_paths_built_from_the_scripts_own_location() -> None:
    source = (
        "import os\nimport os.path as osp\nfrom pathlib import Path\nimport torch\n"
        "HERE = os.path.dirname(os.path.abspath(__file__))\n"
        "ROOT = Path(__file__).resolve().parent\n"
        "a = torch.load(os.path.join(HERE, 'weights', 'a.pth'))\n"
        "b = torch.load(ROOT / 'weights' / 'b.pth')\n"
        "c = torch.load(Path(__file__).parents[1] / 'c.pt')\n"
        "d = torch.load(osp.join(osp.dirname(osp.realpath(__file__)), 'd.pt'))\n"
        "e = torch.load(Path(__file__).with_name('e.pt'))\n"  # not evaluated: nothing is claimed
    )
    facts = analyze(source, "/w/proj/tools/train.py", ("/w",))
    found = {p.text: p.candidates for p in facts.checkpoint_paths() if p.role == "load"}
    assert found == {
        "/w/proj/tools/weights/a.pth": ("/w/proj/tools/weights/a.pth",),
        "/w/proj/tools/weights/b.pth": ("/w/proj/tools/weights/b.pth",),
        "/w/proj/c.pt": ("/w/proj/c.pt",),
        "/w/proj/tools/d.pt": ("/w/proj/tools/d.pt",),
    }
    # `e.pt` is only a string here: its hover shows nothing rather than "no such file".
    assert [p.role for p in facts.checkpoint_paths() if p.text == "e.pt"] == ["other"]


def test_a_path_passed_by_the_functions_callers() -> None:
    source = (
        "import torch\n"
        "def load_checkpoint(path, model):\n"
        "    ckpt = torch.load(path, weights_only=True)\n"
        "    model.load_state_dict(ckpt['model'])\n"
        "def show(path):\n"
        "    return torch.load(path)\n"
        "def never_called(path):\n"
        "    return torch.load(path)\n"
        "load_checkpoint('runs/a.pth', net)\n"
        "load_checkpoint(path='runs/a.pth', model=net)\n"
        "show('runs/b.pth')\n"
        "show(args.resume)\n"  # another caller, another file: not known
    )
    facts = analyze(source, "/w/train.py", ("/w",))
    paths = [load.path.text if load.path else None for load in facts.torch_loads]
    assert paths == ["runs/a.pth", None, None]
    assert [(p.text, p.role) for p in facts.checkpoint_paths()] == [
        ("runs/a.pth", "load"), ("runs/a.pth", "other"), ("runs/a.pth", "other"), ("runs/b.pth", "other")]
    assert facts.torch_loads[0].path is not None and facts.torch_loads[0].path.span.start_line == 2


def test_a_loop_that_copies_a_state_dict_under_new_keys() -> None:
    head = 'import torch\nfrom collections import OrderedDict\nsd = torch.load("w.pth", weights_only=True)\n'
    cases = {
        "new = OrderedDict()\nfor k, v in sd.items():\n    name = k[7:]\n    new[name] = v\n": KeyChanges(cut=7),
        "new = {}\nfor k, v in sd.items():\n    new[k.removeprefix('module.')] = v\n": KeyChanges(renames=("module.", "")),
        "new = dict()\nfor k, v in sd.items():\n    new[k] = v\n": KeyChanges(),
        # Not a plain copy: nothing is followed.
        "new = {}\nfor k, v in sd.items():\n    new[k[7:]] = v\nelse:\n    new['x'] = 1\n": None,
        "new = {}\nfor k, v in sd.items():\n    print(k)\n    name = k[7:]\n    new[name] = v\n": None,
        "new = {'a': 1}\nfor k, v in sd.items():\n    new[k[7:]] = v\n": None,
        "new = {}\nfor k, v in sd.items():\n    new[k[7:]] = v * 2\n": None,
        "new = {}\nx = 1\nfor k, v in sd.items():\n    new[k[7:]] = v\n": None,
        "new = {}\nfor k, v in sd.items():\n    k = k[7:]\n    new[k] = v\n": None,
    }
    for body, expected in cases.items():
        (load,) = analyze(head + body + "net.load_state_dict(new)\n", "/w/train.py", ("/w",)).loads
        if expected is None:
            assert not isinstance(load.source, Loaded), body
        else:
            assert isinstance(load.source, Loaded) and load.changes == expected, body


def test_an_optimizer_or_scheduler_load_is_no_model_check() -> None:
    """Nothing of an optimizer's or a scheduler's state is known statically: no check (it would
    say "0/0 tensors match"), while the model's load beside them is checked."""
    text = ('import torch\nimport torch.nn as nn\nmodel = nn.Linear(4, 4)\nopt = torch.optim.AdamW(model.parameters())\n'
            'sched = torch.optim.lr_scheduler.StepLR(opt, 10)\nckpt = torch.load("c.pth")\n'
            'opt.load_state_dict(ckpt["optimizer"])\nsched.load_state_dict(ckpt["scheduler"])\n'
            'model.load_state_dict(ckpt["model"])\n')
    facts = analyze(text, "/tmp/train.py")
    assert [facts.loads[i].var for i in facts.expected] == ["model"]
    assert len(facts.loads) == 3

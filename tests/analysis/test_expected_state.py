"""The expected state_dict derived from source, against `Model(...).state_dict()` of the real
class imported here: keys, order, shapes, kinds and dtypes equal, or the differing part reported
unknown — never a wrong shape. Fixture models live in tests/analysis/models/."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from pthscope.analysis.expected_state import ExpectedStateDict, expected_state_dict
from pthscope.analysis.model_classes import ModelSources

MODELS = Path(__file__).parent / "models"
SOURCES = ModelSources((str(MODELS),))


@pytest.fixture(autouse=True)
def models_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(MODELS))
    monkeypatch.delenv("ESD_FLAG", raising=False)


def derive(module: str, expression: str, **kwargs: object) -> ExpectedStateDict:
    path = MODELS / f"{module}.py"
    name, _, rest = expression.partition("(")
    return expected_state_dict(path.read_text(), str(path), (str(MODELS),), name, rest[:-1],
                               sources=SOURCES, **kwargs)  # type: ignore[arg-type]


def build(module: str, expression: str) -> torch.nn.Module:
    namespace = vars(importlib.import_module(module))
    return eval(expression, namespace)  # the fixture's own constructor call, run for real


def assert_matches(expected: ExpectedStateDict, model: torch.nn.Module) -> None:
    """Every derived key is real with the same shape, kind and dtype; every real key is derived
    or covered by an unknown part; the order is torch's."""
    assert expected.error is None, expected.error
    real = model.state_dict()
    parameters = {k for k, _ in model.named_parameters(remove_duplicate=False)}
    for key, tensor in expected.tensors.items():
        assert key in real, f"derived {key} is not in the real state_dict"
        value = real[key]
        assert tensor.kind == ("parameter" if key in parameters else "buffer"), key
        if torch.nn.parameter.is_lazy(value):  # its shape comes with the first input
            continue
        if tensor.shape is not None:
            assert len(tensor.shape) == value.dim(), (key, tensor.shape, tuple(value.shape))
            for mine, theirs in zip(tensor.shape, value.shape, strict=True):
                assert mine is None or mine == theirs, (key, tensor.shape, tuple(value.shape))
        if tensor.dtype is not None:
            assert str(value.dtype) == f"torch.{tensor.dtype}", key
    for key in real:
        if key not in expected.tensors:
            assert expected.unknown_for(key) is not None, f"{key} is neither derived nor unknown"
    assert [k for k in real if k in expected.tensors] == list(expected.tensors)


# (module, constructor call, whether some part must be reported unknown)
CASES = [
    ("esd_layers", "Linears()", False),
    ("esd_layers", "Linears(d_in=5, d_out=3, bias=False)", False),
    ("esd_layers", "Convs()", False),
    ("esd_layers", "Convs(c=12, groups=4)", False),
    ("esd_layers", "Norms()", False),
    ("esd_layers", "Norms(c=4, affine=False, track=False)", False),
    ("esd_layers", "Embeddings()", False),
    ("esd_layers", "Embeddings(vocab=30, dim=4)", False),
    ("esd_layers", "Activations()", False),
    ("esd_layers", "Adaptive()", False),
    ("esd_layers", "Lazy()", False),
    ("esd_sequence", "Recurrent()", False),
    ("esd_sequence", "Recurrent(inputs=3, hidden=7, layers=1)", False),
    ("esd_sequence", "Attention()", False),
    ("esd_sequence", "Attention(d=8, heads=2)", False),
    ("esd_sequence", "Encoders()", False),
    ("esd_sequence", "Encoders(d=8, heads=4, depth=1)", False),
    ("esd_sequence", "SmallTransformer()", False),
    ("esd_containers", "Sequentials()", False),
    ("esd_containers", "Sequentials(d=4, n=1)", False),
    ("esd_containers", "Lists()", False),
    ("esd_containers", "Lists(d=3, depth=2)", False),
    ("esd_containers", "Registered()", False),
    ("esd_containers", "Registered(d=4, max_len=6)", False),
    ("esd_containers", "Tied()", False),
    ("esd_containers", "Cloned(n=5)", False),
    ("esd_configured", "Classifier()", False),
    ("esd_configured", "Classifier(num_classes=3, hidden=HIDDEN // 2)", False),
    ("esd_configured", "Classifier(7, 16)", False),
    ("esd_configured", "nn.DataParallel(Classifier(num_classes=4))", False),
    ("esd_configured", "torch.compile(Classifier(num_classes=4))", False),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)", False),
    ("esd_configured", "ResNet(Bottleneck, [1, 2, 1], width=8)", False),
    ("esd_configured", "resnet_small(num_classes=4)", False),
    ("esd_configured", "DictConfigured()", False),
    ("esd_configured", "DictConfigured({**CONFIG, 'layers': 3, 'hidden': 8})", False),
    ("esd_configured", "GPT(ModelConfig())", False),
    ("esd_configured", "GPT(SMALL)", False),
    ("esd_configured", "GPT(ModelConfig(vocab_size=64, n_layer=1, bias=False))", False),
    ("esd_configured", "WithNamedTuple()", False),
    ("esd_configured", "WithNamedTuple(Sizes(3, d_out=9))", False),
    ("esd_configured", "KwargsPassthrough(6)", False),
    ("esd_configured", "KwargsPassthrough(6, bias=False)", False),
    ("esd_configured", "PartialNorm()", False),
    ("esd_configured", "Conditional()", False),
    ("esd_configured", "Conditional(use_bn=False, kind='conv', head=3, extra_layers=2)", False),
    ("esd_configured", "UsesSubclasses()", False),
    ("esd_configured", "UsesSubclasses(d=3)", False),
    ("esd_configured", "DataclassModel()", False),
    ("esd_configured", "DataclassModel(ModelConfig(n_layer=5, widths=[2, 3, 4]))", False),
    ("esd_configured", "ConvNet()", False),
    ("esd_configured", "ConvNet(channels=(4, 8), num_classes=2, in_ch=1)", False),
    ("esd_pkg.blocks", "Encoder()", False),
    ("esd_app", "Model(EncoderConfig(), num_classes=4)", False),
    ("esd_dynamic", "UnknownLoop()", True),
    ("esd_dynamic", "GetattrTricks()", True),
    ("esd_dynamic", "Factories()", True),
    ("esd_dynamic", "UnknownKwargs(bias=False)", True),
    ("esd_dynamic", "UnknownCondition()", True),
    ("esd_dynamic", "WeightNormed()", True),
]


@pytest.mark.parametrize(("module", "expression", "has_unknown"), CASES,
                         ids=[f"{m}.{e}" for m, e, _ in CASES])
def test_derivation_matches_the_real_state_dict(module: str, expression: str, has_unknown: bool) -> None:
    expected = derive(module.replace(".", "/"), expression)
    assert_matches(expected, build(module, expression))
    assert bool(expected.unknown) == has_unknown, expected.unknown
    if not has_unknown:
        lazy = {k for k, t in expected.tensors.items() if "Lazy" in t.layer}
        assert all(t.known for k, t in expected.tensors.items() if k not in lazy)


@pytest.mark.parametrize(("expression", "prefixes", "words"), [
    ("UnknownLoop()", {"blocks", "comp"}, "loop over `range(depth_from_environment())`"),
    ("GetattrTricks()", {"dynamic", "act", ""}, "not known here"),
    ("Factories()", {"random_layer", "unknown_norm"}, "not known here"),
    ("UnknownKwargs(bias=False)", {"opaque"}, "**options"),
    ("UnknownCondition()", {"maybe", "buf"}, "ESD_FLAG"),
    ("WeightNormed()", {"normed"}, "weight_norm"),
])
def test_dynamic_parts_are_unknown_with_a_reason(expression: str, prefixes: set[str], words: str) -> None:
    expected = derive("esd_dynamic", expression)
    assert {p.prefix for p in expected.unknown} == prefixes
    assert any(words in p.reason for p in expected.unknown), [p.reason for p in expected.unknown]
    assert "head" in expected.tensors or "fixed.weight" in expected.tensors or expected.tensors


def test_unknown_shapes_keep_their_keys() -> None:
    expected = derive("esd_dynamic", "UnknownCondition()")
    assert expected.tensors["shape_unknown"].shape == (None, 8)
    assert expected.tensors["rank_unknown"].shape is None
    assert "always.weight" in expected.tensors and "always.bias" in expected.tensors


def test_library_models_are_unknown_not_derived(tmp_path: Path) -> None:
    source = (
        "import torch.nn as nn\nimport torchvision\nimport timm\n"
        "from transformers import AutoModel\n\n"
        "class FineTune(nn.Module):\n"
        "    def __init__(self, n=10):\n"
        "        super().__init__()\n"
        "        self.backbone = torchvision.models.resnet50(weights=None)\n"
        "        self.vit = timm.create_model('vit_base_patch16_224', pretrained=True)\n"
        "        self.bert = AutoModel.from_pretrained('bert-base-uncased')\n"
        "        self.head = nn.Linear(2048, n)\n"
    )
    (tmp_path / "ft.py").write_text(source)
    expected = expected_state_dict(source, str(tmp_path / "ft.py"), (str(tmp_path),), "FineTune")
    assert list(expected.tensors) == ["head.weight", "head.bias"]
    assert {p.prefix for p in expected.unknown} == {"backbone", "vit", "bert"}
    assert all("library model; not derived" in p.reason for p in expected.unknown)


def test_library_base_class_is_unknown(tmp_path: Path) -> None:
    source = ("from transformers import PreTrainedModel\nimport torch.nn as nn\n"
              "class M(PreTrainedModel):\n    def __init__(self, config):\n"
              "        super().__init__(config)\n        self.fc = nn.Linear(2, 2)\n")
    expected = expected_state_dict(source, str(tmp_path / "m.py"), (), "M", "None")
    assert not expected.tensors
    assert expected.unknown and "library" in expected.unknown[0].reason


def test_lightning_module_base_is_a_plain_module(tmp_path: Path) -> None:
    source = ("import lightning as L\nimport torch.nn as nn\n"
              "class Lit(L.LightningModule):\n    def __init__(self):\n"
              "        super().__init__()\n        self.model = nn.Linear(3, 2)\n")
    expected = expected_state_dict(source, str(tmp_path / "m.py"), (), "Lit")
    assert list(expected.tensors) == ["model.weight", "model.bias"] and not expected.unknown


# --- the construction site ------------------------------------------------------------------

def test_construction_in_a_function_sees_its_locals() -> None:
    path = MODELS / "esd_app.py"
    text = path.read_text()
    line = next(i for i, t in enumerate(text.splitlines()) if "model = Model(cfg" in t)
    expected = expected_state_dict(text, str(path), (str(MODELS),), "Model", call_line=line,
                                   sources=SOURCES)  # fmt: skip
    sys.path.insert(0, str(MODELS))
    esd_app = importlib.import_module("esd_app")
    assert_matches(expected, esd_app.main())
    assert expected.tensors["head.weight"].shape == (5, 8)
    assert len([k for k in expected.tensors if k.endswith("norm.weight")]) == 5


def test_construction_in_the_main_block() -> None:
    path = MODELS / "esd_app.py"
    text = path.read_text()
    line = next(i for i, t in enumerate(text.splitlines()) if "net = Model(config)" in t)
    expected = expected_state_dict(text, str(path), (str(MODELS),), None, call_line=line,
                                   sources=SOURCES)  # fmt: skip
    model = build("esd_app", "Model(EncoderConfig(depth=1))")
    assert_matches(expected, model)
    assert not expected.unknown


def test_construction_with_a_parameter_of_the_function_is_unknown(tmp_path: Path) -> None:
    source = ("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self, n):\n"
              "        super().__init__()\n        self.fc = nn.Linear(4, n)\n"
              "def train(args):\n    model = Net(args.classes)\n")
    expected = expected_state_dict(source, str(tmp_path / "t.py"), (), "Net", call_line=6)
    tensor = expected.tensors["fc.weight"]
    assert tensor.shape == (None, 4)
    assert "parameter of train()" in (tensor.reason or "")


def test_code_before_the_construction_is_followed(tmp_path: Path) -> None:
    source = ("import torch.nn as nn\nCFG = {'width': 4}\nCFG.update(width=6)\n"
              "class Net(nn.Module):\n    def __init__(self, cfg, depth=1):\n"
              "        super().__init__()\n"
              "        self.fc = nn.ModuleList([nn.Linear(cfg['width'], 2) for _ in range(depth)])\n"
              "def main():\n    cfg = dict(CFG)\n    cfg['width'] += 2\n    cfg.update(extra=1)\n"
              "    for epoch in range(3):\n        depth = epoch\n"
              "    model = Net(cfg, depth=2)\n    n = 0\n"
              "    for i in range(2):\n        other = Net(cfg, depth=i + 1)\n")
    path = str(tmp_path / "t.py")
    expected = expected_state_dict(source, path, (), "Net", call_line=13)
    assert {k: t.shape for k, t in expected.tensors.items()} == {
        "fc.0.weight": (2, 8), "fc.0.bias": (2,), "fc.1.weight": (2, 8), "fc.1.bias": (2,)}
    in_loop = expected_state_dict(source, path, (), "Net", call_line=16)
    assert not in_loop.tensors and in_loop.unknown  # depth=i + 1 depends on the loop
    assert "`i` is a loop variable" in in_loop.unknown[0].reason


def test_reused_constructions_follow_changes_to_globals(tmp_path: Path) -> None:
    """A block built again with the same arguments is copied, unless module state changed."""
    source = ("import torch.nn as nn\nCFG = {'w': 2}\nDEPTH = 1\n"
              "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.fc = nn.Linear(CFG['w'], DEPTH)\n"
              "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        global DEPTH\n        self.blocks = nn.ModuleList()\n"
              "        for w in (3, 4):\n            CFG['w'] = w\n            self.blocks.append(Block())\n"
              "        DEPTH = 5\n        self.last = Block()\n        self.again = Block()\n")
    path = tmp_path / "g.py"
    path.write_text(source)
    expected = expected_state_dict(source, str(path), (), "Net")
    sys.path.insert(0, str(tmp_path))
    try:
        assert_matches(expected, importlib.import_module("g").Net())
    finally:
        sys.path.remove(str(tmp_path))
    assert expected.tensors["blocks.1.fc.weight"].shape == (1, 4)
    assert expected.tensors["last.fc.weight"].shape == (5, 4)


def test_errors_are_values(tmp_path: Path) -> None:
    assert expected_state_dict("\x00", "x.py", (), "Net").error
    assert expected_state_dict("x = 1\n", "x.py", (), "Net", call_line=0).error
    missing = expected_state_dict("import torch.nn as nn\n", "x.py", (), "Net")
    assert missing.unknown and "not" in missing.unknown[0].reason


# --- where each dim comes from --------------------------------------------------------------

def test_dims_name_the_argument_that_decides_them() -> None:
    expected = derive("esd_configured", "Classifier(num_classes=3)")
    dim = expected.tensors["fc.weight"].dims[0]  # type: ignore[index]
    assert dim.value == 3
    assert dim.source is not None
    assert (dim.source.argument, dim.source.layer, dim.source.expression) == (
        "out_features", "nn.Linear", "num_classes")
    root = dim.source.name.root()  # type: ignore[union-attr]
    assert (root.name, root.value, root.how, root.text) == (
        "num_classes", "3", "construction argument", "num_classes=3")
    origin = expected.tensors["fc.weight"].origin
    assert origin is not None and origin.text == "self.fc = nn.Linear(hidden, num_classes)"


def test_defaults_and_module_constants_are_sources() -> None:
    expected = derive("esd_configured", "Classifier()")
    fc_in = expected.tensors["fc.weight"].dims[1].source.name  # type: ignore[index, union-attr]
    assert fc_in is not None and fc_in.how == "default" and fc_in.text == "hidden=HIDDEN"
    assert fc_in.root().name == "HIDDEN" and fc_in.root().how == "module constant"
    doubled = expected.tensors["features.0.weight"].dims[0].source  # type: ignore[index, union-attr]
    assert doubled is not None and (doubled.expression, doubled.scale) == ("hidden * 2", 2)


def test_nested_classes_chain_their_arguments() -> None:
    expected = derive("esd_app", "Model(EncoderConfig(width=6), num_classes=2)")
    out = expected.tensors["head.weight"].dims[0].source.name  # type: ignore[index, union-attr]
    assert out is not None and out.root().text == "num_classes=2"


def test_repeats_remember_their_range() -> None:
    expected = derive("esd_containers", "Lists(depth=3)")
    repeats = {r.prefix: r for r in expected.repeats}
    assert repeats["comp"].count == 3 and repeats["comp"].source.expression == "depth"
    assert repeats["looped"].count == 3
    from_list = repeats["from_list"]
    assert (from_list.count, from_list.offset, from_list.source.expression) == (2, 0, "depth - 1")
    resnet = derive("esd_configured", "ResNet(BasicBlock, [3, 1, 1])")
    layer1 = {r.prefix: r for r in resnet.repeats}["layer1"]
    assert (layer1.count, layer1.offset, layer1.source.expression) == (3, 0, "blocks")


def test_sources_are_cached_and_overlaid(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("import torch.nn as nn\nclass B(nn.Module):\n"
                                     "    def __init__(self):\n        super().__init__()\n"
                                     "        self.x = nn.Linear(2, 2)\n")
    main = "from lib import B\n"
    sources = ModelSources((str(tmp_path),))
    assert list(expected_state_dict(main, str(tmp_path / "m.py"), (), "B", sources=sources).tensors) \
        == ["x.weight", "x.bias"]
    sources.open_documents[str(tmp_path / "lib.py")] = (
        "import torch.nn as nn\nclass B(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.y = nn.Linear(2, 2, bias=False)\n")
    assert list(expected_state_dict(main, str(tmp_path / "m.py"), (), "B", sources=sources).tensors) \
        == ["y.weight"]


def test_hostile_sources_are_bounded(tmp_path: Path) -> None:
    source = ("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
              "        super().__init__()\n        self.l = nn.ModuleList()\n"
              "        for i in range(10**9):\n            self.l.append(nn.Linear(1, 1))\n"
              "        x = 'a' * 10**12\n        y = 2 ** 10**12\n"
              "class Loop(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.me = Loop()\n")
    net = expected_state_dict(source, str(tmp_path / "h.py"), (), "Net")
    assert net.unknown  # the loop is too long to follow: its list is unknown
    loop = expected_state_dict(source, str(tmp_path / "h.py"), (), "Loop")
    assert loop.unknown


def test_a_statement_attaching_a_module_made_by_a_helper_has_its_keys() -> None:
    """`self.conv1 = conv3x3(...)` and `self.layer1 = self._make_layer(...)` build their modules
    elsewhere (a helper's `return`): the statement that attaches them still has their keys."""
    path = MODELS / "esd_configured.py"
    lines = path.read_text().splitlines()
    expected = derive("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)")
    real = build("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)").state_dict()

    def keys_at(statement: str) -> list[str]:
        return expected.keys_at(str(path), lines.index(statement))

    conv1 = [k for k in real if k.startswith("layer") and ".conv1." in k]
    assert conv1 and keys_at("        self.conv1 = conv3x3(inplanes, planes, stride)") == conv1
    assert keys_at("        self.layer1 = self._make_layer(block, width, layers[0])") == [
        k for k in real if k.startswith("layer1.")]
    assert keys_at("        self.downsample = downsample") == [k for k in real if ".downsample." in k]
    helper = keys_at("    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)")
    assert helper == [k for k in real if ".conv1." in k or ".conv2." in k]  # where it is made: every one
    # A layer made where it is attached has only its own keys there.
    assert keys_at("        self.fc = nn.Linear(width * 4 * block.expansion, num_classes)") == ["fc.weight", "fc.bias"]


STORES = """\
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, n=10):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.classifier = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, n))
        self.fc = nn.Linear(8, n)
        self.tail = nn.Linear(n, 2)


model = Net()
{stores}
"""


@pytest.mark.parametrize("stores", [
    "model.fc = nn.Linear(model.fc.in_features, 5)\nmodel.tail = nn.Linear(5, 3)",  # in place, in_features read
    "model.classifier[2] = nn.Linear(8, 3)",  # an index into a Sequential
    "model.extra = nn.Linear(2, 2)\nmodel.classifier = nn.Identity()",  # added last; replaced by no tensors
    "model.fc = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 10))",  # a module of another kind
])  # fmt: skip
def test_stores_after_the_construction_are_replayed_in_torchs_order(tmp_path: Path, stores: str) -> None:
    """`model.fc = <module>` after the construction: the derived state_dict is that of the model
    the statements leave, keys in torch's order (a replaced child keeps its place)."""
    text = STORES.format(stores=stores)
    path = tmp_path / "script.py"
    path.write_text(text)
    lines = [i for i, line in enumerate(text.splitlines()) if line.startswith("model.")]
    expected = expected_state_dict(text, str(path), (str(tmp_path),), "Net",
                                   call_line=text.splitlines().index("model = Net()"), stores=lines)  # fmt: skip
    namespace: dict[str, object] = {}
    exec(compile(text, str(path), "exec"), namespace)  # our own test text, run for real
    model = namespace["model"]
    assert isinstance(model, torch.nn.Module)
    assert not expected.unknown
    assert {k: v.shape for k, v in expected.tensors.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert_matches(expected, model)


@pytest.mark.parametrize("stores", ["model.fc = make()", "model.fc = nn.Linear(8, 5); model.tail = nn.Linear(5, 2)",
                                    "model.fc.weight = nn.Parameter(torch.zeros(5, 8))"])  # fmt: skip
def test_a_store_not_known_here_leaves_no_derivation(tmp_path: Path, stores: str) -> None:
    text = STORES.format(stores=stores)
    path = tmp_path / "script.py"
    path.write_text(text)
    line = text.splitlines().index(stores)
    expected = expected_state_dict(text, str(path), (str(tmp_path),), "Net",
                                   call_line=text.splitlines().index("model = Net()"), stores=[line])  # fmt: skip
    assert expected.error is not None and f"line {line + 1}" in expected.error

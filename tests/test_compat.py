"""compat.compare against torch's own `load_state_dict` on model/checkpoint pairs saved by torch:
the missing, unexpected and mismatched sets must be what torch reports (minus keys under the
model's unknown parts, which are skipped), and the explanations must name the real cause."""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import pthscope
from pthscope.analysis.expected_state import ExpectedStateDict, expected_state_dict
from pthscope.analysis.model_classes import ModelSources
from pthscope.compat import Compatibility, TensorMeta, compare, tensor_meta
from pthscope.reader.model import Checkpoint, Node

MODELS = Path(__file__).parent / "analysis" / "models"
SOURCES = ModelSources((str(MODELS),))


@pytest.fixture(autouse=True)
def models_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(MODELS))


def derive(module: str, expression: str) -> ExpectedStateDict:
    path = MODELS / f"{module}.py"
    name, _, rest = expression.partition("(")
    return expected_state_dict(path.read_text(), str(path), (str(MODELS),), name, rest[:-1],
                               sources=SOURCES)  # fmt: skip


def build(module: str, expression: str) -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return eval(expression, vars(importlib.import_module(module)))


class TorchReport:
    """What `load_state_dict` said: parsed from its RuntimeError (or its returned keys)."""

    def __init__(self, model: torch.nn.Module, state: Any, strict: bool = True) -> None:
        self.missing: set[str] = set()
        self.unexpected: set[str] = set()
        self.mismatched: set[str] = set()
        self.not_tensors: set[str] = set()
        self.other: list[str] = []
        try:
            result = model.load_state_dict(state, strict=strict)
        except RuntimeError as error:
            for line in str(error).split("\n\t")[1:]:
                self._parse(line)
        else:
            self.missing, self.unexpected = set(result.missing_keys), set(result.unexpected_keys)

    def _parse(self, line: str) -> None:
        if line.startswith("Missing key(s)"):
            self.missing = set(re.findall(r'"([^"]*)"', line))
        elif line.startswith("Unexpected key(s)"):
            self.unexpected = set(re.findall(r'"([^"]*)"', line))
        elif line.startswith("size mismatch for "):
            self.mismatched.add(line[len("size mismatch for "):].split(": copying", 1)[0])
        elif line.startswith("While copying the parameter named"):
            self.not_tensors.add(re.findall(r'"([^"]*)"', line)[0])
        else:
            self.other.append(line)


def assert_same_as_torch(ours: Compatibility, theirs: TorchReport, expected: ExpectedStateDict) -> None:
    def visible(keys: set[str]) -> set[str]:
        return {k for k in keys if expected.unknown_for(k) is None}

    assert set(ours.missing) == visible(theirs.missing)
    assert set(ours.unexpected) == visible(theirs.unexpected)
    assert {m.key for m in ours.mismatched} == visible(theirs.mismatched)
    assert set(ours.not_tensors) == visible(theirs.not_tensors)
    assert bool(ours.errors) == bool(theirs.other), theirs.other
    assert ours.loads == (not (theirs.missing or theirs.unexpected or theirs.mismatched
                               or theirs.not_tensors or theirs.other))  # fmt: skip


def saved(state: Any, tmp_path: Path, name: str = "ckpt.pt") -> Any:
    """The checkpoint as torch saves and loads it (so `_metadata` is what a file keeps)."""
    path = tmp_path / name
    torch.save(state, path)
    return torch.load(path, weights_only=True)


def strip(prefix: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda sd: {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}


# --- pairs: the model in code, and what the checkpoint was saved from --------------------

def _data_parallel(model: torch.nn.Module) -> Any:
    return torch.nn.DataParallel(model).state_dict()


def _compiled(model: torch.nn.Module) -> Any:
    return torch.compile(model).state_dict()


def _optimizer(model: torch.nn.Module) -> Any:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    return optimizer.state_dict()


MODEL_PAIRS = [
    # (module, model expression, checkpoint expression, checkpoint transform, explanations)
    ("esd_configured", "Classifier()", "Classifier()", None, set()),
    ("esd_configured", "Classifier(num_classes=10)", "Classifier(num_classes=1000)", None, {"changed_head"}),
    ("esd_configured", "Classifier(hidden=32)", "Classifier(hidden=64)", None, {"config"}),
    ("esd_configured", "Classifier()", "Classifier()", _data_parallel, {"strip_prefix"}),
    ("esd_configured", "Classifier()", "Classifier()", _compiled, {"strip_prefix"}),
    ("esd_configured", "Classifier()", "Classifier()", lambda sd: {"model." + k: v for k, v in sd.items()},
     {"strip_prefix"}),
    ("esd_configured", "Classifier()", "Classifier()",
     lambda sd: {"state_dict": {"model." + k: v for k, v in sd.items()}, "epoch": 4,
                 "global_step": 100, "hyper_parameters": {"lr": 0.1}}, {"wrapper"}),
    ("esd_configured", "Classifier()", "Classifier()",
     lambda sd: {"epoch": 3, "model_state_dict": sd, "loss": 0.5}, {"wrapper"}),
    ("esd_configured", "Classifier()", "Classifier()", _optimizer, {"optimizer_state"}),
    ("esd_configured", "Classifier()", "Classifier()", lambda sd: {"epoch": 3, "lr": 0.1}, {"not_weights"}),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)",
     "ResNet(BasicBlock, [2, 1, 1], num_classes=10)", None, set()),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)",
     "ResNet(BasicBlock, [3, 1, 1], num_classes=10)", None, {"depth"}),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)",
     "ResNet(BasicBlock, [2, 1, 1], num_classes=1000)", None, {"changed_head"}),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1])", "ResNet(BasicBlock, [2, 1, 1])",
     strip("layer1."), set()),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], width=16)",
     "ResNet(BasicBlock, [2, 1, 1], width=8)", None, set()),
    ("esd_configured", "ResNet(BasicBlock, [1, 1, 1])", "ResNet(BasicBlock, [1, 1, 1])",
     lambda sd: {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, set()),
    ("esd_configured", "GPT(ModelConfig())", "GPT(ModelConfig())", None, set()),
    ("esd_configured", "GPT(ModelConfig())", "GPT(ModelConfig(vocab_size=50))", None, {"vocabulary"}),
    ("esd_configured", "GPT(ModelConfig())", "GPT(ModelConfig(n_layer=5))", None, {"depth"}),
    ("esd_configured", "GPT(ModelConfig())", "GPT(ModelConfig(n_embd=64))", None, {"config"}),
    ("esd_configured", "GPT(ModelConfig(bias=True))", "GPT(ModelConfig(bias=False))", None, set()),
    ("esd_configured", "DictConfigured()", "DictConfigured({**CONFIG, 'layers': 4})", None, {"depth"}),
    ("esd_configured", "DictConfigured()", "DictConfigured({**CONFIG, 'hidden': 16})", None, {"config"}),
    ("esd_configured", "DataclassModel()", "DataclassModel(ModelConfig(n_layer=4, n_embd=16))", None,
     {"depth"}),
    ("esd_configured", "ConvNet()", "ConvNet(channels=(16, 32, 128))", None, set()),
    ("esd_configured", "Conditional()", "Conditional(use_bn=False)", None, set()),
    ("esd_configured", "UsesSubclasses()", "UsesSubclasses(d=4)", None, set()),
    ("esd_sequence", "Recurrent()", "Recurrent()", None, set()),
    ("esd_sequence", "Recurrent(layers=2)", "Recurrent(layers=3)", None, {"depth"}),
    ("esd_sequence", "Recurrent(hidden=20)", "Recurrent(hidden=24)", None, {"config"}),
    ("esd_sequence", "Encoders()", "Encoders(depth=5)", None, {"depth"}),
    ("esd_sequence", "Attention()", "Attention(d=32)", None, set()),
    ("esd_sequence", "SmallTransformer()", "SmallTransformer()", _data_parallel, {"strip_prefix"}),
    ("esd_layers", "Embeddings()", "Embeddings(vocab=300)", None, set()),
    ("esd_layers", "Norms()", "Norms(affine=False, track=False)", None, set()),
    ("esd_layers", "Norms(affine=False, track=False)", "Norms()", None, set()),
    ("esd_layers", "Convs()", "Convs(groups=1)", None, set()),
    ("esd_containers", "Lists()", "Lists(depth=6)", None, {"depth"}),
    ("esd_containers", "Lists()", "Lists(depth=2)", None, {"depth"}),
    ("esd_containers", "Registered()", "Registered(max_len=8)", None, set()),
    ("esd_containers", "Tied()", "Tied(vocab=60)", None, set()),
    ("esd_containers", "Cloned()", "Cloned(n=4)", None, {"depth"}),
    ("esd_dynamic", "UnknownLoop()", "UnknownLoop(d=4)", None, set()),
    ("esd_dynamic", "GetattrTricks()", "GetattrTricks()", None, set()),
    ("esd_dynamic", "Factories()", "Factories(d=4)", None, set()),
    ("esd_dynamic", "UnknownCondition()", "UnknownCondition()", _data_parallel, {"strip_prefix"}),
    ("esd_app", "Model(EncoderConfig(), num_classes=4)", "Model(EncoderConfig(depth=5))", None,
     {"depth"}),
]  # fmt: skip


@pytest.mark.parametrize(("module", "model_expr", "ckpt_expr", "transform", "explained"), MODEL_PAIRS,
                         ids=[f"{p[1]}<-{p[2]}-{i}" for i, p in enumerate(MODEL_PAIRS)])
def test_compare_equals_torch(module: str, model_expr: str, ckpt_expr: str, transform: Any,
                              explained: set[str], tmp_path: Path) -> None:  # fmt: skip
    expected = derive(module, model_expr)
    source_model = build(module, ckpt_expr)
    state = transform(source_model) if transform in (_data_parallel, _compiled, _optimizer) else (
        source_model.state_dict() if transform is None else transform(source_model.state_dict()))
    checkpoint = saved(state, tmp_path)
    model = build(module, model_expr)
    ours = compare(expected, checkpoint)
    assert_same_as_torch(ours, TorchReport(model, checkpoint), expected)
    assert {e.kind for e in ours.explanations} >= explained, [e.message for e in ours.explanations]
    if ours.loads and not (ours.filled or ours.unknown):
        assert ours.summary() == f"{ours.expected_total}/{ours.expected_total} tensors match"


@pytest.mark.parametrize("strict", [True, False])
def test_strict_false_counts_what_would_load(strict: bool, tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier()")
    model = build("esd_configured", "Classifier()")
    checkpoint = saved(torch.nn.DataParallel(model).state_dict(), tmp_path)
    ours = compare(expected, checkpoint, strict=strict)
    assert ours.matched == 0 and ours.expected_total == 6
    kinds = {e.kind for e in ours.explanations}
    assert ("strict_false" in kinds) == (not strict)
    if not strict:
        message = next(e.message for e in ours.explanations if e.kind == "strict_false")
        assert "none of the model's 6 tensors would load" in message
        theirs = model.load_state_dict(checkpoint, strict=False)
        assert set(theirs.missing_keys) == set(ours.missing)


def test_partial_load_counts(tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier(num_classes=10)")
    checkpoint = saved(build("esd_configured", "Classifier(num_classes=1000)").state_dict(), tmp_path)
    ours = compare(expected, checkpoint, strict=False)
    assert (ours.matched, ours.expected_total) == (4, 6)
    message = next(e.message for e in ours.explanations if e.kind == "strict_false")
    assert "only 4 of the model's 6 tensors would load; the shape mismatches still raise" in message


def test_mismatch_message_names_the_argument(tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier(num_classes=10)")
    checkpoint = saved(build("esd_configured", "Classifier(num_classes=1000)").state_dict(), tmp_path)
    ours = compare(expected, checkpoint)
    weight = next(m for m in ours.mismatched if m.key == "fc.weight")
    assert weight.message == ("fc = nn.Linear(hidden, num_classes): the checkpoint's fc.weight "
                              "is [1000, 64], here [10, 64]; num_classes=10 here (the checkpoint "
                              "implies num_classes=1000)")  # fmt: skip
    cause = weight.causes[0]
    assert (cause.dim, cause.argument, cause.expression, cause.implied) == (
        0, "out_features of nn.Linear", "num_classes", 1000)
    head = next(e for e in ours.explanations if e.kind == "changed_head")
    assert head.keys == ("fc.weight", "fc.bias") and head.implied == 1000
    assert "drop fc.* from the checkpoint and load with strict=False" in head.message


def test_config_explanation_infers_through_arithmetic(tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier(hidden=32)")
    checkpoint = saved(build("esd_configured", "Classifier(hidden=48)").state_dict(), tmp_path)
    config = next(e for e in compare(expected, checkpoint).explanations if e.kind == "config")
    assert (config.name, config.here, config.implied) == ("hidden", "32", 48)


def test_depth_explanation_infers_the_argument(tmp_path: Path) -> None:
    expected = derive("esd_configured", "GPT(ModelConfig())")
    checkpoint = saved(build("esd_configured", "GPT(ModelConfig(n_layer=7))").state_dict(), tmp_path)
    depth = next(e for e in compare(expected, checkpoint).explanations if e.kind == "depth")
    assert (depth.prefix, depth.implied) == ("transformer.h", 7)
    assert "the checkpoint has 7 blocks in transformer.h; the model here has 3" in depth.message
    rnn = compare(derive("esd_sequence", "Recurrent(layers=2)"),
                  saved(build("esd_sequence", "Recurrent(layers=4)").state_dict(), tmp_path))
    assert any(e.kind == "depth" and e.implied == 4 for e in rnn.explanations)


def test_vocabulary_explanation(tmp_path: Path) -> None:
    expected = derive("esd_layers", "Embeddings()")
    model = build("esd_layers", "Embeddings()")
    state = model.state_dict()
    state["tok.weight"] = torch.zeros(250, 16)
    vocabulary = next(e for e in compare(expected, saved(state, tmp_path)).explanations)
    assert vocabulary.kind == "vocabulary" and vocabulary.implied == 250
    assert vocabulary.name == "vocab" and vocabulary.here == "100"


def test_missing_prefix_is_explained(tmp_path: Path) -> None:
    source = ("import torch.nn as nn\nfrom esd_configured import Classifier\n"
              "class Wrapped(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.backbone = Classifier()\n")
    (tmp_path / "wrapped.py").write_text(source)
    expected = expected_state_dict(source, str(tmp_path / "wrapped.py"), (str(MODELS),), "Wrapped")
    checkpoint = saved(build("esd_configured", "Classifier()").state_dict(), tmp_path)
    ours = compare(expected, checkpoint)
    explanation = ours.explanations[0]
    assert explanation.kind == "add_prefix" and explanation.new_prefix == "backbone."
    assert explanation.would_match == 6


def test_training_dict_with_prefixed_weights(tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier()")
    model = build("esd_configured", "Classifier()")
    checkpoint = saved({"model": torch.nn.DataParallel(model).state_dict(), "epoch": 9,
                        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()}, tmp_path)
    ours = compare(expected, checkpoint)
    assert_same_as_torch(ours, TorchReport(model, checkpoint), expected)
    wrapper = ours.explanations[0]
    assert wrapper.kind == "wrapper" and wrapper.path == ("model",) and wrapper.prefix == "module."
    assert wrapper.would_match == 6
    assert "checkpoint['model']" in wrapper.message and "'module.'" in wrapper.message


def test_batchnorm_fill_in_follows_the_metadata(tmp_path: Path) -> None:
    """A state_dict that lost its _metadata (a dict comprehension) gets num_batches_tracked
    filled in by torch; one that kept it reports them missing."""
    expected = derive("esd_layers", "Norms()")
    model = build("esd_layers", "Norms()")
    state = model.state_dict()
    for key in [k for k in state if k.endswith("num_batches_tracked")]:
        del state[key]
    kept = saved(state, tmp_path, "kept.pt")
    assert getattr(kept, "_metadata", None)
    with_metadata = compare(expected, kept)
    assert_same_as_torch(with_metadata, TorchReport(model, kept), expected)
    assert with_metadata.missing and all(k.endswith("num_batches_tracked") for k in with_metadata.missing)
    dropped = saved(dict(state), tmp_path, "dropped.pt")
    without = compare(expected, dropped)
    assert_same_as_torch(without, TorchReport(model, dropped), expected)
    assert not without.missing and without.filled


def test_stale_instance_norm_stats(tmp_path: Path) -> None:
    source = ("import torch.nn as nn\nclass N(nn.Module):\n    def __init__(self, track=False):\n"
              "        super().__init__()\n        self.norm = nn.InstanceNorm2d(4, track_running_stats=track)\n")
    (tmp_path / "n.py").write_text(source)
    expected = expected_state_dict(source, str(tmp_path / "n.py"), (), "N")
    model = torch.nn.Module()
    model.norm = torch.nn.InstanceNorm2d(4)
    tracked = torch.nn.InstanceNorm2d(4, track_running_stats=True)
    checkpoint = {"norm." + k: v for k, v in tracked.state_dict().items()}  # no _metadata
    ours = compare(expected, checkpoint)
    assert_same_as_torch(ours, TorchReport(model, checkpoint), expected)
    assert ours.errors


def test_values_that_are_not_tensors(tmp_path: Path) -> None:
    expected = derive("esd_configured", "Classifier()")
    model = build("esd_configured", "Classifier()")
    state = dict(model.state_dict())
    state["fc.weight"] = 3
    state["fc.bias"] = {"nested": torch.zeros(10)}
    ours = compare(expected, state)
    assert_same_as_torch(ours, TorchReport(model, state), expected)
    assert set(ours.not_tensors) == {"fc.weight", "fc.bias"}


def test_scalar_checkpoint_tensor_loads_into_a_zero_dim_buffer() -> None:
    expected = derive("esd_layers", "Norms()")
    model = build("esd_layers", "Norms()")
    state = dict(model.state_dict())
    state["bn1.num_batches_tracked"] = torch.tensor([5])
    ours = compare(expected, state)
    assert_same_as_torch(ours, TorchReport(model, state), expected)
    assert ours.loads


def test_unknown_parts_are_skipped_not_reported(tmp_path: Path) -> None:
    expected = derive("esd_dynamic", "UnknownLoop()")
    model = build("esd_dynamic", "UnknownLoop()")
    state = dict(model.state_dict())
    state["blocks.9.weight"] = torch.zeros(8, 8)
    ours = compare(expected, saved(state, tmp_path))
    assert "blocks.9.weight" in ours.skipped and not ours.unexpected
    assert ours.loads and "parts not known" in ours.summary()


def test_the_reader_output_compares_like_torch_tensors(tmp_path: Path) -> None:
    """The wiring's path: pthscope.inspect's tensors, as the nested mapping compare() takes."""
    expected = derive("esd_configured", "Classifier()")
    model = build("esd_configured", "Classifier()")
    path = tmp_path / "train.pt"
    torch.save({"epoch": 2, "model_state_dict": torch.nn.DataParallel(model).state_dict()}, path)
    checkpoint = pthscope.inspect(path)
    mapping = _as_mapping(checkpoint, checkpoint.root)
    ours = compare(expected, mapping, metadata=None)
    theirs = compare(expected, torch.load(path, weights_only=True), metadata=None)
    assert (ours.missing, ours.unexpected) == (theirs.missing, theirs.unexpected)
    assert ours.explanations[0].path == ("model_state_dict",)
    assert ours.explanations[0].prefix == "module." and ours.explanations[0].would_match == 6


def _as_mapping(checkpoint: Checkpoint, node: Node | None) -> Any:
    assert node is not None
    if node.kind == "tensor" and node.tensor is not None:
        return checkpoint.tensors[node.tensor]
    if node.kind == "dict":
        return {child.name: _as_mapping(checkpoint, child) for child in node.children}
    return node.value


def test_tensor_meta_accepts_the_shapes_it_is_given() -> None:
    assert tensor_meta(torch.zeros(2, 3)) == TensorMeta((2, 3), "torch.float32")
    assert tensor_meta(((4,), "float16")) == TensorMeta((4,), "float16")
    assert tensor_meta(TensorMeta((1,))) == TensorMeta((1,))
    assert tensor_meta({"shape": (1,)}) is None and tensor_meta(3) is None and tensor_meta("x") is None


@pytest.mark.parametrize(("module", "model_expr", "ckpt_expr"), [
    ("esd_configured", "Classifier(num_classes=10)", "Classifier(num_classes=1000)"),
    ("esd_configured", "ResNet(BasicBlock, [2, 1, 1], num_classes=10)", "ResNet(BasicBlock, [3, 1, 1], num_classes=10)"),
    ("esd_configured", "ResNet(BasicBlock, [1, 1, 1])", "ResNet(BasicBlock, [1, 1, 1])"),
    ("esd_dynamic", "UnknownLoop()", "UnknownLoop(d=4)"),
    ("esd_layers", "Norms()", "Norms()"),
])  # fmt: skip
def test_a_prefixed_checkpoint_is_checked_as_if_stripped(module: str, model_expr: str, ckpt_expr: str,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """Under a `module.` prefix (compared against the model's keys with the prefix before them,
    kept on the model), what would load after stripping it is what comparing the stripped file
    says — and what torch says of it."""
    from pthscope.compat import _best_view, _prefixable

    expected = derive(module, model_expr)
    state = build(module, ckpt_expr).state_dict()
    stripped = saved({k: v for k, v in state.items()}, tmp_path, "stripped.pt")
    prefixed = saved({"module." + k: v for k, v in state.items()}, tmp_path, "prefixed.pt")
    direct = compare(expected, stripped, metadata=None)
    view = _best_view(expected, prefixed, compare(expected, prefixed, metadata=None))
    assert view is not None and view.explanation.prefix == "module."
    fixed = view.fixed
    for field_name in ("matched", "missing", "unexpected", "not_tensors", "filled", "skipped", "errors"):
        assert getattr(fixed, field_name) == getattr(direct, field_name), field_name
    assert [m.key for m in fixed.mismatched] == [m.key for m in direct.mismatched]
    assert_same_as_torch(direct, TorchReport(build(module, model_expr), stripped), expected)
    # Kept for the next file read (InstanceNorm's stale stats are checked on renamed keys).
    assert ("module." in expected.prefixed) == _prefixable(expected)

"""The torch.nn layer table against torch itself: every signature as `inspect.signature` reports
it, every torch.nn module class classified, parameter-free layers really free, and each rule's
state_dict equal to the real layer's for a spread of arguments."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
import torch.nn as nn

from pthscope.analysis.expected_state import flatten
from pthscope.analysis.torch_layers import (
    CONTAINERS,
    KNOWN_CLASSES,
    LAYERS,
    NOT_DERIVED,
    PARAMETER_FREE,
    REQUIRED,
    WRAPPERS,
    Arg,
    make_layer,
)

RNN_SIGNATURES = {  # RNN/LSTM/GRU take *args; their parameters are RNNBase's (minus `mode`)
    "RNN": ["input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
            "dropout", "bidirectional", "device", "dtype"],
    "LSTM": ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size", "device", "dtype"],
    "GRU": ["input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
            "bidirectional", "device", "dtype"],
}  # fmt: skip


def _torch_classes() -> list[str]:
    return sorted(n for n in dir(nn) if isinstance(getattr(nn, n), type)
                  and issubclass(getattr(nn, n), nn.Module))  # fmt: skip


def test_every_torch_nn_module_class_is_classified() -> None:
    unclassified = [n for n in _torch_classes() if n not in KNOWN_CLASSES]
    assert unclassified == []


@pytest.mark.parametrize("name", sorted(n for n in LAYERS if n not in PARAMETER_FREE))
def test_signature_matches_torch(name: str) -> None:
    spec = LAYERS[name]
    if name in RNN_SIGNATURES:
        assert [p.name for p in spec.params] == RNN_SIGNATURES[name]
        return
    cls = getattr(nn, name, None) or getattr(nn.modules.linear, name)
    real = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in spec.params] == [p.name for p in real]
    for mine, theirs in zip(spec.params, real, strict=True):
        assert mine.keyword_only == (theirs.kind is inspect.Parameter.KEYWORD_ONLY), mine.name
        if theirs.default is inspect.Parameter.empty:
            assert mine.default is REQUIRED, mine.name
        elif not callable(theirs.default):  # Transformer's activation default is F.relu
            assert mine.default == theirs.default, mine.name


SAMPLE_ARGS = {
    "Threshold": (0.1, 0.0), "ConstantPad1d": (1, 0.0), "ConstantPad2d": (1, 0.0),
    "ConstantPad3d": (1, 0.0), "ChannelShuffle": (2,), "PixelShuffle": (2,),
    "PixelUnshuffle": (2,), "Unflatten": (1, (2, 2)), "Fold": (4, 2), "Unfold": (2,),
    "LocalResponseNorm": (2,), "CrossMapLRN2d": (3,), "LPPool1d": (2, 3), "LPPool2d": (2, 3),
    "LPPool3d": (2, 3), "FractionalMaxPool2d": (2,), "FractionalMaxPool3d": (2,),
    "TripletMarginWithDistanceLoss": (),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PARAMETER_FREE))
def test_parameter_free_layers_create_no_state(name: str) -> None:
    cls = getattr(nn, name)
    if name in SAMPLE_ARGS:
        args = SAMPLE_ARGS[name]
    elif any(p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD
             for p in list(inspect.signature(cls.__init__).parameters.values())[1:]):  # fmt: skip
        args = (2,)
    else:
        args = ()
    kwargs = {"output_size": 2} if name.startswith("FractionalMaxPool") else {}
    assert cls(*args, **kwargs).state_dict() == {}
    assert flatten(name, make_layer(name, {}, "x.py")).tensors == {}


def test_the_other_groups_are_what_they_say() -> None:
    assert set(_torch_classes()) >= CONTAINERS
    assert {"DataParallel", "DistributedDataParallel"} == WRAPPERS
    assert set(_torch_classes()) | {"RNNBase", "RNNCellBase"} >= NOT_DERIVED


# (layer, arguments): each product of the option lists is built both ways and compared.
SPREADS = [
    ("Linear", {"in_features": [3], "out_features": [5], "bias": [True, False]}),
    ("Bilinear", {"in1_features": [2], "in2_features": [3], "out_features": [4],
                  "bias": [True, False]}),
    ("Conv1d", {"in_channels": [4], "out_channels": [8], "kernel_size": [3, (5,)],
                "groups": [1, 2, 4], "bias": [True, False]}),
    ("Conv2d", {"in_channels": [6], "out_channels": [6], "kernel_size": [1, (3, 2)],
                "groups": [1, 3, 6], "bias": [True, False]}),
    ("Conv3d", {"in_channels": [2], "out_channels": [4], "kernel_size": [2, (1, 2, 3)],
                "groups": [1, 2]}),
    ("ConvTranspose1d", {"in_channels": [4], "out_channels": [6], "kernel_size": [3],
                         "groups": [1, 2], "bias": [True, False]}),
    ("ConvTranspose2d", {"in_channels": [4], "out_channels": [8], "kernel_size": [(2, 3)],
                         "groups": [1, 4], "bias": [True, False]}),
    ("ConvTranspose3d", {"in_channels": [3], "out_channels": [3], "kernel_size": [2],
                         "groups": [1, 3]}),
    ("BatchNorm1d", {"num_features": [5], "affine": [True, False],
                     "track_running_stats": [True, False], "bias": [True, False]}),
    ("BatchNorm2d", {"num_features": [3], "affine": [True, False], "track_running_stats": [True, False]}),
    ("BatchNorm3d", {"num_features": [2], "affine": [True, False]}),
    ("SyncBatchNorm", {"num_features": [4], "affine": [True, False],
                       "track_running_stats": [True, False]}),
    ("InstanceNorm1d", {"num_features": [3], "affine": [True, False],
                        "track_running_stats": [True, False]}),
    ("InstanceNorm2d", {"num_features": [3], "affine": [True, False],
                        "track_running_stats": [True, False], "bias": [True, False]}),
    ("InstanceNorm3d", {"num_features": [2], "affine": [True], "track_running_stats": [True]}),
    ("LayerNorm", {"normalized_shape": [4, (2, 3), [5]], "elementwise_affine": [True, False],
                   "bias": [True, False]}),
    ("GroupNorm", {"num_groups": [2], "num_channels": [6], "affine": [True, False],
                   "bias": [True, False]}),
    ("RMSNorm", {"normalized_shape": [4, (2, 3)], "elementwise_affine": [True, False]}),
    ("Embedding", {"num_embeddings": [10], "embedding_dim": [3], "padding_idx": [None, 0]}),
    ("EmbeddingBag", {"num_embeddings": [10], "embedding_dim": [3], "mode": ["mean", "max"]}),
    ("PReLU", {"num_parameters": [1, 7]}),
    ("RNN", {"input_size": [3], "hidden_size": [5], "num_layers": [1, 3],
             "nonlinearity": ["tanh", "relu"], "bias": [True, False], "bidirectional": [False, True]}),
    ("LSTM", {"input_size": [3], "hidden_size": [6], "num_layers": [1, 2], "bias": [True, False],
              "bidirectional": [False, True], "proj_size": [0, 2]}),
    ("GRU", {"input_size": [4], "hidden_size": [3], "num_layers": [1, 3], "bias": [True, False],
             "bidirectional": [False, True]}),
    ("RNNCell", {"input_size": [3], "hidden_size": [4], "bias": [True, False]}),
    ("LSTMCell", {"input_size": [3], "hidden_size": [4], "bias": [True, False]}),
    ("GRUCell", {"input_size": [3], "hidden_size": [4], "bias": [True, False]}),
    ("MultiheadAttention", {"embed_dim": [8], "num_heads": [2], "bias": [True, False],
                            "add_bias_kv": [False, True], "kdim": [None, 8, 4], "vdim": [None, 6]}),
    ("TransformerEncoderLayer", {"d_model": [8], "nhead": [2], "dim_feedforward": [16],
                                 "bias": [True, False], "norm_first": [False, True]}),
    ("TransformerDecoderLayer", {"d_model": [8], "nhead": [4], "dim_feedforward": [12],
                                 "bias": [True, False]}),
    ("Transformer", {"d_model": [8], "nhead": [2], "num_encoder_layers": [1, 2],
                     "num_decoder_layers": [0, 1], "dim_feedforward": [8], "bias": [True, False]}),
    ("AdaptiveLogSoftmaxWithLoss", {"in_features": [16], "n_classes": [20],
                                    "cutoffs": [[5], [4, 10]], "head_bias": [True, False]}),
    ("LinearCrossEntropyLoss", {"in_features": [8], "num_classes": [5], "out_features": [(), (2, 3)],
                                "bias": [True, False]}),
]  # fmt: skip


def _variants() -> list[tuple[str, dict[str, object]]]:
    found = []
    for name, options in SPREADS:
        keys = list(options)
        for values in itertools.product(*(options[k] for k in keys)):
            found.append((name, dict(zip(keys, values, strict=True))))
    return found


VARIANTS = _variants()


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=[f"{n}-{k}" for n, k in VARIANTS])
def test_rule_matches_the_real_layer(name: str, kwargs: dict[str, object]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = getattr(nn, name)(**kwargs).state_dict()
    derived = flatten(name, make_layer(name, {k: Arg(v) for k, v in kwargs.items()}, "x.py"))
    assert not derived.unknown
    assert {k: t.shape for k, t in derived.tensors.items()} == {k: tuple(v.shape) for k, v in real.items()}
    assert list(derived.tensors) == list(real)
    for key, tensor in derived.tensors.items():
        if tensor.dtype:
            assert real[key].dtype == getattr(torch, tensor.dtype)


def test_unknown_arguments_give_unknown_dims_not_guesses() -> None:
    from pthscope.analysis.model_values import Unknown

    why = Unknown("cfg.hidden is not known here")
    linear = flatten("Linear", make_layer("Linear", {"in_features": Arg(why), "out_features": Arg(3)}, "x"))
    assert linear.tensors["weight"].shape == (3, None)
    assert "cfg.hidden" in (linear.tensors["weight"].reason or "")
    bias = flatten("Linear", make_layer("Linear", {"in_features": Arg(2), "out_features": Arg(3),
                                                   "bias": Arg(why)}, "x"))  # fmt: skip
    assert list(bias.tensors) == ["weight"] and bias.unknown[0].prefix == "bias"
    lstm = flatten("LSTM", make_layer("LSTM", {"input_size": Arg(2), "hidden_size": Arg(3),
                                               "num_layers": Arg(why)}, "x"))  # fmt: skip
    assert not lstm.tensors and lstm.unknown[0].prefix == ""
    norm = flatten("LayerNorm", make_layer("LayerNorm", {"normalized_shape": Arg(why)}, "x"))
    assert norm.tensors["weight"].shape is None and norm.tensors["bias"].shape is None
    missing = flatten("Linear", make_layer("Linear", {"in_features": Arg(2)}, "x"))
    assert missing.unknown and "out_features" in missing.unknown[0].reason

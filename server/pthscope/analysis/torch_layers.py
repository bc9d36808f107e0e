"""torch.nn layer constructors → the parameters and buffers they create, as data and small rules.

Each entry of `LAYERS` is a constructor signature (as torch 2.13 spells it; a test checks every
one against `inspect.signature` of the real class) and a rule that fills a `ModuleValue` from the
bound arguments, following torch/nn/modules/*.py: `bias=False` registers None, BatchNorm's
`track_running_stats` adds `running_mean`, `running_var` and an int64 `num_batches_tracked`,
LSTM's `proj_size` changes `weight_hh` to `[4*hidden, proj_size]` and adds `weight_hr`, and so
on. An argument whose value is not known gives a dimension `None` with the reason, or marks the
entry unknown; it is never guessed.

`PARAMETER_FREE` lists the layers that create no state at all; `NOT_DERIVED` the few whose state
is not derived here. Containers (Sequential, ModuleList, …) hold other values and are built by
`model_eval`. Nothing here imports torch.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .model_values import (
    ArgSource,
    Dim,
    ModuleValue,
    Origin,
    Repeat,
    SList,
    TensorValue,
    Unknown,
    deep_copy,
)

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    default: Any = REQUIRED
    keyword_only: bool = False
    star: str = ""  # "*" for *args, "**" for **kwargs


def parse_signature(text: str) -> tuple[Param, ...]:
    """`"in_features, out_features, bias=True, *, x=1"` → Params (defaults are literals)."""
    args = ast.parse(f"def f({text}): pass").body[0].args  # type: ignore[attr-defined]
    positional = args.args
    defaults = [REQUIRED] * (len(positional) - len(args.defaults)) + [
        ast.literal_eval(d) for d in args.defaults
    ]
    params = [Param(a.arg, d) for a, d in zip(positional, defaults, strict=True)]
    if args.vararg:
        params.append(Param(args.vararg.arg, star="*"))
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        params.append(Param(a.arg, REQUIRED if d is None else ast.literal_eval(d), True))
    if args.kwarg:
        params.append(Param(args.kwarg.arg, star="**"))
    return tuple(params)


@dataclass(frozen=True)
class Arg:
    """A bound constructor argument: its value and where it was given (None: the default)."""

    value: Any
    source: ArgSource | None = None
    # For a tuple or list written out at the call (`(1, 1, d)`), each element as an Arg.
    parts: tuple[Arg, ...] = ()


class LayerArgs:
    """The bound arguments of one layer call, with helpers that turn them into dims."""

    def __init__(self, layer: str, args: dict[str, Arg], file: str) -> None:
        self.layer = layer
        self.args = args
        self.file = file

    def __getitem__(self, name: str) -> Arg:
        return self.args[name]

    def value(self, name: str) -> Any:
        return self.args[name].value

    def source(self, name: str) -> ArgSource:
        source = self.args[name].source
        if source is None:
            default = self.args[name].value
            source = ArgSource(name, self.layer, f"(default {default!r})", self.file, None)
        return source

    def dim(self, name: str, factor: int | Fraction = 1) -> Dim:
        value, source = self.value(name), self.source(name)
        if isinstance(value, Unknown):
            return Dim(None, source, factor, value.reason)
        if isinstance(value, bool) or not isinstance(value, int):
            return Dim(None, source, factor, f"{name} is {value!r}, not an int")
        return Dim(int(value * factor), source, factor)

    def flag(self, name: str) -> bool | None:
        """The truth of a flag argument; None when it is not known."""
        value = self.value(name)
        if isinstance(value, Unknown):
            return None
        return bool(value)

    def why(self, name: str) -> str:
        value = self.value(name)
        reason = value.reason if isinstance(value, Unknown) else f"{value!r}"
        return f"{self.layer}'s {name} is not known here ({reason})"

    def dims_of(self, name: str, rank: int) -> tuple[Dim, ...]:
        """kernel_size-like arguments: an int for every dim, or a tuple of `rank` ints."""
        value, source = self.value(name), self.source(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return tuple(Dim(value, source) for _ in range(rank))
        if isinstance(value, (tuple, list)) and len(value) == rank:
            return _elements(self.args[name], source)
        reason = value.reason if isinstance(value, Unknown) else f"{name} is {value!r}"
        return tuple(Dim(None, source, 0, reason) for _ in range(rank))

    def shape_of(self, name: str) -> tuple[Dim, ...] | None:
        """normalized_shape-like arguments: an int or a tuple/list of ints; None: rank unknown."""
        value, source = self.value(name), self.source(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return (Dim(value, source),)
        if isinstance(value, (tuple, list)) and not getattr(value, "unknown", None):
            return _elements(self.args[name], source)
        return None


def _elements(arg: Arg, source: ArgSource) -> tuple[Dim, ...]:
    """The dims of a tuple argument: each element's own source when it was written out."""
    if len(arg.parts) == len(arg.value):
        return tuple(_element(p.value, p.source or source, 1 if p.source else 0) for p in arg.parts)
    return tuple(_element(v, source, 0) for v in arg.value)


def _element(value: Any, source: ArgSource, factor: int) -> Dim:
    if isinstance(value, int) and not isinstance(value, bool):
        return Dim(value, source, factor)
    reason = value.reason if isinstance(value, Unknown) else f"{source.argument} has {value!r}"
    return Dim(None, source, 0, reason)


def _divided(dim: Dim, args: LayerArgs, by: str) -> Dim:
    groups = args.value(by)
    if dim.value is None:
        return dim
    if not isinstance(groups, int) or isinstance(groups, bool) or groups <= 0:
        reason = groups.reason if isinstance(groups, Unknown) else f"{by}={groups!r}"
        return Dim(None, dim.source, 0, reason)
    return Dim(dim.value // groups, dim.source, Fraction(dim.factor) / groups)


def _tensor(dims: tuple[Dim, ...] | None, reason: str | None = None) -> TensorValue:
    return TensorValue(dims, None, parameter=True, reason=reason)


def _buffer(dims: tuple[Dim, ...], dtype: str | None = None) -> TensorValue:
    return TensorValue(dims, dtype)


def _optional(m: ModuleValue, a: LayerArgs, flag: str, name: str, tensor: TensorValue,
              buffer: bool = False) -> None:  # fmt: skip
    """An entry that exists only when the flag argument is true (bias, affine, …)."""
    on = a.flag(flag)
    if on is None:
        m.set_unknown(name, a.why(flag))
        return
    if on:
        tensor.presence = a.source(flag)
    else:
        m.absent[name] = a.source(flag)
    if buffer:
        m.set_buffer(name, tensor if on else None)
    else:
        m.set_param(name, tensor if on else None)


def _optional_param(
    m: ModuleValue, a: LayerArgs, flag: str, name: str, dims: tuple[Dim, ...] | None,
    reason: str | None = None,
) -> None:
    _optional(m, a, flag, name, _tensor(dims, reason))


# --- the rules ---------------------------------------------------------------------------

Build = Callable[[ModuleValue, LayerArgs], None]


def _linear(m: ModuleValue, a: LayerArgs) -> None:
    out = a.dim("out_features")
    m.set_param("weight", _tensor((out, a.dim("in_features"))))
    _optional_param(m, a, "bias", "bias", (out,))


def _lazy_linear(m: ModuleValue, a: LayerArgs) -> None:
    out = a.dim("out_features")
    lazy = Dim(None, None, 0, "in_features of a LazyLinear comes from its first input")
    m.set_param("weight", _tensor((out, lazy)))
    _optional_param(m, a, "bias", "bias", (out,))


def _bilinear(m: ModuleValue, a: LayerArgs) -> None:
    out = a.dim("out_features")
    m.set_param("weight", _tensor((out, a.dim("in1_features"), a.dim("in2_features"))))
    _optional_param(m, a, "bias", "bias", (out,))


def _conv(rank: int, transposed: bool, lazy: bool = False) -> Build:
    def build(m: ModuleValue, a: LayerArgs) -> None:
        out = a.dim("out_channels")
        if lazy:
            channels = Dim(None, None, 0, "in_channels of a lazy conv comes from its first input")
        else:
            channels = a.dim("in_channels")
        kernel = a.dims_of("kernel_size", rank)
        if transposed:
            weight = (channels, _divided(out, a, "groups"), *kernel)
        else:
            weight = (out, _divided(channels, a, "groups"), *kernel)
        m.set_param("weight", _tensor(weight))
        _optional_param(m, a, "bias", "bias", (out,))

    return build


def _norm(lazy: bool = False) -> Build:
    """_NormBase: BatchNorm*, SyncBatchNorm, InstanceNorm* (their defaults differ)."""

    def build(m: ModuleValue, a: LayerArgs) -> None:
        if lazy:
            c = Dim(None, None, 0, "num_features of a lazy norm comes from its first input")
        else:
            c = a.dim("num_features")
        _affine(m, a, "affine", (c,))
        for name, dims, dtype in (("running_mean", (c,), None), ("running_var", (c,), None),
                                  ("num_batches_tracked", (), "int64")):  # fmt: skip
            _optional(m, a, "track_running_stats", name, _buffer(dims, dtype), buffer=True)

    return build


def _affine(m: ModuleValue, a: LayerArgs, flag: str, dims: tuple[Dim, ...] | None,
            reason: str | None = None) -> None:  # fmt: skip
    """weight (and bias, when the layer has a `bias` flag) that exist only when `flag` is true."""
    _optional(m, a, flag, "weight", _tensor(dims, reason))
    if "bias" not in a.args:
        return
    affine, bias = a.flag(flag), a.flag("bias")
    if affine is None or (affine and bias is None):
        m.set_unknown("bias", a.why(flag if affine is None else "bias"))
        return
    # The bias follows `flag` unless a `bias` argument was given and the flag is on.
    decider = "bias" if affine and a["bias"].source is not None else flag
    tensor = _tensor(dims, reason)
    if affine and bias:
        tensor.presence = a.source(decider)
    else:
        m.absent["bias"] = a.source(decider)
    m.set_param("bias", tensor if affine and bias else None)


def _layer_norm(m: ModuleValue, a: LayerArgs) -> None:
    shape = a.shape_of("normalized_shape")
    reason = None if shape is not None else a.why("normalized_shape")
    _affine(m, a, "elementwise_affine", shape, reason)


def _group_norm(m: ModuleValue, a: LayerArgs) -> None:
    _affine(m, a, "affine", (a.dim("num_channels"),))


def _embedding(m: ModuleValue, a: LayerArgs) -> None:
    given = a.value("_weight")
    if isinstance(given, TensorValue):
        m.set_param("weight", _tensor(given.dims, given.reason))
    elif given is None:
        m.set_param("weight", _tensor((a.dim("num_embeddings"), a.dim("embedding_dim"))))
    else:
        m.set_unknown("weight", a.why("_weight"))


def _prelu(m: ModuleValue, a: LayerArgs) -> None:
    m.set_param("weight", _tensor((a.dim("num_parameters"),)))


_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _rnn(mode: str) -> Build:
    gates = _GATES[mode]

    def build(m: ModuleValue, a: LayerArgs) -> None:
        layers, bidirectional, bias = a.value("num_layers"), a.flag("bidirectional"), a.flag("bias")
        proj = a.value("proj_size") if "proj_size" in a.args else 0
        for name, value in (("num_layers", layers), ("proj_size", proj)):
            if not isinstance(value, int) or isinstance(value, bool):
                m.unknown_all = a.why(name)
                return
        if bidirectional is None or bias is None:
            m.unknown_all = a.why("bidirectional" if bidirectional is None else "bias")
            return
        hidden = a.dim("hidden_size")
        gate = a.dim("hidden_size", gates)
        real = a.dim("proj_size") if proj > 0 else hidden
        directions = 2 if bidirectional else 1
        for layer in range(layers):
            for suffix in ("", "_reverse")[:directions]:
                if layer == 0:
                    inputs = a.dim("input_size")
                else:
                    inputs = real if directions == 1 else _times(real, directions)
                m.set_param(f"weight_ih_l{layer}{suffix}", _tensor((gate, inputs)))
                m.set_param(f"weight_hh_l{layer}{suffix}", _tensor((gate, real)))
                for name in (f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"):
                    _optional(m, a, "bias", name, _tensor((gate,)))
                if proj > 0:
                    m.set_param(f"weight_hr_l{layer}{suffix}", _tensor((a.dim("proj_size"), hidden)))
        m.repeat = Repeat(a.source("num_layers"))

    return build


def _times(dim: Dim, k: int) -> Dim:
    return Dim(None if dim.value is None else dim.value * k, dim.source, dim.factor * k, dim.reason)


def _rnn_cell(mode: str) -> Build:
    gates = _GATES[mode]

    def build(m: ModuleValue, a: LayerArgs) -> None:
        gate = a.dim("hidden_size", gates)
        m.set_param("weight_ih", _tensor((gate, a.dim("input_size"))))
        m.set_param("weight_hh", _tensor((gate, a.dim("hidden_size"))))
        for name in ("bias_ih", "bias_hh"):
            _optional_param(m, a, "bias", name, (gate,))

    return build


def _multihead_attention(m: ModuleValue, a: LayerArgs) -> None:
    embed = a.dim("embed_dim")
    kdim = a["kdim"] if a.value("kdim") is not None else a["embed_dim"]
    vdim = a["vdim"] if a.value("vdim") is not None else a["embed_dim"]
    same: bool | None
    values = (a.value("embed_dim"), kdim.value, vdim.value)
    if any(isinstance(v, Unknown) for v in values):
        same = None
    else:
        same = kdim.value == values[0] and vdim.value == values[0]
    if same is None:
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            m.set_unknown(name, "whether kdim and vdim equal embed_dim is not known here")
    elif same:
        m.set_param("in_proj_weight", _tensor((a.dim("embed_dim", 3), embed)))
        for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            m.set_param(name, None)
    else:
        args = LayerArgs(a.layer, {**a.args, "kdim": kdim, "vdim": vdim}, a.file)
        m.set_param("q_proj_weight", _tensor((embed, embed)))
        m.set_param("k_proj_weight", _tensor((embed, args.dim("kdim"))))
        m.set_param("v_proj_weight", _tensor((embed, args.dim("vdim"))))
        m.set_param("in_proj_weight", None)
    _optional_param(m, a, "bias", "in_proj_bias", (a.dim("embed_dim", 3),))
    out = _sub("NonDynamicallyQuantizableLinear", a,
               in_features=a["embed_dim"], out_features=a["embed_dim"], bias=a["bias"])  # fmt: skip
    m.set_child("out_proj", out)
    for name in ("bias_k", "bias_v"):
        _optional_param(m, a, "add_bias_kv", name, (Dim(1), Dim(1), embed))


def _encoder_layer(decoder: bool) -> Build:
    def build(m: ModuleValue, a: LayerArgs) -> None:
        attention = {"embed_dim": a["d_model"], "num_heads": a["nhead"], "bias": a["bias"]}
        m.set_child("self_attn", _sub("MultiheadAttention", a, **attention))
        if decoder:
            m.set_child("multihead_attn", _sub("MultiheadAttention", a, **attention))
        m.set_child("linear1", _sub("Linear", a, in_features=a["d_model"],
                                    out_features=a["dim_feedforward"], bias=a["bias"]))  # fmt: skip
        m.set_child("dropout", _sub("Dropout", a))
        m.set_child("linear2", _sub("Linear", a, in_features=a["dim_feedforward"],
                                    out_features=a["d_model"], bias=a["bias"]))  # fmt: skip
        norms = ("norm1", "norm2", "norm3") if decoder else ("norm1", "norm2")
        for name in norms:
            m.set_child(name, _sub("LayerNorm", a, normalized_shape=a["d_model"], bias=a["bias"]))
        for name in ("dropout1", "dropout2", "dropout3")[: len(norms)]:
            m.set_child(name, _sub("Dropout", a))
        activation = a.value("activation")
        if isinstance(activation, ModuleValue):
            m.set_child("activation", activation)
        elif isinstance(activation, Unknown) and activation.maybe_module:
            m.set_unknown("activation", activation.reason)

    return build


def _stack(layer_arg: str) -> Build:
    """TransformerEncoder/Decoder: `num_layers` deep copies of the layer, and `norm`."""

    def build(m: ModuleValue, a: LayerArgs) -> None:
        layer, count = a.value(layer_arg), a.value("num_layers")
        layers = ModuleValue("torch.nn.ModuleList", "container")
        if not isinstance(layer, ModuleValue):
            layers.unknown_all = a.why(layer_arg)
        elif not isinstance(count, int) or isinstance(count, bool):
            layers.unknown_all = a.why("num_layers")
        else:
            for i in range(count):
                layers.set_child(str(i), deep_copy(layer))
            layers.repeat = Repeat(a.source("num_layers"))
        m.set_child("layers", layers)
        norm = a.value("norm")
        if isinstance(norm, ModuleValue):
            m.set_child("norm", norm)
        elif isinstance(norm, Unknown) and norm.maybe_module:
            m.set_unknown("norm", norm.reason)

    return build


def _transformer(m: ModuleValue, a: LayerArgs) -> None:
    shared = {k: a[k] for k in ("d_model", "nhead", "dim_feedforward", "bias", "activation")}
    for part, custom, layer_class, count in (
        ("encoder", "custom_encoder", "TransformerEncoderLayer", "num_encoder_layers"),
        ("decoder", "custom_decoder", "TransformerDecoderLayer", "num_decoder_layers"),
    ):
        given = a.value(custom)
        if given is not None:
            if isinstance(given, ModuleValue):
                m.set_child(part, given)
            else:
                m.set_unknown(part, a.why(custom))
            continue
        layer = _sub(layer_class, a, **shared)
        norm = _sub("LayerNorm", a, normalized_shape=a["d_model"], bias=a["bias"])
        stack = "TransformerEncoder" if part == "encoder" else "TransformerDecoder"
        layer_arg = "encoder_layer" if part == "encoder" else "decoder_layer"
        m.set_child(part, _sub(stack, a, **{layer_arg: Arg(layer), "num_layers": a[count],
                                            "norm": Arg(norm)}))  # fmt: skip


def _weighted_loss(*names: str) -> Build:
    def build(m: ModuleValue, a: LayerArgs) -> None:
        for name in names:
            value = a.value(name)
            if isinstance(value, TensorValue):
                m.set_buffer(name, TensorValue(value.dims, value.dtype, reason=value.reason))
            elif value is None:
                m.set_buffer(name, None)
            else:
                m.set_unknown(name, a.why(name))

    return build


def _linear_cross_entropy(m: ModuleValue, a: LayerArgs) -> None:
    _weighted_loss("weight")(m, a)
    extra = a.value("out_features")
    if not isinstance(extra, (tuple, list)) or not all(isinstance(v, int) for v in extra):
        m.set_unknown("linear", a.why("out_features"))
        return
    product = 1
    for v in extra:
        product *= v
    out = a["num_classes"]
    if product != 1 and isinstance(out.value, int):
        source = a.source("num_classes")
        scaled = ArgSource(source.argument, source.layer, source.expression, source.file,
                           source.span, source.name, source.scale * product, source.offset * product)  # fmt: skip
        out = Arg(out.value * product, scaled)
    m.set_child("linear", _sub("Linear", a, in_features=a["in_features"], out_features=out,
                               bias=a["bias"]))  # fmt: skip


def _adaptive_log_softmax(m: ModuleValue, a: LayerArgs) -> None:
    cutoffs, n_classes, div = a.value("cutoffs"), a.value("n_classes"), a.value("div_value")
    features = a.value("in_features")
    known = (isinstance(cutoffs, (list, tuple)) and all(isinstance(c, int) for c in cutoffs)
             and isinstance(n_classes, int) and isinstance(div, (int, float))
             and isinstance(features, int))  # fmt: skip
    if not known:
        m.unknown_all = "the cutoffs, n_classes, div_value or in_features are not known here"
        return
    bounds = [*cutoffs, n_classes]
    head_size = bounds[0] + len(bounds) - 1
    m.set_child("head", _sub("Linear", a, in_features=a["in_features"],
                             out_features=Arg(head_size), bias=a["head_bias"]))  # fmt: skip
    tail = ModuleValue("torch.nn.ModuleList", "container")
    for i in range(len(bounds) - 1):
        hidden = int(features // (div ** (i + 1)))
        size = bounds[i + 1] - bounds[i]
        projection = ModuleValue("torch.nn.Sequential", "container")
        projection.set_child("0", _sub("Linear", a, in_features=a["in_features"],
                                       out_features=Arg(hidden), bias=Arg(False)))  # fmt: skip
        projection.set_child("1", _sub("Linear", a, in_features=Arg(hidden),
                                       out_features=Arg(size), bias=Arg(False)))  # fmt: skip
        tail.set_child(str(i), projection)
    m.set_child("tail", tail)


def _nothing(m: ModuleValue, a: LayerArgs) -> None:
    pass


# --- the table ---------------------------------------------------------------------------

_CONV = ("in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,"
         " bias=True, padding_mode='zeros', device=None, dtype=None")  # fmt: skip
_CONV_T = ("in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,"
           " groups=1, bias=True, dilation=1, padding_mode='zeros', device=None, dtype=None")  # fmt: skip
_BATCH = ("num_features, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True,"
          " device=None, dtype=None, *, bias=True")  # fmt: skip
_INSTANCE = ("num_features, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False,"
             " device=None, dtype=None, *, bias=True")  # fmt: skip
_LAZY_NORM = ("eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, device=None,"
              " dtype=None, *, bias=True")  # fmt: skip
_RNN = ("input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,"
        " bidirectional=False, proj_size=0, device=None, dtype=None")  # fmt: skip
_ENCODER = ("d_model, nhead, dim_feedforward=2048, dropout=0.1, activation='relu',"
            " layer_norm_eps=1e-05, batch_first=False, norm_first=False, bias=True, device=None,"
            " dtype=None")  # fmt: skip
_LOSS = "weight=None, size_average=None, reduce=None, reduction='mean'"

_TABLE: dict[str, tuple[str, Build]] = {
    "Linear": ("in_features, out_features, bias=True, device=None, dtype=None", _linear),
    "NonDynamicallyQuantizableLinear": (
        "in_features, out_features, bias=True, device=None, dtype=None", _linear),
    "LazyLinear": ("out_features, bias=True, device=None, dtype=None", _lazy_linear),
    "Bilinear": ("in1_features, in2_features, out_features, bias=True, device=None, dtype=None",
                 _bilinear),
    **{f"Conv{n}d": (_CONV, _conv(n, False)) for n in (1, 2, 3)},
    **{f"ConvTranspose{n}d": (_CONV_T, _conv(n, True)) for n in (1, 2, 3)},
    **{f"LazyConv{n}d": (_CONV.split(", ", 1)[1], _conv(n, False, lazy=True)) for n in (1, 2, 3)},
    **{f"LazyConvTranspose{n}d": (_CONV_T.split(", ", 1)[1], _conv(n, True, lazy=True))
       for n in (1, 2, 3)},
    **{f"BatchNorm{n}d": (_BATCH, _norm()) for n in (1, 2, 3)},
    "SyncBatchNorm": (_BATCH.replace("device=None", "process_group=None, device=None"), _norm()),
    **{f"InstanceNorm{n}d": (_INSTANCE, _norm()) for n in (1, 2, 3)},
    **{f"LazyBatchNorm{n}d": (_LAZY_NORM, _norm(lazy=True)) for n in (1, 2, 3)},
    **{f"LazyInstanceNorm{n}d": (_LAZY_NORM, _norm(lazy=True)) for n in (1, 2, 3)},
    "LayerNorm": ("normalized_shape, eps=1e-05, elementwise_affine=True, bias=True, device=None,"
                  " dtype=None", _layer_norm),
    "RMSNorm": ("normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None",
                _layer_norm),
    "GroupNorm": ("num_groups, num_channels, eps=1e-05, affine=True, device=None, dtype=None, *,"
                  " bias=True", _group_norm),
    "Embedding": ("num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,"
                  " scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False,"
                  " device=None, dtype=None", _embedding),
    "EmbeddingBag": ("num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,"
                     " scale_grad_by_freq=False, mode='mean', sparse=False, _weight=None,"
                     " include_last_offset=False, padding_idx=None, device=None, dtype=None",
                     _embedding),
    "RNN": (_RNN.replace("num_layers=1,", "num_layers=1, nonlinearity='tanh',")
            .replace(" proj_size=0,", ""), _rnn("RNN")),
    "LSTM": (_RNN, _rnn("LSTM")),
    "GRU": (_RNN.replace(" proj_size=0,", ""), _rnn("GRU")),
    "RNNCell": ("input_size, hidden_size, bias=True, nonlinearity='tanh', device=None, dtype=None",
                _rnn_cell("RNN")),
    "LSTMCell": ("input_size, hidden_size, bias=True, device=None, dtype=None", _rnn_cell("LSTM")),
    "GRUCell": ("input_size, hidden_size, bias=True, device=None, dtype=None", _rnn_cell("GRU")),
    "MultiheadAttention": ("embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,"
                           " add_zero_attn=False, kdim=None, vdim=None, batch_first=False,"
                           " device=None, dtype=None", _multihead_attention),
    "TransformerEncoderLayer": (_ENCODER, _encoder_layer(decoder=False)),
    "TransformerDecoderLayer": (_ENCODER, _encoder_layer(decoder=True)),
    "TransformerEncoder": ("encoder_layer, num_layers, norm=None, enable_nested_tensor=True,"
                           " mask_check=True", _stack("encoder_layer")),
    "TransformerDecoder": ("decoder_layer, num_layers, norm=None", _stack("decoder_layer")),
    "Transformer": ("d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,"
                    " dim_feedforward=2048, dropout=0.1, activation='relu', custom_encoder=None,"
                    " custom_decoder=None, layer_norm_eps=1e-05, batch_first=False,"
                    " norm_first=False, bias=True, device=None, dtype=None", _transformer),
    "PReLU": ("num_parameters=1, init=0.25, device=None, dtype=None", _prelu),
    "AdaptiveLogSoftmaxWithLoss": ("in_features, n_classes, cutoffs, div_value=4.0,"
                                   " head_bias=False, device=None, dtype=None",
                                   _adaptive_log_softmax),
    "LinearCrossEntropyLoss": ("in_features, num_classes, *, out_features=(), bias=False,"
                               " device=None, dtype=None, reduction='mean', weight=None,"
                               " ignore_index=None, label_smoothing=0.0, options=None",
                               _linear_cross_entropy),
    **{name: (sig, _weighted_loss("weight")) for name, sig in {
        "CrossEntropyLoss": "weight=None, size_average=None, ignore_index=-100, reduce=None,"
                            " reduction='mean', label_smoothing=0.0",
        "NLLLoss": "weight=None, size_average=None, ignore_index=-100, reduce=None,"
                   " reduction='mean'",
        "NLLLoss2d": "weight=None, size_average=None, ignore_index=-100, reduce=None,"
                     " reduction='mean'",
        "BCELoss": _LOSS,
        "MultiLabelSoftMarginLoss": _LOSS,
        "MultiMarginLoss": "p=1, margin=1.0, " + _LOSS,
    }.items()},
    "BCEWithLogitsLoss": (_LOSS + ", pos_weight=None", _weighted_loss("weight", "pos_weight")),
}  # fmt: skip

# Layers that create no parameters or buffers, whatever their arguments.
PARAMETER_FREE = frozenset(["Identity", "ReLU", "ReLU6", "LeakyReLU", "RReLU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Hardshrink", "Softshrink", "Tanhshrink", "Threshold", "LogSigmoid", "Softplus", "Softsign", "Softmax", "Softmin", "LogSoftmax", "Softmax2d", "ELU", "SELU", "CELU", "GLU", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "FractionalMaxPool2d", "FractionalMaxPool3d", "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "Flatten", "Unflatten", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "Fold", "Unfold", "CosineSimilarity", "PairwiseDistance", "LocalResponseNorm", "CrossMapLRN2d", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d", "CircularPad2d", "CircularPad3d", "L1Loss", "MSELoss", "KLDivLoss", "HuberLoss", "SmoothL1Loss", "SoftMarginLoss", "CTCLoss", "GaussianNLLLoss", "PoissonNLLLoss", "CosineEmbeddingLoss", "HingeEmbeddingLoss", "MarginRankingLoss", "MultiLabelMarginLoss", "TripletMarginLoss", "TripletMarginWithDistanceLoss"])

# Module classes that hold other values; `model_eval` builds them.
CONTAINERS = frozenset(
    ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Container"]
)
# Wrappers whose state is the wrapped module's, under `module.`.
WRAPPERS = frozenset({"DataParallel", "DistributedDataParallel"})
# Base classes a workspace class may inherit from (or internal ones) that are not derived here.
NOT_DERIVED = frozenset({"RNNBase", "RNNCellBase"})


@dataclass(frozen=True)
class LayerSpec:
    name: str
    params: tuple[Param, ...]
    build: Build


LAYERS: dict[str, LayerSpec] = {
    name: LayerSpec(name, parse_signature(sig), build) for name, (sig, build) in _TABLE.items()
}
_ANY_ARGS = parse_signature("*args, **kwargs")
for _name in PARAMETER_FREE:
    LAYERS.setdefault(_name, LayerSpec(_name, _ANY_ARGS, _nothing))

KNOWN_CLASSES = frozenset(LAYERS) | CONTAINERS | WRAPPERS | NOT_DERIVED


def display_name(name: str) -> str:
    return f"nn.{name}"


def make_layer(name: str, args: dict[str, Arg], file: str, origin: Origin | None = None,
               into: ModuleValue | None = None) -> ModuleValue:
    """Build the layer `name` from bound arguments (missing ones take their defaults); `into`
    fills an existing module (a workspace class whose base is this layer)."""
    spec = LAYERS[name]
    full = dict(args)
    for param in spec.params:
        if param.name not in full and param.default is not REQUIRED:
            full[param.name] = Arg(param.default)
    module = into if into is not None else ModuleValue(f"torch.nn.{name}", "layer", origin)
    module.base = name
    missing = [p.name for p in spec.params if p.name not in full and not p.star]
    if missing:
        module.unknown_all = f"{display_name(name)} is missing its argument {missing[0]}"
        return module
    spec.build(module, LayerArgs(display_name(name), full, file))
    for key, arg in full.items():
        if key.startswith("_") or key in ("device", "dtype") or module.has_entry(key):
            continue
        if key not in module.unknown:
            module.attrs.setdefault(key, _attribute_value(name, key, arg.value))
    return module


def _attribute_value(layer: str, key: str, value: Any) -> Any:
    """The attribute torch keeps for an argument (conv sizes become tuples)."""
    if layer.startswith(("Conv", "LazyConv")) and key in (
        "kernel_size", "stride", "padding", "dilation", "output_padding",
    ) and isinstance(value, int):  # fmt: skip
        rank = int(layer.rstrip("d")[-1])
        return (value,) * rank
    if key == "normalized_shape" and isinstance(value, int):
        return (value,)
    if isinstance(value, list) and not isinstance(value, SList):
        return SList(value)
    return value


def _sub(name: str, a: LayerArgs, **args: Arg) -> ModuleValue:
    return make_layer(name, args, a.file)

"""Calls into torch and libraries in the static evaluator: `nn.Parameter`, `nn.Buffer`,
tensor factories and shape-keeping functions, `nn.init.*` (no effect on state), `torch.compile`
(the `_orig_mod.` wrapper), the few standard-library functions model code uses (math, copy,
collections.OrderedDict, functools.partial, dataclasses), and any other library call, which is
not followed: its result is unknown ("library model; not derived") and the modules it receives
may have been changed by it."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import tensor_shapes
from .eval_objects import FieldSpec, Frame, Partial
from .model_calls import (
    NO_DEFAULT,
    Given,
    items_of_value,
    make_arg,
    origin_of,
    touch_modules,
    why,
)
from .model_classes import STDLIB
from .model_values import (
    Dim,
    ModuleValue,
    ObjectValue,
    SDict,
    SList,
    TensorValue,
    Unknown,
    deep_copy,
)
from .torch_layers import Arg

if TYPE_CHECKING:
    import ast

    from .model_eval import Interpreter

_NOT_TENSORS = ("torch.cuda.", "torch.backends.", "torch.distributed.", "torch.is_", "torch.get_",
                "torch.set_", "torch.manual_seed", "torch.device", "torch.finfo", "torch.iinfo",
                "torch.Generator", "torch.no_grad", "torch.enable_grad", "torch.inference_mode")  # fmt: skip


def call_torch(interp: Interpreter, path: str, positional: list[Given], keywords: dict[str, Given],
               frame: Frame, node: ast.Call | None) -> Any:  # fmt: skip
    layer = path.replace("torch.", "", 1) if path.startswith("torch.") else path
    args = [make_arg(interp, frame, path, f"argument {i + 1}", v, n)
            for i, (v, n) in enumerate(positional)]  # fmt: skip
    kwargs = {k: make_arg(interp, frame, path, k, v, n) for k, (v, n) in keywords.items()}
    first = args[0].value if args else (kwargs.get("data") or kwargs.get("input") or Arg(None)).value
    last = path.rsplit(".", 1)[-1]
    if path in ("torch.nn.Parameter", "torch.nn.parameter.Parameter"):
        origin = origin_of(frame, node)
        if first is None:
            return TensorValue((Dim(0),), None, True, origin=origin)
        if isinstance(first, TensorValue):
            return TensorValue(first.dims, first.dtype, True, first.reason, origin=origin)
        return TensorValue(None, None, True, why(first, "its data is not known here"), origin=origin)
    if path in ("torch.nn.Buffer", "torch.nn.parameter.Buffer"):
        persistent = keywords.get("persistent", positional[1] if len(positional) > 1 else (True, None))[0]
        tensor = first if isinstance(first, TensorValue) else TensorValue(None, reason=why(first, "data"))
        result = tensor.with_dims(tensor.dims)
        result.buffer_persistent = persistent if isinstance(persistent, bool) else True
        return result
    if path in ("torch.nn.UninitializedParameter", "torch.nn.parameter.UninitializedParameter"):
        return TensorValue(None, None, True, "an uninitialized (lazy) parameter")
    if path.startswith("torch.nn.init."):
        return first
    if path in ("torch.nn.utils.weight_norm", "torch.nn.utils.spectral_norm",
                "torch.nn.utils.parametrizations.weight_norm",
                "torch.nn.utils.parametrizations.spectral_norm",
                "torch.nn.utils.parametrize.register_parametrization"):  # fmt: skip
        if isinstance(first, ModuleValue):
            first.unknown_all = f"{layer}(...) changes its parameters (not derived)"
        return first
    if path == "torch.compile" and isinstance(first, ModuleValue):
        wrapper = ModuleValue("torch._dynamo.eval_frame.OptimizedModule", "wrapper")
        wrapper.set_child("_orig_mod", first)
        return wrapper
    if path.startswith("torch.jit.") and isinstance(first, ModuleValue):
        return first
    if path.startswith(_NOT_TENSORS):
        return Unknown(f"{layer}(...) is decided when the program runs", maybe_module=False)
    if path.count(".") == 1 or path.startswith("torch.Tensor"):
        return _torch_tensor_function(last, first, args, kwargs)
    if path.startswith("torch.nn.functional."):
        return TensorValue(None, reason=f"{layer}(...) is not followed here")
    touch_modules(positional, keywords, f"{layer}(...) may change it", whole=True)
    return Unknown(f"{layer}(...) is not followed here")


def _torch_tensor_function(name: str, first: Any, args: list[Arg], kwargs: dict[str, Arg]) -> Any:
    if name == "Size":
        items = first if isinstance(first, (list, tuple)) else None
        return tuple(items) if items is not None else Unknown("a size not known here", False)
    if name in tensor_shapes.LIKE:
        if isinstance(first, TensorValue):
            return first.with_dims(first.dims)
        return TensorValue(None, reason="the shape of its input")
    if name in tensor_shapes.SAME_SHAPE and isinstance(first, TensorValue):
        return tensor_shapes.method(first, name, args[1:])
    if name in ("cat", "concat", "concatenate", "stack"):
        return _joined(name, first, args, kwargs)
    if name in ("from_numpy", "load", "as_strided", "frombuffer"):
        return TensorValue(None, reason=f"torch.{name}(...) is decided when the program runs")
    return tensor_shapes.factory(name, args, kwargs)


def _joined(name: str, first: Any, args: list[Arg], kwargs: dict[str, Arg]) -> TensorValue:
    dim_arg = args[1].value if len(args) > 1 else kwargs.get("dim", Arg(0)).value
    tensors = list(first) if isinstance(first, (list, tuple)) and not getattr(first, "unknown", None) else None
    if tensors is None or not tensors or not all(isinstance(t, TensorValue) and t.dims is not None
                                                 for t in tensors) or not isinstance(dim_arg, int):
        return TensorValue(None, reason=f"the inputs of torch.{name}")
    dims = [list(t.dims) for t in tensors]
    rank = len(dims[0])
    if name == "stack":
        at = dim_arg % (rank + 1)
        return TensorValue((*dims[0][:at], Dim(len(tensors)), *dims[0][at:]), tensors[0].dtype)
    at = dim_arg % rank if rank else 0
    sizes = [d[at].value for d in dims]
    joined = Dim(sum(s for s in sizes if s is not None)) if None not in sizes else Dim(None, None, 0, "a size")
    return TensorValue((*dims[0][:at], joined, *dims[0][at + 1:]), tensors[0].dtype)


_MATH: dict[str, Callable[..., Any]] = {"ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt, "log": math.log,
         "log2": math.log2, "log10": math.log10, "exp": math.exp, "gcd": math.gcd,
         "isqrt": math.isqrt, "prod": math.prod, "pow": math.pow, "fabs": math.fabs,
         "trunc": math.trunc, "lcm": math.lcm, "comb": math.comb}  # fmt: skip


def call_library(interp: Interpreter, path: str, positional: list[Given],
                 keywords: dict[str, Given], frame: Frame) -> Any:  # fmt: skip
    values = [v for v, _ in positional]
    named = {k: v for k, (v, _) in keywords.items()}
    head, _, last = path.rpartition(".")
    if head == "math" and last in _MATH:
        if all(isinstance(v, (int, float)) for v in values) and values and not named:
            try:
                return _MATH[last](*values)
            except (ValueError, TypeError, OverflowError):
                return Unknown(f"math.{last} fails here", maybe_module=False)
        if len(values) == 1 and isinstance(values[0], (list, tuple)) and last == "prod":
            items = values[0]
            if all(isinstance(v, (int, float)) for v in items):
                return math.prod(items)
        return Unknown(f"math.{last} of values not known here", maybe_module=False)
    if path in ("copy.deepcopy", "copy.copy") and values:
        value = values[0]
        if isinstance(value, ModuleValue):
            return deep_copy(value)
        if isinstance(value, SList):
            copied = SList(value)
            copied.unknown, copied.repeat = value.unknown, value.repeat
            return copied
        if isinstance(value, SDict):
            copied_dict = SDict(value)
            copied_dict.unknown, copied_dict.ordered = value.unknown, value.ordered
            return copied_dict
        return value
    if path in ("collections.OrderedDict", "typing.OrderedDict"):
        result = SDict()
        result.ordered = True
        if values:
            pairs = values[0].items() if isinstance(values[0], dict) else items_of_value(values[0])
            if pairs is None or getattr(values[0], "unknown", None):
                result.unknown = why(values[0], "its items are not known here")
            else:
                for pair in pairs:
                    if isinstance(pair, tuple) and len(pair) == 2:
                        result[pair[0]] = pair[1]
        result.update(named)
        return result
    if path == "functools.partial" and positional:
        return Partial(positional[0][0], positional[1:], keywords)
    if path == "dataclasses.field":
        return FieldSpec(named.get("default", NO_DEFAULT), named.get("default_factory"))
    if path == "dataclasses.asdict" and values and isinstance(values[0], ObjectValue):
        return SDict(values[0].attrs)
    if path == "dataclasses.replace" and values and isinstance(values[0], ObjectValue):
        return ObjectValue(values[0].type_name, {**values[0].attrs, **named}, values[0].cls)
    if path in ("types.SimpleNamespace", "argparse.Namespace", "easydict.EasyDict"):
        return ObjectValue(path, dict(named))
    if path in ("typing.cast",) and len(values) == 2:
        return values[1]
    if path in ("os.getenv", "os.environ.get"):
        return Unknown(f"{path}(...) is set when the program runs", maybe_module=False)
    if head.split(".")[0] in STDLIB:
        return Unknown(f"{path}(...) is not followed here", maybe_module=False)
    reason = f"{path}(...) comes from a library (library model; not derived)"
    touch_modules(positional, keywords, reason, whole=True)
    return Unknown(reason)

"""The shapes of tensors that `__init__` code makes: torch factories and tensor methods.

`torch.zeros(1, 1, d)`, `torch.randn(n, d) * 0.02`, `torch.ones(n, n).tril().view(1, 1, n, n)`,
`torch.arange(0, d, 2)`, `torch.tensor([[1, 2]])`, `torch.Tensor(out, in)`: these are what
`nn.Parameter(...)` and `register_buffer(...)` receive in real models. Functions here take the
call's arguments (`Arg`s, so each dim keeps the argument that decides it) and return a
`TensorValue`, or `Unknown` when the result is not a tensor whose shape follows from them.
"""

from __future__ import annotations

import math
from typing import Any

from .model_values import Dim, TensorValue, Unknown
from .torch_layers import Arg

FACTORIES = frozenset(["zeros", "ones", "empty", "rand", "randn", "full"])
LIKE = frozenset(["zeros_like", "ones_like", "empty_like", "rand_like", "randn_like", "full_like", "clone"])
# torch functions and tensor methods whose result has the input's shape.
SAME_SHAPE = frozenset(["exp", "log", "log2", "log10", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sigmoid", "sqrt", "rsqrt", "abs", "neg", "sign", "floor", "ceil", "round", "trunc", "reciprocal", "square", "erf", "relu", "tril", "triu", "clamp", "clip", "pow", "exp2", "nan_to_num", "float", "double", "half", "bfloat16", "long", "int", "short", "bool", "byte", "to", "cpu", "cuda", "detach", "clone", "contiguous", "requires_grad_", "pin_memory", "type_as"])
TENSOR_TYPES = {
    "Tensor": None, "FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
    "LongTensor": "int64", "IntTensor": "int32", "ShortTensor": "int16", "ByteTensor": "uint8",
    "BoolTensor": "bool", "BFloat16Tensor": "bfloat16",
}  # fmt: skip
CAST = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16",
        "long": "int64", "int": "int32", "short": "int16", "bool": "bool", "byte": "uint8"}  # fmt: skip
DTYPES = {
    "float32": "float32", "float": "float32", "float64": "float64", "double": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "short": "int16",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "complex64": "complex64",
}  # fmt: skip


class TorchDtype:
    """`torch.long` and friends, as a value."""

    def __init__(self, name: str) -> None:
        self.name = name


def _dtype(kwargs: dict[str, Arg], default: str | None = None) -> str | None:
    given = kwargs.get("dtype")
    if given is not None and isinstance(given.value, TorchDtype):
        return given.value.name
    return default


def _dim(arg: Arg) -> Dim:
    value = arg.value
    if isinstance(value, int) and not isinstance(value, bool):
        return Dim(value, arg.source, 1 if arg.source else 0)
    reason = value.reason if isinstance(value, Unknown) else f"{value!r} is not a size"
    return Dim(None, arg.source, 0, reason)


def size_dims(args: list[Arg]) -> tuple[Dim, ...] | None:
    """`(2, 3)`, `((2, 3),)`, `([2, 3],)` or a Size → dims; None when the rank is not known."""
    if len(args) == 1 and isinstance(args[0].value, (tuple, list)):
        sizes = args[0]
        if getattr(sizes.value, "unknown", None):
            return None
        if len(sizes.parts) == len(sizes.value):
            return tuple(_dim(p) for p in sizes.parts)
        return tuple(_dim(Arg(v, sizes.source)) for v in sizes.value)
    if len(args) == 1 and isinstance(args[0].value, TensorValue):  # torch.Size of a shape
        return None
    if any(isinstance(a.value, Unknown) and a.source is None for a in args):
        return None
    return tuple(_dim(a) for a in args)


def factory(name: str, args: list[Arg], kwargs: dict[str, Arg]) -> TensorValue | Unknown:
    """`torch.<name>(...)` for the factories that make new tensors."""
    if name in FACTORIES:
        sizes = args[:1] if name == "full" else args
        if "size" in kwargs:
            sizes = [kwargs["size"]]
        dims = size_dims(sizes)
        return TensorValue(dims, _dtype(kwargs), reason=None if dims else "its size")
    if name == "eye":
        rows = args[0] if args else kwargs.get("n")
        cols = args[1] if len(args) > 1 else kwargs.get("m", rows)
        if rows is None or cols is None:
            return Unknown("torch.eye without a size", maybe_module=False)
        return TensorValue((_dim(rows), _dim(cols)), _dtype(kwargs))
    if name == "arange":
        return _arange(args, kwargs)
    if name in ("linspace", "logspace"):
        steps = args[2] if len(args) > 2 else kwargs.get("steps")
        if steps is None:
            return Unknown(f"torch.{name} without steps", maybe_module=False)
        return TensorValue((_dim(steps),), _dtype(kwargs))
    if name in ("tensor", "as_tensor"):
        return literal_tensor(args[0].value if args else None, _dtype(kwargs))
    if name in ("randint", "randperm"):
        if name == "randperm" and args:
            return TensorValue((_dim(args[0]),), _dtype(kwargs, "int64"))
        size = kwargs.get("size") or (args[-1] if args else None)
        if size is None:
            return Unknown("torch.randint without a size", maybe_module=False)
        return TensorValue(size_dims([size]), _dtype(kwargs, "int64"))
    if name in TENSOR_TYPES:
        return _tensor_type(name, args)
    return Unknown(f"torch.{name}(...) is not followed here", maybe_module=False)


def _arange(args: list[Arg], kwargs: dict[str, Arg]) -> TensorValue | Unknown:
    values = [a.value for a in args] + [kwargs[k].value for k in ("start", "end", "step")
                                        if k in kwargs]  # fmt: skip
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or not (
        1 <= len(values) <= 3
    ):
        return TensorValue((Dim(None, None, 0, "the range of torch.arange is not known here"),))
    start, end, step = (0, values[0], 1) if len(values) == 1 else (*values[:2], 1)
    if len(values) == 3:
        step = values[2]
    length = max(math.ceil((end - start) / step), 0) if step else 0
    floats = any(isinstance(v, float) for v in values)
    return TensorValue((Dim(length, args[0].source if len(args) == 1 else None,
                            1 if len(args) == 1 and args[0].source else 0),),
                       _dtype(kwargs, "float32" if floats else "int64"))  # fmt: skip


def literal_tensor(data: Any, dtype: str | None = None) -> TensorValue | Unknown:
    """`torch.tensor([[1, 2], [3, 4]])` → [2, 2]; a scalar → []."""
    dims: list[Dim] = []
    element = data
    while isinstance(element, (list, tuple)):
        dims.append(Dim(len(element)))
        if not element:
            break
        element = element[0]
    if isinstance(element, TensorValue):
        return Unknown("torch.tensor of tensors is not followed here", maybe_module=False)
    if isinstance(element, Unknown):
        if dims:
            return TensorValue(None, dtype, reason=element.reason)
        return TensorValue((), dtype)
    if dtype is None:
        dtype = "int64" if isinstance(element, int) and not isinstance(element, bool) else None
        dtype = "bool" if isinstance(element, bool) else dtype
    return TensorValue(tuple(dims), dtype)


def _tensor_type(name: str, args: list[Arg]) -> TensorValue | Unknown:
    """`torch.Tensor(3, 4)` makes a 3x4 tensor, `torch.Tensor([1, 2])` one from data."""
    dtype = TENSOR_TYPES[name]
    if not args:
        return TensorValue((Dim(0),), dtype)
    if len(args) == 1 and isinstance(args[0].value, (list, tuple)):
        return literal_tensor(args[0].value, dtype or "float32")
    if len(args) == 1 and isinstance(args[0].value, TensorValue):
        return args[0].value.with_dims(args[0].value.dims)
    return TensorValue(size_dims(args), dtype)


def broadcast(left: TensorValue, right: TensorValue) -> TensorValue:
    """The shape of an elementwise operation on two tensors."""
    if left.dims is None or right.dims is None:
        return TensorValue(None, left.dtype, reason=left.reason or right.reason)
    dims: list[Dim] = []
    a, b = list(left.dims), list(right.dims)
    while a or b:
        x = a.pop() if a else Dim(1)
        y = b.pop() if b else Dim(1)
        if x.value == 1:
            dims.append(y)
        elif y.value == 1 or x.value == y.value:
            dims.append(x)
        else:
            dims.append(Dim(None, None, 0, "the shapes of an elementwise operation"))
    return TensorValue(tuple(reversed(dims)), left.dtype)


def method(tensor: TensorValue, name: str, args: list[Arg]) -> Any:
    """`tensor.<name>(...)`: a new TensorValue, a size, or Unknown."""
    dims = tensor.dims
    if name in SAME_SHAPE or (name.endswith("_") and not name.startswith("_")):
        result = tensor.with_dims(dims)
        result.dtype = CAST.get(name, tensor.dtype)
        if name == "to" and args and isinstance(args[0].value, TorchDtype):
            result.dtype = args[0].value.name
        return result
    if name == "size" or name == "dim":
        if dims is None:
            return Unknown("the tensor's shape is not known here", maybe_module=False)
        if name == "dim":
            return len(dims)
        if args and isinstance(args[0].value, int):
            dim = dims[args[0].value]
            return dim.value if dim.value is not None else Unknown(dim.reason or "", False)
        return shape_tuple(tensor)
    if name == "numel" and dims is not None and all(d.value is not None for d in dims):
        return math.prod(d.value for d in dims if d.value is not None)
    if dims is None:
        return TensorValue(None, tensor.dtype, reason=tensor.reason)
    new = _reshaped(dims, name, args)
    if new is None:
        return TensorValue(None, tensor.dtype, reason=f"the shape after .{name}(...)")
    return TensorValue(new, tensor.dtype)


def shape_tuple(tensor: TensorValue) -> Any:
    if tensor.dims is None:
        return Unknown("the tensor's shape is not known here", maybe_module=False)
    return tuple(d.value if d.value is not None else Unknown(d.reason or "", False)
                 for d in tensor.dims)  # fmt: skip


def _ints(args: list[Arg]) -> list[int] | None:
    values = args[0].value if len(args) == 1 and isinstance(args[0].value, (tuple, list)) else [
        a.value for a in args
    ]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return list(values)
    return None


def _reshaped(dims: tuple[Dim, ...], name: str, args: list[Arg]) -> tuple[Dim, ...] | None:
    rank = len(dims)
    if name in ("t", "T") and rank <= 2:
        return tuple(reversed(dims))
    if name in ("view", "reshape", "expand", "repeat", "permute", "transpose", "unsqueeze",
                "squeeze", "flatten"):  # fmt: skip
        ints = _ints(args) if args else []
        if ints is None:
            return None
        if name == "unsqueeze" and len(ints) == 1:
            at = ints[0] if ints[0] >= 0 else rank + 1 + ints[0]
            return (*dims[:at], Dim(1), *dims[at:])
        if name == "squeeze":
            if not ints:
                return tuple(d for d in dims if d.value != 1)
            at = ints[0] % rank if rank else 0
            return tuple(d for i, d in enumerate(dims) if i != at or d.value != 1)
        if name == "transpose" and len(ints) == 2:
            order = list(range(rank))
            a, b = ints[0] % rank, ints[1] % rank
            order[a], order[b] = order[b], order[a]
            return tuple(dims[i] for i in order)
        if name == "permute" and sorted(i % rank for i in ints) == list(range(rank)):
            return tuple(dims[i % rank] for i in ints)
        if name == "flatten" and not ints:
            return (_product(dims),)
        if name == "expand" and len(ints) >= rank:
            lead = len(ints) - rank
            return tuple(Dim(v) if v != -1 else dims[i - lead] for i, v in enumerate(ints))
        if name == "repeat" and len(ints) >= rank:
            padded = (Dim(1),) * (len(ints) - rank) + dims
            return tuple(Dim(d.value * k) if d.value is not None else d
                         for d, k in zip(padded, ints, strict=True))  # fmt: skip
        if name in ("view", "reshape"):
            return _view(dims, ints)
    return None


def _product(dims: tuple[Dim, ...]) -> Dim:
    if any(d.value is None for d in dims):
        return Dim(None, None, 0, "a dimension is not known here")
    return Dim(math.prod(d.value for d in dims if d.value is not None))


def _view(dims: tuple[Dim, ...], sizes: list[int]) -> tuple[Dim, ...] | None:
    total = _product(dims).value
    if sizes.count(-1) > 1:
        return None
    if -1 in sizes:
        known = math.prod(v for v in sizes if v != -1)
        if total is None or not known:
            return tuple(Dim(v) if v != -1 else Dim(None, None, 0, "inferred by view") for v in sizes)
        sizes = [v if v != -1 else total // known for v in sizes]
    # Keep each original dim (with its source) where the sizes agree position by position.
    if [d.value for d in dims] == sizes:
        return dims
    return tuple(Dim(v) for v in sizes)

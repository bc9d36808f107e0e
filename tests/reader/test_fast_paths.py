"""The reader's fast paths say exactly what its general code says, for every kind of argument.

`_TensorV2Builder` checks and builds the usual `_rebuild_tensor_v2` call inline; every other call
goes through `_rebuild_tensor_v2` itself. Here both are given the same arguments, usual and
hostile, and must agree: same record (and `inside` true only for a view inside its storage), or
the same problem and an inert stub. Likewise `_SizeBuilder` and `torch.Size`'s general builder,
and the tree builder's column-by-column state_dict and its tensor-by-tensor one.
"""

from __future__ import annotations

import itertools
import math
from operator import mul
from typing import Any

import pytest

from pthscope.reader.counts import Tally
from pthscope.reader.dtypes import itemsize
from pthscope.reader.global_risk import GlobalUse
from pthscope.reader.limits import DEFAULT_LIMITS, Limits
from pthscope.reader.model import Problem, TensorInfo
from pthscope.reader.tree import TreeBuilder
from pthscope.reader.unpickler import (
    StorageRef,
    Stub,
    TensorRecord,
    UnpickleLog,
    _Builder,
    _rebuild_tensor_v2,
    _SizeBuilder,
    _TensorV2Builder,
    _torch_size,
)

_NAME = "torch._utils._rebuild_tensor_v2"
_DIMS: list[Any] = [1, 3, 0, -1, 2**62, 2**63 - 1, 2**63, -(2**63), True, False, 1.0, "2", (2,), None]
_STORAGES = [
    StorageRef("0", "float32", "cpu", 64, 256),
    StorageRef("1", "float16", "cuda:0", 8, None),
    StorageRef("2", "float32", "cpu", 100, 40, view_offset=4, view_numel=10),  # a legacy view
    StorageRef("3", "no-such-dtype", "cpu", 6, 6),
]


def _builders() -> tuple[_Builder, _Builder, UnpickleLog, UnpickleLog]:
    fast_log, plain_log = UnpickleLog(), UnpickleLog()
    fast = _TensorV2Builder(_NAME, _rebuild_tensor_v2, GlobalUse("torch._utils", "_rebuild_tensor_v2"), fast_log)
    plain = _Builder(_NAME, _rebuild_tensor_v2, GlobalUse("torch._utils", "_rebuild_tensor_v2"), plain_log)
    return fast, plain, fast_log, plain_log


def _fits(record: TensorRecord) -> bool:
    shape, stride, offset, nbytes = record.shape, record.stride, record.storage_offset, record.storage_nbytes
    if not shape:
        return True
    if min(shape) <= 0 or min(stride) < 0:
        return False
    last = offset + sum(map(mul, shape, stride)) - sum(stride)
    return (last + 1) * itemsize(record.dtype) <= nbytes


def _same(args: tuple[Any, ...]) -> None:
    fast, plain, fast_log, plain_log = _builders()
    got, want = fast(*args), plain(*args)
    if type(want) is TensorRecord:
        assert type(got) is TensorRecord and got[:10] == want[:10], args
        assert got.inside is False or (got.inside and _fits(got)), args
    else:  # an inert stub of the global, as its own problem says
        assert isinstance(want, Stub) and isinstance(got, Stub), args
        assert type(got).qualname == type(want).qualname == _NAME and got.args == want.args, args
    assert fast_log.problems == plain_log.problems, args


def test_sizes_and_strides_of_every_kind() -> None:
    for ndim in (1, 2, 3):
        pairs = itertools.product(_DIMS, repeat=2) if ndim < 3 else ((d, d) for d in _DIMS)
        for d, s in pairs:
            size = (d,) * ndim if ndim != 2 else (d, 3)
            stride = (s,) * ndim if ndim != 2 else (3, s)
            for storage in _STORAGES:
                _same((storage, 0, size, stride, False, {}))
                _same((storage, 2, tuple(reversed(size)), tuple(reversed(stride)), True))


def test_scalars_views_offsets_and_shapes_as_lists() -> None:
    for storage in _STORAGES:
        for offset in (0, 1, 63, 64, 2**63 - 1, 2**63, -1, True, 1.5, None):
            _same((storage, offset, (), ()))
            _same((storage, offset, (4, 4), (4, 1), False))
            _same((storage, offset, (2, 2), (1, 2), False, {}, "extra"))
        _same((storage, 0, [4, 4], [4, 1], False))  # lists: the general way
        _same((storage, 0, (4, 4), (4,), False))  # lengths differ
        _same((storage, 0, (1,) * 65, (1,) * 65, False))  # more than 64 dimensions


def test_wrong_arguments_and_counts() -> None:
    storage = _STORAGES[0]
    for args in [(), (storage,), (storage, 0), (storage, 0, (4,)), ("storage", 0, (4,), (1,)),
                 (storage, 0, (4,), (1,), "yes"), (storage, 0, (4,), (1,), 1), (None, None, None, None, None)]:
        _same(args)


def test_torch_size_of_every_kind() -> None:
    for args in [((4, 2),), ((),), ([4, 2],), ((4, "x"),), ("42",), (None,), (), ((1,), (2,)), ({},)]:
        fast_log, plain_log = UnpickleLog(), UnpickleLog()
        use = GlobalUse("torch", "Size")
        got = _SizeBuilder("torch.Size", _torch_size, use, fast_log)(*args)
        want = _Builder("torch.Size", _torch_size, use, plain_log)(*args)
        if type(want) is tuple:
            assert type(got) is tuple and got == want, args
        else:  # an inert stub of the global, as its own problem says
            assert isinstance(got, Stub) and type(got).qualname == type(want).qualname and got.args == want.args, args
        assert fast_log.problems == plain_log.problems, args


def _record(shape: tuple[int, ...], dtype: str = "float32", location: str = "cpu", kind: str = "tensor",
            layout: str = "strided", inside: bool = True, storage: str = "0") -> TensorRecord:
    stride = [1] * len(shape)
    return tuple.__new__(TensorRecord, (list(shape), stride, 0, dtype, kind == "parameter", kind, location, storage,
                                        4 * (shape[0] if shape else 1), layout, inside))


_STATE_DICTS: dict[str, dict[Any, Any]] = {
    "usual": {f"layer.{i}.weight": _record((i + 1,)) for i in range(6)},
    "parameters and layouts": {"a": _record((2,), kind="parameter"), "b": _record((3,), layout="sparse_coo"),
                               "c": _record(())},
    "a view past its storage": {"a": _record((2,)), "b": _record((9,), inside=False), "c": _record((2,), inside=False)},
    "an unknown dtype": {"a": _record((2,)), "b": _record((2,), dtype="float99"), "c": _record((2,), dtype="float99")},
    "a location torch cannot restore": {"a": _record((2,), location="cuda:1"), "b": _record((2,), location="tpu"),
                                        "c": _record((2,), location="tpu")},
    "a key that is not text": {"a": _record((2,)), 3: _record((2,)), (1, "x"): _record((2,))},
    "a long key": {"a": _record((2,)), "k" * 5000: _record((2,))},
    "a value that is not a tensor": {"a": _record((2,)), "step": 3, "b": _record((2,))},
    "shared storages": {"a": _record((2,), storage="s"), "b": _record((2,), storage="s"), "c": _record((2,))},
}


@pytest.mark.parametrize("name", list(_STATE_DICTS))
@pytest.mark.parametrize("max_nodes", [DEFAULT_LIMITS.max_nodes, 4])
def test_a_state_dict_by_columns_is_what_each_tensor_makes(name: str, max_nodes: int,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Limits(max_nodes=max_nodes)
    state_dict = {"model": _STATE_DICTS[name], "epoch": 1}

    def built() -> tuple[Any, list[Any], list[Problem]]:
        problems: list[Problem] = []
        builder = TreeBuilder(limits, problems)
        root = builder.build(state_dict)
        return root.to_json(), [t.to_json() for t in builder.tensors], problems

    by_columns = TreeBuilder._state_dict
    made: list[bool] = []
    monkeypatch.setattr(TreeBuilder, "_state_dict", lambda *args: made.append(by_columns(*args)) or made[-1])
    fast = built()
    # The usual ones are made by columns; each other one tensor by tensor (where the problem is named).
    assert made == [False, name in ("usual", "parameters and layouts", "shared storages") and max_nodes > 4]
    monkeypatch.setattr(TreeBuilder, "_state_dict", lambda *args: False)
    assert fast == built()


def _tensor(role: str, kind: str, requires_grad: bool, shape: list[int], dtype: str = "float32") -> TensorInfo:
    tensor = TensorInfo([f"t{role}{kind}{requires_grad}{shape}"], shape, dtype, requires_grad, kind)  # type: ignore[arg-type]
    tensor.role = role  # type: ignore[assignment]
    return tensor


_TENSOR_SETS = {
    "a state_dict": [_tensor("parameter", "tensor", False, [3, 4]), _tensor("parameter", "tensor", False, [5])],
    "a whole model": [_tensor("parameter", "parameter", True, [3, 4]), _tensor("parameter", "parameter", False, [2]),
                      _tensor("buffer", "buffer", False, [7], "int64"), _tensor("parameter", "tensor", True, [1])],
    "every role": [_tensor(role, kind, grad, [i + 1, 2], dtype) for i, (role, kind, grad, dtype) in enumerate(
        itertools.product(("parameter", "buffer", "optimizer_state", "other"), ("parameter", "tensor"), (True, False),
                          ("float16", "int8")))],
    "empty shapes": [_tensor("parameter", "parameter", False, []), _tensor("other", "tensor", False, [0, 3])],
}


@pytest.mark.parametrize("name", list(_TENSOR_SETS))
@pytest.mark.parametrize("tied", [{}, {1: 0, 0: 0}])
def test_a_tally_by_columns_is_what_each_tensor_adds(name: str, tied: dict[int, int]) -> None:
    tensors = _TENSOR_SETS[name]
    one_by_one = Tally()
    for i, tensor in enumerate(tensors):
        one_by_one.add(tensor, i, tied)
    by_columns, given_columns = Tally(), Tally()
    by_columns.add_all(tensors, tied)
    numels = [math.prod(t.shape) for t in tensors]
    given_columns.add_all(tensors, tied, numels, [n * itemsize(t.dtype) for n, t in zip(numels, tensors, strict=True)])
    assert by_columns.to_json() == one_by_one.to_json() == given_columns.to_json()
    parameters = [t for i, t in enumerate(tensors) if t.role == "parameter" and (i not in tied or tied[i] == i)]
    for state in ("trainable", "frozen"):  # each grad state as TensorInfo.grad_state says it
        assert by_columns.to_json()["parameter"][state] == sum(t.numel for t in parameters if t.grad_state == state)

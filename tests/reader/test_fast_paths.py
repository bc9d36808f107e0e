"""The reader's fast paths say exactly what its general code says, for every kind of argument.

`_TensorV2Builder` checks and builds the usual `_rebuild_tensor_v2` call inline; every other call
goes through `_rebuild_tensor_v2` itself. Here both are given the same arguments, usual and
hostile, and must agree: same record (and `inside` true only for a view inside its storage), or
the same problem and an inert stub.
"""

from __future__ import annotations

import itertools
from operator import mul
from typing import Any

from pthscope.reader.dtypes import itemsize
from pthscope.reader.global_risk import GlobalUse
from pthscope.reader.unpickler import (
    StorageRef,
    Stub,
    TensorRecord,
    UnpickleLog,
    _Builder,
    _rebuild_tensor_v2,
    _TensorV2Builder,
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

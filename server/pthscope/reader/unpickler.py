"""A restricted unpickler that builds inert records and never imports or calls what a file names.

`find_class` is the only door through which a pickle reaches code. Here it returns, for every
global, either one of our own record builders (tensor rebuild functions, dtypes, collections) or
an inert `Stub` class that remembers its qualified name, arguments and state. Nothing the file
names is imported. Persistent ids (torch storages) go to a callback supplied by the format reader.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any, ClassVar

from .dtypes import STORAGE_DTYPES, dtype_from_numpy_code, itemsize, itemsize_of_numpy_code
from .global_risk import canonical_global_name, classify_global
from .model import GlobalRef, TensorInfo, contiguous_stride
from .safe_repr import safe_repr


@dataclass(slots=True)
class StorageRef:
    """A storage named by a persistent id: key, dtype, location and element count as saved."""

    key: str
    dtype: str
    location: str
    numel: int
    nbytes: int | None = None
    view_offset: int = 0  # legacy format: a view starting this many elements into the storage


# Rebuild functions produce the model's TensorInfo directly; tree.py gives it its path and kind.


def _tensor_on(storage: StorageRef, storage_offset: int, shape: list[int], stride: list[int],
               requires_grad: bool, dtype: str) -> TensorInfo:
    nbytes = storage.nbytes if storage.nbytes is not None else storage.numel * itemsize(storage.dtype)
    return TensorInfo([], shape, dtype, requires_grad, "tensor", storage.location, stride,
                      storage_offset, storage.key, nbytes)


def _tensor_without_storage(shape: list[int], stride: list[int], requires_grad: bool, dtype: str,
                            location: str = "cpu", layout: str = "strided") -> TensorInfo:
    return TensorInfo([], shape, dtype, requires_grad, "tensor", location, stride, layout=layout)


@dataclass
class NdarrayRecord:
    shape: list[int] = field(default_factory=list)
    dtype: str = "unknown"
    nbytes: int = 0

    def __setstate__(self, state: Any) -> None:
        # numpy's ndarray.__reduce__ state: (version, shape, dtype, is_fortran, rawdata)
        if isinstance(state, tuple) and len(state) >= 5:
            self.shape = _shape(state[1])
            if isinstance(state[2], NumpyDtype):
                self.dtype = state[2].name
            raw = state[4]
            self.nbytes = len(raw) if isinstance(raw, (bytes, bytearray, str)) else 0


class _Sealed(type):
    """Metaclass of the classes handed to pickles: BUILD with slot state cannot set their class
    attributes, which every later file read by this process would otherwise see."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__}.{name} cannot be set")

    def __delattr__(cls, name: str) -> None:
        raise AttributeError(f"{cls.__name__}.{name} cannot be deleted")


class _SealedCall:
    """A builder function handed to pickles, without attributes a BUILD could set (a plain
    function's __defaults__, for one, would change it for every later file)."""

    __slots__ = ("_fn",)
    _fn: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any]) -> None:
        object.__setattr__(self, "_fn", fn)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{name} cannot be set")

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)


class NumpyDtype(metaclass=_Sealed):
    saved_type = "numpy.dtype"

    def __init__(self, code: Any = "", *_: Any) -> None:
        self.code = code if isinstance(code, str) else safe_repr(code)
        self.name = dtype_from_numpy_code(self.code)

    def __setstate__(self, state: Any) -> None:
        pass


@dataclass
class DtypeRef:
    name: str


class Stub:
    """An instance of a class the file names but we never import."""

    qualname: ClassVar[str] = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: list[Any]
    setitems: dict[Any, Any] | None

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        self.items = []
        self.setitems = None
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.setitems is None:
            self.setitems = {}
        self.setitems[key] = value


class _SavedDict(dict, metaclass=_Sealed):
    saved_type: ClassVar[str] = "dict"


class _OrderedDict(_SavedDict):
    saved_type = "collections.OrderedDict"


class _Counter(_SavedDict):
    saved_type = "collections.Counter"


class _DefaultDict(_SavedDict):
    saved_type = "collections.defaultdict"

    def __init__(self, *args: Any) -> None:
        # defaultdict(factory, items): the factory is a global we never call.
        super().__init__(*(a for a in args[1:2] if isinstance(a, (dict, list))))


class UnpickleLog:
    """What the unpickler saw: globals (with counts) and non-fatal problems."""

    MAX_PROBLEMS = 100  # listed; beyond that only counted (a hostile file may cause millions)

    def __init__(self) -> None:
        self.globals: dict[str, GlobalRef] = {}
        self.problems: list[str] = []
        self.more_problems = 0

    def problem(self, message: str) -> None:
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.more_problems += 1

    def saw_global(self, name: str) -> None:
        ref = self.globals.get(name)
        if ref:
            ref.count += 1
        else:
            self.globals[name] = GlobalRef(name=name, risk=classify_global(name))


PersistentLoad = Callable[[Any], Any]


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], persistent_load: PersistentLoad, log: UnpickleLog):
        super().__init__(file, encoding="latin1")
        # An instance attribute, not a method: one call frame less per storage.
        self.persistent_load = persistent_load  # type: ignore[method-assign]
        self.log = log
        self._stub_classes: dict[str, type[Stub]] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = canonical_global_name(str(module), str(name))
        self.log.saw_global(full)
        builder = _BUILDERS.get(full)
        if builder is not None:
            return builder(self.log) if isinstance(builder, _LogBound) else builder
        if full.startswith(("torch.", "torch.cuda.")):
            attribute = full.rsplit(".", 1)[1]
            if attribute in STORAGE_DTYPES:
                return _StorageType(STORAGE_DTYPES[attribute])
            if full.count(".") == 1 and classify_global(full) == "safe" and attribute[:1].islower():
                return DtypeRef(attribute)
        return self._stub_class(full)

    def _stub_class(self, full: str) -> type[Stub]:
        cls = self._stub_classes.get(full)
        if cls is None:
            cls = type(full.rsplit(".", 1)[-1], (Stub,), {"qualname": full})
            self._stub_classes[full] = cls
        return cls


@dataclass
class _StorageType:
    dtype: str


class _LogBound:
    """A builder that needs the log to report problems (constructed per unpickler)."""

    def __init__(self, make: Callable[[UnpickleLog], Any]):
        self.make = make

    def __call__(self, log: UnpickleLog) -> Any:
        return self.make(log)


_INT64 = 1 << 63


def _int_list(value: Any) -> list[int]:
    """Strides and the like: int64 values, as torch stores them."""
    if type(value) in (tuple, list):
        for v in value:
            if type(v) is not int or not -_INT64 <= v < _INT64:
                break
        else:
            return list(value)
    raise ValueError(f"expected a tuple of int64 values, got {safe_repr(value)}")


def _shape(value: Any) -> list[int]:
    """A size: int64 values whose product (numel) is an int64 too, as in torch. A size beyond
    that cannot come from torch, and its numel could not even be printed (Python refuses str()
    of ints over 4,300 digits)."""
    if type(value) in (tuple, list):
        numel = 1
        for v in value:
            if type(v) is not int or not -_INT64 <= v < _INT64:
                break
            numel *= v
            if not -_INT64 <= numel < _INT64 and 0 not in value:
                break
        else:
            return list(value)
    raise ValueError(f"expected a tensor size (int64 values, numel within int64), got {safe_repr(value)}")


def _tolerant(name: str) -> _LogBound:
    """Wrap a rebuild function so malformed arguments become a problem and a stub, not a crash."""

    def bind(log: UnpickleLog) -> Callable[..., Any]:
        rebuild = _REBUILDERS[name]
        fallback: list[type[Stub]] = []  # one stub class per unpickler, not one per failure

        def call(*args: Any) -> Any:
            try:
                return rebuild(*args)
            except Exception as exc:  # malformed pickle: report and keep reading
                log.problem(f"{name}: cannot rebuild tensor ({exc})")
                if not fallback:
                    fallback.append(type(name.rsplit(".", 1)[-1], (Stub,), {"qualname": name}))
                return fallback[0](*args)

        return call

    return _LogBound(bind)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> TensorInfo:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride, False)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, *_: Any) -> TensorInfo:
    # The hot path: one call per tensor of every checkpoint.
    if not isinstance(storage, StorageRef):
        raise ValueError("storage is not a storage reference")
    if type(storage_offset) is not int or not -_INT64 <= storage_offset < _INT64:
        raise ValueError("storage offset is not an int64")
    view_offset = storage.view_offset
    return _tensor_on(storage, storage_offset + view_offset if view_offset else storage_offset,
                      _shape(size), _int_list(stride), requires_grad is True, storage.dtype)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any, backward_hooks: Any, dtype: Any, *_: Any) -> TensorInfo:
    record = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad)
    if isinstance(dtype, DtypeRef):
        record.dtype = dtype.name
    return record


def _rebuild_parameter(data: Any, requires_grad: Any, *_: Any) -> TensorInfo:
    if not isinstance(data, TensorInfo):
        raise ValueError("parameter data is not a tensor")
    return replace(data, kind="parameter", requires_grad=requires_grad is True, path=[])


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    # Tensor subclasses: func is one of our builders (or a stub class); both are inert.
    result = func(*args) if isinstance(args, tuple) else func()
    if isinstance(result, TensorInfo) and getattr(new_type, "qualname", "") == "torch.nn.parameter.Parameter":
        result.kind = "parameter"
    return result


def _rebuild_qtensor(storage: Any, storage_offset: Any, size: Any, stride: Any,
                     quantizer_params: Any, requires_grad: Any = False, *_: Any) -> TensorInfo:
    record = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad)
    record.layout = "quantized"
    return record


def _rebuild_meta_tensor_no_storage(dtype: Any, size: Any, stride: Any, requires_grad: Any = False,
                                    *_: Any) -> TensorInfo:
    return _tensor_without_storage(_shape(size), _int_list(stride), requires_grad is True,
                                   dtype.name if isinstance(dtype, DtypeRef) else "unknown", location="meta")


def _rebuild_wrapper_subclass(cls: Any, dtype: Any, size: Any, stride: Any, storage_offset: Any,
                              layout: Any, device: Any, requires_grad: Any = False, *_: Any) -> TensorInfo:
    record = _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)
    record.location = device if isinstance(device, str) else "unknown"
    record.layout = getattr(cls, "qualname", "subclass")
    return record


def _rebuild_from_numpy(data: Any, dtype: Any, device: Any, requires_grad: Any = False,
                        *_: Any) -> TensorInfo:
    if isinstance(data, TensorInfo):
        record = replace(data, path=[])
    elif isinstance(data, NdarrayRecord):
        record = _tensor_without_storage(data.shape, contiguous_stride(data.shape), False, data.dtype)
    else:
        raise ValueError("device tensor data is neither a tensor nor an array")
    if isinstance(dtype, DtypeRef):
        record.dtype = dtype.name
    record.location = device if isinstance(device, str) else record.location
    record.requires_grad = requires_grad is True
    return record


def _rebuild_sparse_tensor(layout: Any, data: Any) -> TensorInfo:
    """COO: (indices, values, size[, is_coalesced]); CSR/CSC/BSR/BSC: (compressed indices,
    plain indices, values, size). The record has the sparse tensor's shape and the values'
    dtype and storage; a sparse tensor has no strides."""
    if not isinstance(data, tuple) or len(data) not in (3, 4):
        raise ValueError("sparse tensor data is not a 3- or 4-tuple")
    name = _layout_name(layout)
    coo = name == "sparse_coo" if name else len(data) == 3 or type(data[3]) is bool
    values, size = (data[1], data[2]) if coo else (data[2], data[3])
    shape = _shape(size)
    layout_text = name or ("sparse_coo" if coo else "sparse_compressed")
    if not isinstance(values, TensorInfo):
        raise ValueError("sparse tensor values are not a tensor")
    return replace(values, path=[], shape=shape, stride=[], layout=layout_text)


def _layout_name(layout: Any) -> str | None:
    """`torch.sparse_csr` → "sparse_csr", whether pickled as a global or via _get_layout("…")."""
    text = getattr(layout, "qualname", None) if isinstance(layout, type) else None
    if isinstance(layout, Stub) and layout.args and isinstance(layout.args[0], str):
        text = layout.args[0]
    if isinstance(layout, DtypeRef):
        text = layout.name
    return text.rsplit(".", 1)[-1][:40] if isinstance(text, str) else None


def _rebuild_nested_tensor(buffer: Any, sizes: Any, *_: Any) -> TensorInfo:
    if not isinstance(buffer, TensorInfo):
        raise ValueError("nested tensor buffer is not a tensor")
    return replace(buffer, path=[], layout="nested")


_REBUILDERS: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch._tensor._rebuild_from_type": _rebuild_from_type_v2,
    "torch._utils._rebuild_qtensor": _rebuild_qtensor,
    "torch._utils._rebuild_meta_tensor_no_storage": _rebuild_meta_tensor_no_storage,
    "torch._utils._rebuild_wrapper_subclass": _rebuild_wrapper_subclass,
    "torch._utils._rebuild_device_tensor_from_numpy": _rebuild_from_numpy,
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": _rebuild_from_numpy,
    "torch._utils._rebuild_sparse_tensor": _rebuild_sparse_tensor,
    "torch._utils._rebuild_nested_tensor": _rebuild_nested_tensor,
}


def _torch_size(items: Any = ()) -> tuple[Any, ...]:
    return tuple(items) if isinstance(items, (list, tuple)) else ()


def _torch_device(kind: Any = "cpu", index: Any = None) -> str:
    name = kind if type(kind) is str else "?"  # never str() what a file made: it may be a DAG bomb
    if index is None:
        return name
    return f"{name}:{index}" if type(index) is int and -_INT64 <= index < _INT64 else f"{name}:?"


def _codecs_encode(text: Any, encoding: Any = "utf-8", *_: Any) -> bytes:
    if isinstance(text, str) and encoding in ("latin1", "latin-1", "utf-8", "utf8"):
        return text.encode(encoding)
    raise ValueError("_codecs.encode called with something other than text")


def _safe_bytearray(data: Any = b"", *_: Any) -> bytearray:
    if isinstance(data, (bytes, bytearray)):
        return bytearray(data)
    raise ValueError("bytearray built from something other than bytes")


def _safe_complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if isinstance(real, (int, float)) and isinstance(imag, (int, float)):
        return complex(real, imag)
    raise ValueError("complex built from something other than numbers")


def _safe_set(items: Any = ()) -> set[Any]:
    return set(items) if isinstance(items, (list, tuple, set, frozenset)) else set()


def _safe_frozenset(items: Any = ()) -> frozenset[Any]:
    return frozenset(_safe_set(items))


def _numpy_reconstruct(subtype: Any = None, shape: Any = None, dtype: Any = None, *_: Any) -> NdarrayRecord:
    return NdarrayRecord()


_SCALAR_FORMATS = {"f2": "<e", "f4": "<f", "f8": "<d", "i1": "<b", "i2": "<h", "i4": "<i",
                   "i8": "<q", "u1": "<B", "u2": "<H", "u4": "<I", "u8": "<Q", "b1": "<?"}


def _numpy_scalar(dtype: Any = None, raw: Any = b"", *_: Any) -> Any:
    """numpy scalars (e.g. a saved best accuracy) decoded with struct, never with numpy."""
    if isinstance(dtype, NumpyDtype) and isinstance(raw, bytes):
        code = dtype.code.lstrip("<>=|")
        fmt = _SCALAR_FORMATS.get(code)
        if fmt and len(raw) == struct.calcsize(fmt):
            return struct.unpack(fmt, raw)[0]
        return f"<numpy {dtype.name} scalar, {len(raw)} bytes>"
    raise ValueError("numpy scalar without a dtype")


_BUILDERS: dict[str, Any] = {
    **{name: _tolerant(name) for name in _REBUILDERS},
    "collections.OrderedDict": _OrderedDict,
    "collections.Counter": _Counter,
    "collections.defaultdict": _DefaultDict,
    "builtins.set": _SealedCall(_safe_set),
    "builtins.frozenset": _SealedCall(_safe_frozenset),
    "builtins.complex": _SealedCall(_safe_complex),
    "builtins.bytearray": _SealedCall(_safe_bytearray),
    "_codecs.encode": _SealedCall(_codecs_encode),
    "torch.Size": _SealedCall(_torch_size),
    "torch.device": _SealedCall(_torch_device),
    "numpy.core.multiarray._reconstruct": _SealedCall(_numpy_reconstruct),
    "numpy._core.multiarray._reconstruct": _SealedCall(_numpy_reconstruct),
    "numpy.core.multiarray.scalar": _SealedCall(_numpy_scalar),
    "numpy._core.multiarray.scalar": _SealedCall(_numpy_scalar),
    "numpy.dtype": NumpyDtype,
}

# Exported for readers that compute storage sizes.
__all__ = [
    "DtypeRef", "NdarrayRecord", "NumpyDtype", "RestrictedUnpickler", "StorageRef", "Stub",
    "UnpickleLog", "itemsize", "itemsize_of_numpy_code",
]


def saved_type_name(obj: Any) -> str:
    """The type name a file saved for an object we built."""
    if isinstance(obj, Stub):
        return type(obj).qualname
    if isinstance(obj, _SavedDict):
        return obj.saved_type
    return type(obj).__name__


def storage_type_dtype(storage_type: Any) -> str:
    """The dtype of the storage class in a persistent id (its location is saved separately)."""
    if isinstance(storage_type, _StorageType):
        return storage_type.dtype
    # torch.storage.UntypedStorage (a stub): bytes; v3 rebuild passes the real dtype.
    return "uint8 (untyped)"

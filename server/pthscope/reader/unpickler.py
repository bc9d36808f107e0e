"""A restricted unpickler that builds inert records and never imports or calls what a file names.

`find_class` is the only door through which a pickle reaches code. Here it returns, for every
global, one of our own objects: a record builder for what torch's `weights_only` loader accepts
(tensor rebuild functions, dtypes, collections) or an inert, recording stub class for anything
else. The C unpickler then does with those objects exactly what it would do with the real ones
(REDUCE calls them, NEWOBJ calls `__new__`, BUILD calls `__setstate__`, APPEND calls `append`),
so each global's `GlobalUse` learns how a real load would use it: called with N arguments,
rebuilt as an object, given state, written into, or planted as an attribute the unpickler calls.

Everything here that the pickle VM can touch is sealed: no instance `__dict__`, attribute writes
refused, BUILD refused where we did not define what state means. What leaves this module is raw
records (`TensorRecord`, `Stub`, ...); tree.py validates them once, where they become the model.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from operator import itemgetter
from typing import IO, Any, ClassVar

from .dtypes import (
    ITEMSIZE,
    STORAGE_DTYPES,
    UNTYPED,
    dtype_from_numpy_code,
    itemsize,
    itemsize_of_numpy_code,
)
from .global_risk import (
    DATA_RECORD_CLASSES,
    REVIEWED_NESTED_CLASSES,
    STORAGE_TYPE_NAMES,
    WEIGHTS_ONLY_ALLOWED,
    GlobalUse,
    canonical_global_name,
)
from .safe_repr import safe_repr

# Attributes the unpickler looks up on the objects it builds and then calls: a pickle that puts a
# callable under one of these names in an object's __dict__ (BUILD) gets it called.
_PLANTABLE = ("__setstate__", "append", "extend", "add")
_INT64 = 1 << 63
_MIN64 = -_INT64


class RefusedState(pickle.UnpicklingError):
    """BUILD or an attribute write on one of our records: torch never writes such state."""


def _refuse(what: str) -> RefusedState:
    return RefusedState(f"the pickle writes state into {what} (BUILD or an attribute), which torch's own "
                        "pickles never do: the file is crafted or corrupt")


class _Sealed:
    """Base of the records handed to the VM: no __dict__, no attribute writes, no BUILD."""

    __slots__ = ()
    _what: ClassVar[str] = "a record"

    def __setattr__(self, name: str, value: Any) -> None:
        raise _refuse(self._what)

    def __delattr__(self, name: str) -> None:
        raise _refuse(self._what)

    def __setstate__(self, state: Any) -> None:
        raise _refuse(self._what)


_put = object.__setattr__


def _init(obj: Any, **fields: Any) -> None:
    for name, value in fields.items():
        object.__setattr__(obj, name, value)


class StorageRef(_Sealed):
    """A storage named by a persistent id: key, dtype, location and element count as saved, its
    bytes (None: unknown), and for a legacy view, where it starts and how many elements it has.

    The fields sit in one tuple, `fields` = (key, dtype, location, numel, nbytes, view_offset,
    view_numel): one record is made per storage of every checkpoint (the zip reader sets `fields`
    directly, in C calls), and the rebuild function reads them all at once."""

    __slots__ = ("fields",)
    _what = "a storage record"
    fields: tuple[str, str, str, int, int | None, int, int | None]

    def __init__(self, key: str, dtype: str, location: str, numel: int, nbytes: int | None = None,
                 view_offset: int = 0, view_numel: int | None = None) -> None:
        _put(self, "fields", (key, dtype, location, numel, nbytes, view_offset, view_numel))

    key = property(lambda self: self.fields[0])  # the hot paths use `fields`
    dtype = property(lambda self: self.fields[1])
    location = property(lambda self: self.fields[2])
    numel = property(lambda self: self.fields[3])
    nbytes = property(lambda self: self.fields[4])
    view_offset = property(lambda self: self.fields[5])  # legacy: elements into the root storage
    view_numel = property(lambda self: self.fields[6])


class TensorRecord(tuple):
    """A rebuilt tensor, as the pickle described it; immutable (a tuple), validated by tree.py.

    Fields: shape, stride, storage_offset, dtype, requires_grad, kind, location, storage key,
    storage bytes (None: unknown), layout, and `inside`: True when the rebuild already saw that
    the view stays inside its storage (False: tree.py looks).
    """

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _refuse("a tensor record")

    shape = property(itemgetter(0))  # itemgetter: read in C, no Python frame
    stride = property(itemgetter(1))
    storage_offset = property(itemgetter(2))
    dtype = property(itemgetter(3))
    requires_grad = property(itemgetter(4))
    kind = property(itemgetter(5))
    location = property(itemgetter(6))
    storage = property(itemgetter(7))
    storage_nbytes = property(itemgetter(8))
    layout = property(itemgetter(9))
    inside = property(itemgetter(10))

    def but(self, **changes: Any) -> TensorRecord:
        fields = list(self)
        for name, value in changes.items():
            fields[_TENSOR_FIELDS[name]] = value
        if not _EXTENT_FIELDS.isdisjoint(changes):
            fields[10] = False  # a new extent: looked at again
        return tuple.__new__(TensorRecord, fields)


_TENSOR_FIELDS = {name: i for i, name in enumerate(
    ("shape", "stride", "storage_offset", "dtype", "requires_grad", "kind", "location", "storage",
     "storage_nbytes", "layout"))}
_EXTENT_FIELDS = frozenset(("shape", "stride", "storage_offset", "dtype", "storage", "storage_nbytes"))
_new_tensor = tuple.__new__


def _tensor_on(storage: StorageRef, storage_offset: int, shape: list[int], stride: list[int],
               requires_grad: bool, dtype: str) -> TensorRecord:
    nbytes = storage.nbytes if storage.nbytes is not None else storage.numel * itemsize(storage.dtype)
    return _new_tensor(TensorRecord, (shape, stride, storage_offset, dtype, requires_grad, "tensor",
                                      storage.location, storage.key, nbytes, "strided", False))


def _tensor_without_storage(shape: list[int], stride: list[int], requires_grad: bool, dtype: str,
                            location: str = "cpu", layout: str = "strided") -> TensorRecord:
    return _new_tensor(TensorRecord, (shape, stride, 0, dtype, requires_grad, "tensor", location, "", None, layout,
                                      False))


class NdarrayRecord(_Sealed):
    __slots__ = ("shape", "dtype", "nbytes", "built")
    _what = "a numpy array record"
    shape: list[int]
    dtype: str
    nbytes: int
    built: bool

    def __init__(self) -> None:
        _init(self, shape=[], dtype="unknown", nbytes=0, built=False)

    def __setstate__(self, state: Any) -> None:
        # numpy's ndarray.__reduce__ state: (version, shape, dtype, is_fortran, rawdata), once.
        if self.built or not (isinstance(state, tuple) and len(state) >= 5):
            raise _refuse(self._what)
        _init(self, shape=_shape(state[1]), built=True,
              dtype=state[2].name if isinstance(state[2], NumpyDtype) else "unknown",
              nbytes=len(state[4]) if isinstance(state[4], (bytes, bytearray, str)) else 0)


class NumpyDtype(_Sealed):
    __slots__ = ("code", "name")
    _what = "a numpy dtype record"
    saved_type: ClassVar[str] = "numpy.dtype"
    code: str
    name: str

    def __init__(self, code: Any = "", *_: Any) -> None:
        text = code if isinstance(code, str) else safe_repr(code)
        _init(self, code=text, name=dtype_from_numpy_code(text))

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple):  # numpy's own: (3, '<', None, None, None, -1, -1, 0)
            raise _refuse(self._what)


class DtypeRef(_Sealed):
    """A torch dtype or layout named as a global (torch.float32, torch.per_tensor_affine)."""

    __slots__ = ("name",)
    _what = "a dtype record"
    name: str

    def __init__(self, name: str) -> None:
        _init(self, name=name)


class StorageType(_Sealed):
    """A storage class (torch.FloatStorage, ...), as torch's loader reads it: a dtype."""

    __slots__ = ("dtype",)
    _what = "a storage class record"
    dtype: str

    def __init__(self, dtype: str) -> None:
        _init(self, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Stubs: what an unknown global becomes. The class records how it is used.


class _StubMeta(type):
    """Metaclass of stub classes: calling one (REDUCE, INST/OBJ with arguments, a builder calling
    its argument) is recorded as a call; BUILD on the class itself as a write into the global."""

    _use: GlobalUse
    _make: Callable[..., Any] | None
    qualname: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        cls._use.called(len(args) + len(kwargs))
        if cls._make is not None:
            return cls._make(*args, **kwargs)
        return Stub.make(cls, args, kwargs)  # type: ignore[arg-type]

    def __setattr__(cls, name: str, value: Any) -> None:
        cls._use.written += 1
        raise _refuse(f"the global {cls._use.full_name}")

    def __delattr__(cls, name: str) -> None:
        cls._use.written += 1
        raise _refuse(f"the global {cls._use.full_name}")

    @property
    def __setstate__(cls) -> Callable[[Any], None]:
        # A data descriptor on the metaclass wins over Stub.__setstate__ for `cls.__setstate__`:
        # BUILD on the class object itself lands here, BUILD on its instances does not.
        def written(state: Any) -> None:
            cls._use.written += 1

        return written


class Stub(metaclass=_StubMeta):
    """An instance of a class the file names but we never import."""

    __slots__ = ("args", "kwargs", "state", "items", "setitems")
    qualname: ClassVar[str] = "?"
    _use: ClassVar[GlobalUse]
    _make: ClassVar[Callable[..., Any] | None] = None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: list[Any]
    setitems: dict[Any, Any] | None

    @staticmethod
    def make(cls: type[Stub], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Stub:
        self = object.__new__(cls)
        _init(self, args=args, kwargs=kwargs, state=None, items=[], setitems=None)
        return self

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        # NEWOBJ, NEWOBJ_EX and INST/OBJ without arguments call this, not the metaclass.
        if args or kwargs:
            cls._use.called(len(args) + len(kwargs))
        else:
            cls._use.rebuilt += 1
        return Stub.make(cls, args, kwargs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setattr__(self, name: str, value: Any) -> None:  # BUILD's slot state on a class without __setstate__
        type(self)._use.states += 1
        _plant(name, value)

    def __setstate__(self, state: Any) -> None:
        _call_planted(self.state, "__setstate__", 1)
        type(self)._use.states += 1
        _scan_for_planted(state)
        object.__setattr__(self, "state", state)

    def append(self, item: Any) -> None:
        _call_planted(self.state, "append", 1)
        self.items.append(item)

    def extend(self, items: Any) -> None:
        _call_planted(self.state, "extend", 1)
        self.items.extend(items)

    def add(self, item: Any) -> None:
        _call_planted(self.state, "add", 1)
        self.items.append(item)

    def __iter__(self) -> Any:  # APPENDS on a stub: items, never the stub itself
        raise TypeError("a stub object is not iterable")

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.setitems is None:
            object.__setattr__(self, "setitems", {})
        self.setitems[key] = value  # type: ignore[index]


def use_of(value: Any) -> GlobalUse | None:
    """The GlobalUse behind a global's object, if `value` is one."""
    if isinstance(value, _StubMeta):
        return value._use
    if isinstance(value, _Builder):
        return value.use
    return None


def _plant(attribute: str, value: Any) -> None:
    use = use_of(value)
    if attribute in _PLANTABLE and use is not None and attribute not in use.planted:
        use.planted.append(attribute)


def _scan_for_planted(state: Any) -> None:
    """BUILD state `{name: callable}` (or `(dict, slots)`) would land in the object's __dict__."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, dict):
            for name in _PLANTABLE:
                if name in part:
                    _plant(name, part[name])


def _call_planted(state: Any, attribute: str, arguments: int) -> None:
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, dict) and attribute in part:
            use = use_of(part[attribute])
            if use is not None:
                use.called(arguments)


# ---------------------------------------------------------------------------------------------
# Dicts the file names as globals (OrderedDict, Counter, defaultdict).


class _SavedDict(dict):
    __slots__ = ("state",)
    saved_type: ClassVar[str] = "dict"
    state: Any

    def __setattr__(self, name: str, value: Any) -> None:
        _plant(name, value)
        raise _refuse(f"a {self.saved_type}")

    def __setstate__(self, state: Any) -> None:
        # An OrderedDict's BUILD updates its __dict__ (state_dict._metadata): kept, and checked
        # for callables planted where the unpickler would call them.
        _call_planted(getattr(self, "state", None), "__setstate__", 1)
        _scan_for_planted(state)
        object.__setattr__(self, "state", state)

    def append(self, item: Any) -> None:
        _call_planted(getattr(self, "state", None), "append", 1)
        raise AttributeError(f"{self.saved_type} has no append")

    def extend(self, items: Any) -> None:
        _call_planted(getattr(self, "state", None), "extend", 1)
        raise AttributeError(f"{self.saved_type} has no extend")


class _OrderedDict(_SavedDict):
    __slots__ = ()
    saved_type = "collections.OrderedDict"


class _Counter(_SavedDict):
    __slots__ = ()
    saved_type = "collections.Counter"


class _DefaultDict(_SavedDict):
    __slots__ = ()
    saved_type = "collections.defaultdict"

    def __init__(self, *args: Any) -> None:
        # defaultdict(factory, items): the factory is a global we never call.
        super().__init__(*(a for a in args[1:2] if isinstance(a, (dict, list))))

    def __setstate__(self, state: Any) -> None:  # a real defaultdict has no __dict__
        raise _refuse("a collections.defaultdict")


# ---------------------------------------------------------------------------------------------
# Reviewed data classes (global_risk.DATA_RECORD_CLASSES: torch.distributed.checkpoint's
# metadata). A DCP `.metadata` holds five of them per tensor, so they cost as little as a record
# can: NEWOBJ counts the instance and makes an empty list, BUILD appends its state (C code, no
# copy). A record is `[state]`; anything else (two BUILDs, APPENDs) is for the reader to refuse.


_new_list = list.__new__


class DataRecord(list):
    __slots__ = ()
    qualname: ClassVar[str] = "?"
    _use: ClassVar[GlobalUse]
    __setstate__ = list.append
    __hash__ = object.__hash__  # type: ignore[assignment]  # MetadataIndex records key a dict

    def __new__(cls, *args: Any, **kwargs: Any) -> DataRecord:
        if args or kwargs:
            cls._use.called(len(args) + len(kwargs))
        else:
            cls._use.rebuilt += 1
        return _new_list(cls)  # five per entry of a DCP .metadata: `list.__new__` looked up once, not each time

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # list.__init__ would take the arguments as items
        pass

    def __setattr__(self, name: str, value: Any) -> None:
        _plant(name, value)
        raise _refuse(f"a {self.qualname} record")


class SubclassTensorRecord(_Sealed):
    """A tensor subclass saved with its own state (`_rebuild_from_type_v2` of a wrapper subclass:
    a DTensor's local tensor and spec, a ShardedTensor's shards and metadata): the wrapper as
    saved (global shape, dtype) and the state, for the reader to interpret."""

    __slots__ = ("record", "state")
    _what = "a tensor subclass record"
    record: TensorRecord
    state: Any

    def __init__(self, record: TensorRecord, state: Any) -> None:
        _init(self, record=record, state=state)


def check_record_state(record: DataRecord) -> Any:
    """A data record's one BUILD state ({} when it had none: an object without attributes);
    ValueError for anything else (a crafted file). States before a second BUILD are scanned for
    callables planted where that BUILD would call them."""
    if not record:
        return {}
    if len(record) != 1:
        for state in record[:-1]:
            _scan_for_planted(state)
            _call_planted(state, "__setstate__", 1)
        raise ValueError(f"a {record.qualname} record got {len(record)} states (BUILD or APPEND), which torch never writes")
    return record[0]


# ---------------------------------------------------------------------------------------------
# The log and the unpickler.


class UnpickleLog:
    """What the unpickler saw: each global's use, and non-fatal problems."""

    MAX_PROBLEMS = 100  # listed; beyond that only counted (a hostile file may cause millions)

    def __init__(self) -> None:
        self.globals: dict[tuple[str, str], GlobalUse] = {}
        self.problems: list[str] = []
        self.more_problems = 0

    def problem(self, message: str) -> None:
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(message)
        else:
            self.more_problems += 1

    def use(self, module: str, name: str) -> GlobalUse:
        use = self.globals.get((module, name))
        if use is None:
            use = self.globals[(module, name)] = GlobalUse(module, name)
        use.references += 1
        return use


PersistentLoad = Callable[[Any], Any]


class RestrictedUnpickler(pickle.Unpickler):
    """`torch_loader`: read the way torch's UnpicklerWrapper reads a checkpoint's main pickle
    (storage class names become storage types without an import); else as plain pickle.load."""

    def __init__(self, file: IO[bytes], persistent_load: PersistentLoad, log: UnpickleLog,
                 torch_loader: bool = True):
        super().__init__(file, encoding="latin1")
        # An instance attribute, not a method: one call frame less per storage.
        self.persistent_load = persistent_load  # type: ignore[method-assign]
        self.log = log
        self.torch_loader = torch_loader
        self._objects: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if type(module) is not str or type(name) is not str:
            raise pickle.UnpicklingError("a global whose module or name is not text")
        module, name = canonical_global_name(module, name)
        key = (module, name)
        use = self.log.use(module, name)
        made = self._objects.get(key)
        if made is None:
            made = self._objects[key] = self._object_for(use)
        return made

    def _object_for(self, use: GlobalUse) -> Any:
        full, attribute = use.full_name, use.name
        if "." in attribute:  # an attribute walk: never resolved, always a stub
            return self._stub(use, None)
        if self.torch_loader and "Storage" in attribute and attribute in STORAGE_TYPE_NAMES:
            return StorageType(STORAGE_DTYPES[attribute])
        if full in WEIGHTS_ONLY_ALLOWED:
            builder = _SAFE_BUILDERS.get(full)
            if builder is not None:
                if isinstance(builder, type):
                    return builder
                return _BUILDER_CLASSES.get(builder, _Builder)(full, builder, use, self.log)
            if attribute in STORAGE_TYPE_NAMES:
                return StorageType(STORAGE_DTYPES[attribute])
            if use.module == "torch" and attribute[:1].islower():
                return DtypeRef(attribute)
        if full in DATA_RECORD_CLASSES:
            return type(attribute, (DataRecord,), {"__slots__": (), "qualname": full, "_use": use})
        if full == "builtins.getattr":
            return self._stub(use, self._attribute_of)
        return self._stub(use, _HARMLESS_BUILDERS.get(full))

    def _attribute_of(self, *args: Any) -> Any:
        """`getattr(Class, "Name")`, as pickle protocol 2 writes a nested class (ShardedTensor's
        ProcessGroupState): the attribute walk `module:Class.Name`, a stub class of its own, so
        that NEWOBJ can rebuild it. Any other getattr call gives a stub object, as before."""
        owner, name = (args + (None, None))[:2]
        if len(args) != 2 or not isinstance(owner, _StubMeta) or type(name) is not str or not name.isidentifier():
            return Stub.make(self._objects[("builtins", "getattr")], args, {})
        key = (owner._use.module, f"{owner._use.name}.{name}")
        made = self._objects.get(key)
        if made is None:
            made = self._objects[key] = self._stub(self.log.use(*key), None)
        if made._use.full_name in REVIEWED_NESTED_CLASSES:
            self._objects[("builtins", "getattr")]._use.reviewed_walks += 1
        return made

    @staticmethod
    def _stub(use: GlobalUse, make: Callable[..., Any] | None) -> _StubMeta:
        namespace = {"__slots__": (), "qualname": use.full_name, "_use": use, "_make": make}
        # The class's own __name__ is for tracebacks only (the file's name is in `qualname`);
        # type() refuses NUL and lone surrogates, which a pickle may well name.
        short = use.name.rsplit(".", 1)[-1]
        return _StubMeta(short if short.isidentifier() else "global", (Stub,), namespace)


class _Builder:
    """One of our record builders, handed to the pickle for a global torch allows. Malformed
    arguments become a problem and a stub, not a crash; BUILD on it is a write into the global."""

    __slots__ = ("name", "fn", "use", "log", "fallback")
    name: str
    fn: Callable[..., Any]
    use: GlobalUse
    log: UnpickleLog
    fallback: _StubMeta | None

    def __init__(self, name: str, fn: Callable[..., Any], use: GlobalUse, log: UnpickleLog) -> None:
        _init(self, name=name, fn=fn, use=use, log=log, fallback=None)

    def __setattr__(self, name: str, value: Any) -> None:
        self.use.written += 1
        raise _refuse(f"the global {self.name}")

    def __setstate__(self, state: Any) -> None:
        self.use.written += 1
        raise _refuse(f"the global {self.name}")

    def __call__(self, *args: Any) -> Any:
        try:
            return self.fn(*args)
        except (RefusedState, MemoryError, RecursionError):
            raise
        except Exception as exc:  # malformed pickle: report and keep reading
            self.log.problem(f"{self.name}: cannot rebuild ({_one_line(exc)})")
            if self.fallback is None:  # one stub class per global, not one per failure
                object.__setattr__(self, "fallback", RestrictedUnpickler._stub(self.use, None))
            return Stub.make(self.fallback, args, {})  # type: ignore[arg-type]


_NOT_GIVEN: Any = object()  # an argument the pickle did not pass (the file cannot make this object)


class _TensorV2Builder(_Builder):
    """`torch._utils._rebuild_tensor_v2`, called once per tensor by nearly every checkpoint. The
    usual call — a storage, an int offset, size and stride as int tuples of one length, sizes
    >= 1 and strides >= 0, all int64 — is checked and built here in one frame: the same checks
    as `_rebuild_tensor_v2`, which gets every other call (and names what is wrong). On the way it
    sees whether the view stays inside its storage (`inside`; tree.py looks again if not)."""

    __slots__ = ()

    def __call__(self, storage: Any = _NOT_GIVEN, storage_offset: Any = _NOT_GIVEN, size: Any = _NOT_GIVEN,
                 stride: Any = _NOT_GIVEN, requires_grad: Any = _NOT_GIVEN, *rest: Any) -> Any:
        if (type(storage) is StorageRef and type(storage_offset) is int and 0 <= storage_offset < _INT64
                and type(size) is tuple and type(stride) is tuple and len(size) == len(stride) <= 64):
            # numel 0 below: not the usual call (a usual tensor has at least one element)
            if len(size) == 2:  # a matrix, the commonest tensor: the loop's checks, unrolled (-25 %)
                d0, d1 = size
                s0, s1 = stride
                if (type(d0) is int and type(d1) is int and type(s0) is int and type(s1) is int
                        and 0 < d0 < _INT64 and 0 < d1 < _INT64 and 0 <= s0 < _INT64 and 0 <= s1 < _INT64):
                    numel, last = d0 * d1, (d0 - 1) * s0 + (d1 - 1) * s1
                else:
                    numel = 0
            elif len(size) == 1:  # a vector (biases, norms), as common: unrolled too
                (numel,), (s0,) = size, stride
                if type(numel) is int and type(s0) is int and 0 < numel < _INT64 and 0 <= s0 < _INT64:
                    last = (numel - 1) * s0
                else:
                    numel = 0
            else:
                numel, last = 1, 0
                for d, s in zip(size, stride):  # noqa: B905 (one length, checked; a keyword costs 150 ns)
                    if type(d) is not int or type(s) is not int or not 0 < d < _INT64 or not 0 <= s < _INT64:
                        numel = 0
                        break
                    numel *= d  # at most 64 factors, each < 2**63: no early stop needed
                    last += (d - 1) * s
            if 0 < numel < _INT64:
                key, dtype, location, storage_numel, nbytes, view_offset, _ = storage.fields
                offset = storage_offset + view_offset
                item = ITEMSIZE.get(dtype, 1)
                if nbytes is None:
                    nbytes = storage_numel * item
                return _new_tensor(TensorRecord, (
                    list(size), list(stride), offset, dtype, requires_grad is True, "tensor", location, key,
                    nbytes, "strided", (offset + last + 1) * item <= nbytes))
        given = [a for a in (storage, storage_offset, size, stride, requires_grad) if a is not _NOT_GIVEN]
        return _Builder.__call__(self, *given, *rest)


class _SizeBuilder(_Builder):
    """`torch.Size`, called four times per entry of a torch.distributed checkpoint's metadata:
    the usual call, with one tuple (what `_torch_size` returns as it is), in one frame."""

    __slots__ = ()

    def __call__(self, items: Any = _NOT_GIVEN, *rest: Any) -> Any:
        if type(items) is tuple and not rest:
            return items
        return _Builder.__call__(self, *(() if items is _NOT_GIVEN else (items,)), *rest)


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


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


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> TensorRecord:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride, False)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, *_: Any) -> TensorRecord:
    # The hot path: one call per tensor of every checkpoint.
    if type(storage) is not StorageRef:
        raise ValueError("storage is not a storage reference")
    if type(storage_offset) is not int or not 0 <= storage_offset < _INT64:
        raise ValueError("storage offset is not a non-negative int64")
    view_offset = storage.view_offset
    return _tensor_on(storage, storage_offset + view_offset if view_offset else storage_offset,
                      _shape(size), _int_list(stride), requires_grad is True, storage.dtype)


def _rebuild_tensor_v3(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any, backward_hooks: Any, dtype: Any, *_: Any) -> TensorRecord:
    record = _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad)
    return record.but(dtype=dtype.name) if type(dtype) is DtypeRef else record


def _rebuild_parameter(data: Any, requires_grad: Any, *_: Any) -> Any:
    if type(data) is SubclassTensorRecord:  # an nn.Parameter holding a DTensor
        return SubclassTensorRecord(data.record.but(kind="parameter", requires_grad=requires_grad is True), data.state)
    if type(data) is not TensorRecord:
        raise ValueError("parameter data is not a tensor")
    return data.but(kind="parameter", requires_grad=requires_grad is True)


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any = None, state: Any = None,
                                  *_: Any) -> Any:
    # torch sets `state` (a dict, or (dict, slots)) as the Parameter's attributes: a callable planted
    # there as __setstate__ is what a later BUILD on the Parameter calls.
    _scan_for_planted(state)
    return _rebuild_parameter(data, requires_grad)


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    # Tensor subclasses: torch calls func(*args) — one of our builders, or a stub class whose
    # call is recorded — and gives new_type's __setstate__ the state.
    if isinstance(new_type, _StubMeta) and state:
        new_type._use.states += 1
        _scan_for_planted(state)
    result = func(*args) if isinstance(args, tuple) else func()
    if type(result) is TensorRecord and getattr(new_type, "qualname", "") == "torch.nn.parameter.Parameter":
        result = result.but(kind="parameter")
    elif type(result) is TensorRecord and result.layout != "strided" and state:
        return SubclassTensorRecord(result, state)  # a DTensor, a ShardedTensor: tree.py asks the reader
    return result


def _rebuild_qtensor(storage: Any, storage_offset: Any, size: Any, stride: Any,
                     quantizer_params: Any, requires_grad: Any = False, *_: Any) -> TensorRecord:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad).but(layout="quantized")


def _rebuild_meta_tensor_no_storage(dtype: Any, size: Any, stride: Any, requires_grad: Any = False,
                                    *_: Any) -> TensorRecord:
    return _tensor_without_storage(_shape(size), _int_list(stride), requires_grad is True,
                                   dtype.name if type(dtype) is DtypeRef else "unknown", location="meta")


def _rebuild_wrapper_subclass(cls: Any, dtype: Any, size: Any, stride: Any, storage_offset: Any,
                              layout: Any, device: Any, requires_grad: Any = False, *_: Any) -> TensorRecord:
    record = _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)
    if isinstance(cls, _StubMeta):
        cls._use.rebuilt += 1
    return record.but(location=device if type(device) is str else "unknown",
                      layout=getattr(cls, "qualname", "subclass") if isinstance(cls, _StubMeta) else "subclass")


def _rebuild_from_numpy(data: Any, dtype: Any, device: Any, requires_grad: Any = False,
                        *_: Any) -> TensorRecord:
    if type(data) is TensorRecord:
        record = data
    elif type(data) is NdarrayRecord:
        record = _tensor_without_storage(data.shape, _contiguous(data.shape), False, data.dtype)
    else:
        raise ValueError("device tensor data is neither a tensor nor an array")
    return record.but(dtype=dtype.name if type(dtype) is DtypeRef else record.dtype,
                      location=device if type(device) is str else record.location,
                      requires_grad=requires_grad is True)


def _contiguous(shape: list[int]) -> list[int]:
    stride, acc = [], 1
    for d in reversed(shape):
        stride.append(acc)
        acc *= max(d, 1)
    return stride[::-1]


def _rebuild_sparse_tensor(layout: Any, data: Any) -> TensorRecord:
    """COO: (indices, values, size[, is_coalesced]); CSR/CSC/BSR/BSC: (compressed indices,
    plain indices, values, size). The record has the sparse tensor's shape and the values'
    dtype and storage; a sparse tensor has no strides."""
    if not isinstance(data, tuple) or len(data) not in (3, 4):
        raise ValueError("sparse tensor data is not a 3- or 4-tuple")
    name = _layout_name(layout)
    coo = name == "sparse_coo" if name else len(data) == 3 or type(data[3]) is bool
    values, size = (data[1], data[2]) if coo else (data[2], data[3])
    shape = _shape(size)
    if type(values) is not TensorRecord:
        raise ValueError("sparse tensor values are not a tensor")
    return values.but(shape=shape, stride=[], layout=name or ("sparse_coo" if coo else "sparse_compressed"))


def _layout_name(layout: Any) -> str | None:
    """`torch.sparse_csr` → "sparse_csr", whether pickled as a global or via _get_layout("…")."""
    text = layout.qualname if isinstance(layout, _StubMeta) else layout if type(layout) is str else None
    if type(layout) is DtypeRef:
        text = layout.name
    return text.rsplit(".", 1)[-1][:40] if isinstance(text, str) else None


def _rebuild_nested_tensor(buffer: Any, sizes: Any, *_: Any) -> TensorRecord:
    if type(buffer) is not TensorRecord:
        raise ValueError("nested tensor buffer is not a tensor")
    return buffer.but(layout="nested")


def _torch_size(items: Any = ()) -> tuple[Any, ...]:
    return tuple(items) if isinstance(items, (list, tuple)) else ()


def _torch_device(kind: Any = "cpu", index: Any = None) -> str:
    name = kind if type(kind) is str else "?"  # never str() what a file made: it may be a DAG bomb
    if index is None:
        return name
    return f"{name}:{index}" if type(index) is int and -_INT64 <= index < _INT64 else f"{name}:?"


def _get_layout(name: Any) -> str:
    if type(name) is not str:
        raise ValueError("layout name is not text")
    return name


def _codecs_encode(text: Any, encoding: Any = "utf-8", *_: Any) -> bytes:
    if isinstance(text, str) and encoding in ("latin1", "latin-1", "utf-8", "utf8"):
        return text.encode(encoding)
    raise ValueError("_codecs.encode called with something other than text")


def _safe_bytearray(data: Any = b"", *_: Any) -> bytearray:
    if isinstance(data, (bytes, bytearray)):
        return bytearray(data)
    raise ValueError("bytearray built from something other than bytes")


def _safe_complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if type(real) in (int, float) and type(imag) in (int, float):
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
    if type(dtype) is NumpyDtype and isinstance(raw, bytes):
        code = dtype.code.lstrip("<>=|")
        fmt = _SCALAR_FORMATS.get(code)
        if fmt and len(raw) == struct.calcsize(fmt):
            return struct.unpack(fmt, raw)[0]
        return f"<numpy {dtype.name} scalar, {len(raw)} bytes>"
    raise ValueError("numpy scalar without a dtype")


def _copyreg_reconstructor(cls: Any = None, base: Any = None, state: Any = None, *_: Any) -> Any:
    """copyreg._reconstructor(cls, base, state): `base.__new__(cls, state)` and, unless base is
    object, `base.__init__(obj, state)` — a class rebuilt when base is a builtin type, a call of
    `base` with the file's state otherwise."""
    base_use = use_of(base)
    if base_use is not None and base_use.full_name not in _BUILTIN_BASES:
        base_use.called(1)
    if isinstance(cls, _StubMeta):
        cls._use.rebuilt += 1
        return Stub.make(cls, (), {})  # type: ignore[arg-type]
    raise ValueError("copyreg._reconstructor of something other than a class")


_BUILTIN_BASES = frozenset(f"builtins.{t}" for t in (
    "object", "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
    "bytearray", "bool"))


def _copyreg_newobj(cls: Any = None, *args: Any) -> Any:
    """copyreg.__newobj__(cls, *args) is `cls.__new__(cls, *args)`: NEWOBJ spelled as a call."""
    if isinstance(cls, _StubMeta):
        return cls.__new__(cls, *args)  # type: ignore[arg-type]
    raise ValueError("copyreg.__newobj__ of something other than a class")


def _copyreg_newobj_ex(cls: Any = None, args: Any = (), kwargs: Any = None, *_: Any) -> Any:
    if isinstance(cls, _StubMeta) and isinstance(args, tuple):
        return cls.__new__(cls, *args, **(kwargs if isinstance(kwargs, dict) else {}))  # type: ignore[arg-type]
    raise ValueError("copyreg.__newobj_ex__ of something other than a class")


def _jit_value(value: Any = None, *_: Any) -> Any:
    """TorchScript's list builders and type tags return what they are given."""
    return value


_REBUILDERS: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch._utils._rebuild_qtensor": _rebuild_qtensor,
    "torch._utils._rebuild_meta_tensor_no_storage": _rebuild_meta_tensor_no_storage,
    "torch._utils._rebuild_wrapper_subclass": _rebuild_wrapper_subclass,
    "torch._utils._rebuild_device_tensor_from_numpy": _rebuild_from_numpy,
    "torch._utils._rebuild_device_tensor_from_cpu_tensor": _rebuild_from_numpy,
    "torch._utils._rebuild_sparse_tensor": _rebuild_sparse_tensor,
    "torch._utils._rebuild_nested_tensor": _rebuild_nested_tensor,
}

# The builders whose usual call is made in one frame, by the function they stand for.
_BUILDER_CLASSES: dict[Any, type[_Builder]] = {_rebuild_tensor_v2: _TensorV2Builder, _torch_size: _SizeBuilder}

# Globals torch's weights_only loader accepts, built by our own inert code.
_SAFE_BUILDERS: dict[str, Any] = {
    **_REBUILDERS,
    "collections.OrderedDict": _OrderedDict,
    "collections.Counter": _Counter,
    "builtins.set": _safe_set,
    "builtins.complex": _safe_complex,
    "builtins.bytearray": _safe_bytearray,
    "_codecs.encode": _codecs_encode,
    "torch.Size": _torch_size,
    "torch.device": _torch_device,
    "torch.serialization._get_layout": _get_layout,
}

# Reviewed harmless constructors that we also build (the others stay inert stubs).
_HARMLESS_BUILDERS: dict[str, Callable[..., Any]] = {
    "collections.defaultdict": _DefaultDict,
    "builtins.frozenset": _safe_frozenset,
    "numpy.core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy._core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.dtype": NumpyDtype,
    "copyreg._reconstructor": _copyreg_reconstructor,
    "copyreg.__newobj__": _copyreg_newobj,
    "copyreg.__newobj_ex__": _copyreg_newobj_ex,
    "torch._tensor._rebuild_from_type": _rebuild_from_type_v2,
    **{f"torch.jit._pickle.{f}": _jit_value for f in (
        "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "restore_type_tag")},
}

# Exported for readers that compute storage sizes.
__all__ = [
    "DataRecord", "DtypeRef", "NdarrayRecord", "NumpyDtype", "RestrictedUnpickler", "StorageRef", "StorageType", "Stub",
    "SubclassTensorRecord", "TensorRecord", "UnpickleLog", "check_record_state", "itemsize", "itemsize_of_numpy_code",
    "use_of",
]


def saved_type_name(obj: Any) -> str:
    """The type name a file saved for an object we built."""
    if isinstance(obj, (Stub, DataRecord)):
        return type(obj).qualname
    if isinstance(obj, _SavedDict):
        return obj.saved_type
    if isinstance(obj, NumpyDtype):
        return "numpy.dtype"
    return type(obj).__name__


def storage_type_dtype(storage_type: Any) -> str:
    """The dtype of the storage class in a persistent id, as torch reads it; ValueError for
    anything that is not a storage class (torch would fail on it)."""
    if type(storage_type) is StorageType:
        return storage_type.dtype
    if isinstance(storage_type, _StubMeta) and storage_type.qualname == "torch.storage.UntypedStorage":
        return UNTYPED
    what = storage_type.qualname if isinstance(storage_type, _StubMeta) else f"a {saved_type_name(storage_type)}"
    raise ValueError(f"the storage class of a persistent id is {what}, which is not a storage type torch knows")

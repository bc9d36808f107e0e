"""Classify the globals a pickle names by what `torch.load(weights_only=False)` would do with them.

The rule is structural — what the name is and how the pickle uses it — never a prefix of a joined
string:

* `safe`: exactly the globals torch 2.13's `weights_only=True` unpickler accepts
  (`torch/_weights_only_unpickler.py`, `_get_allowed_globals`): tensor rebuild functions,
  storages, dtypes, `torch.Size`, `OrderedDict`, ... — unless the pickle writes into the global
  itself (BUILD on a function or class changes it for the whole process).
* `dangerous`: a dotted name (at protocol 4 `module` + `a.b.c` walks attributes, so it can reach
  any object); a global the pickle calls with arguments (REDUCE, INST/OBJ, NEWOBJ with
  arguments, a `__setstate__`/`append` attribute it plants) unless it is one of a few reviewed
  harmless constructors; and every callable known to run code, import, spawn processes, write
  files or open sockets, however it is used.
* `unknown`: anything else — a class a `weights_only=False` load imports (running its module's
  code) and rebuilds the usual way (NEWOBJ without arguments, `copyreg._reconstructor` with a
  builtin base, BUILD state), or a global it only references.

Names are first mapped the way Python 3's unpickler maps Python 2 names (`_compat_pickle`).
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass, field

from .model import Risk

# ---------------------------------------------------------------------------------------------
# safe: torch 2.13's weights_only allowlist (a test compares it with torch's own).

_STORAGE_TYPES = (
    "BFloat16Storage", "BoolStorage", "ByteStorage", "CharStorage", "ComplexDoubleStorage",
    "ComplexFloatStorage", "DoubleStorage", "FloatStorage", "HalfStorage", "IntStorage", "LongStorage",
    "QInt32Storage", "QInt8Storage", "QUInt2x4Storage", "QUInt4x2Storage", "QUInt8Storage", "ShortStorage",
)
_TENSOR_TYPES = ("BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")
_SPARSE_TENSOR_TYPES = ("BFloat16", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short")
_DTYPES = (
    "bfloat16", "bits16", "bits1x8", "bits2x4", "bits4x2", "bits8", "bool", "complex128", "complex32",
    "complex64", "float16", "float32", "float64", "float4_e2m1fn_x2", "float8_e4m3fn", "float8_e4m3fnuz",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "int16", "int32", "int64", "int8", "qint32",
    "qint8", "quint2x4", "quint4x2", "quint8", "uint16", "uint32", "uint64", "uint8",
    *(f"int{n}" for n in range(1, 8)), *(f"uint{n}" for n in range(1, 8)),
)
TENSOR_REBUILD_FUNCTIONS = (
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._tensor._rebuild_from_type_v2",
)
WEIGHTS_ONLY_ALLOWED: frozenset[str] = frozenset((
    "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device", "_codecs.encode",
    "builtins.bytearray", "builtins.set", "builtins.complex",
    "torch.per_tensor_affine", "torch.per_tensor_symmetric", "torch.per_channel_affine",
    "torch.per_channel_symmetric", "torch.per_channel_affine_float_qparams",
    "torch.storage.TypedStorage", "torch.storage.UntypedStorage",
    *TENSOR_REBUILD_FUNCTIONS,
    *(f"torch.{d}" for d in _DTYPES),
    *(f"{m}.{s}" for m in ("torch", "torch.cuda") for s in _STORAGE_TYPES if m == "torch" or not s.startswith("Q")),
    *(f"{m}.{t}Tensor" for m in ("torch", "torch.cuda") for t in _TENSOR_TYPES),
    *(f"{m}.{t}Tensor" for m in ("torch.sparse", "torch.cuda.sparse") for t in _SPARSE_TENSOR_TYPES),
))

# What torch's own find_class does before importing anything (serialization.py, UnpicklerWrapper):
# any name containing "Storage" that names a storage type becomes a StorageType, whatever the
# module; "torch.tensor" is read as "torch._tensor".
STORAGE_TYPE_NAMES = frozenset(_STORAGE_TYPES)
_TORCH_MODULE_MAPPING = {"torch.tensor": "torch._tensor"}

# ---------------------------------------------------------------------------------------------
# unknown even when called: reviewed constructors that build data and run nothing the file picks.

HARMLESS_CONSTRUCTORS: frozenset[str] = frozenset((
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "numpy.ndarray",
    "collections.defaultdict", "collections.deque", "collections.ChainMap", "collections.UserDict",
    "collections.UserList", "collections.UserString",
    "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta", "datetime.timezone",
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath", "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath", "argparse.Namespace", "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
    "copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__", "torch._tensor._rebuild_from_type",
    # TorchScript's pickles (torch/jit/_pickle.py): each returns the list or value it is given
    *(f"torch.jit._pickle.{f}" for f in ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
                                         "build_tensor_from_id", "restore_type_tag")),
    *(f"builtins.{t}" for t in ("int", "float", "str", "bytes", "bool", "tuple", "list", "dict", "frozenset",
                                "slice", "range", "object")),
))

# ---------------------------------------------------------------------------------------------
# unknown, not dangerous, although torch.distributed is a dangerous module: the data classes that
# torch.distributed.checkpoint's `.metadata` and torch.save'd DTensors and ShardedTensors are made
# of (dataclasses, named tuples and enums whose construction only stores fields; reviewed in
# torch 2.13, with the paths they had in older releases). `DATA_RECORD_CLASSES` are rebuilt as
# lean records (unpickler.DataRecord); the others as stubs.

_DCP = "torch.distributed.checkpoint"
_OLD_DCP = "torch.distributed._shard.checkpoint"  # torch 1.13 - 2.0
_SHARD = "torch.distributed._shard"
DATA_RECORD_CLASSES: frozenset[str] = frozenset((
    *(f"{m}.metadata.{c}" for m in (_DCP, _OLD_DCP) for c in (
        "Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata", "MetadataIndex",
        "TensorProperties", "StorageMeta")),
    *(f"{m}.filesystem.{c}" for m in (_DCP, _OLD_DCP) for c in ("_StorageInfo", "_StoragePrefix")),
    f"{_SHARD}.sharded_tensor.metadata.TensorProperties",
))
DISTRIBUTED_RECORDS: frozenset[str] = frozenset((
    *DATA_RECORD_CLASSES,
    *(f"{m}.metadata._MEM_FORMAT_ENCODING" for m in (_DCP, _OLD_DCP)),
    f"{_SHARD}.sharded_tensor.metadata.MEM_FORMAT_ENCODING",
    f"{_SHARD}.sharded_tensor.metadata.ShardedTensorMetadata", f"{_SHARD}.sharded_tensor.api.ShardedTensor",
    f"{_SHARD}.sharded_tensor.shard.Shard", f"{_SHARD}.metadata.ShardMetadata",
    f"{_SHARD}.sharding_spec.chunk_sharding_spec.ChunkShardingSpec", "torch.distributed.remote_device._remote_device",
    # DTensor (torch.distributed.tensor since 2.5; torch.distributed._tensor before)
    *(f"{m}.{c}" for m in ("torch.distributed.tensor", "torch.distributed.tensor._api", "torch.distributed._tensor",
                           "torch.distributed._tensor.api") for c in ("DTensor",)),
    *(f"{m}.{c}" for m in ("torch.distributed.tensor._dtensor_spec", "torch.distributed._tensor.placement_types",
                           "torch.distributed.tensor.placement_types", "torch.distributed._tensor._dtensor_spec")
      for c in ("DTensorSpec", "TensorMeta", "ShardOrderEntry", "Shard", "Replicate", "Partial", "_Partial",
                "_StridedShard", "MaskPartial", "_MaskPartial")),
    *(f"{m}.DeviceMesh" for m in ("torch.distributed.device_mesh", "torch.distributed._tensor.device_mesh")),
    "torch.distributed._mesh_layout._MeshLayout", "torch.distributed._mesh_layout._FlatLayout",
))
# Nested classes of those, which pickle protocol 2 (torch.save's) reaches as `getattr(Class, "Name")`
# and protocol 4 as the dotted name `Class.Name`: walks known to end at a reviewed data class.
REVIEWED_NESTED_CLASSES: frozenset[str] = frozenset((
    f"{_SHARD}.sharded_tensor.api:ShardedTensor.ProcessGroupState",  # a dataclass of four ints
))

# ---------------------------------------------------------------------------------------------
# dangerous however used: whole modules and single names that run code, import, spawn, write
# files, open sockets or load other pickles.

_DANGEROUS_MODULES = frozenset((
    # processes, the interpreter, imports
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "_winapi", "msvcrt", "winreg", "pty", "sys",
    "runpy", "importlib", "imp", "pkgutil", "zipimport", "modulefinder", "site", "sysconfig", "platform",
    "builtins", "__builtin__", "types", "inspect", "gc", "ctypes", "_ctypes", "cffi", "atexit", "weakref",
    "signal", "threading", "_thread", "multiprocessing", "concurrent", "asyncio", "sched",
    # running strings or files of code, debuggers, profilers, test runners, REPLs
    "code", "codeop", "pdb", "bdb", "trace", "timeit", "profile", "cProfile", "doctest", "unittest",
    "test", "idlelib", "tkinter", "_tkinter", "turtle", "turtledemo", "cmd", "pydoc", "py_compile",
    "compileall", "lib2to3", "ensurepip", "venv", "distutils", "setuptools", "pkg_resources", "pip",
    "_pyrepl", "readline", "rlcompleter", "getpass",
    # nested unpicklers and deserialisers
    "pickle", "_pickle", "cPickle", "pickletools", "marshal", "shelve", "dbm", "copyreg", "copy_reg",
    "dill", "cloudpickle", "joblib", "copy",
    # callables that call what they are given
    "operator", "_operator", "functools", "_functools", "itertools", "contextlib",
    # files, archives, sockets, the network
    "io", "_io", "codecs", "shutil", "tempfile", "glob", "fileinput", "mmap", "fcntl", "termios",
    "resource", "syslog", "zipfile", "tarfile", "gzip", "bz2", "lzma", "sqlite3", "logging", "socket",
    "_socket", "ssl", "select", "selectors", "socketserver", "http", "urllib", "urllib2", "ftplib",
    "smtplib", "poplib", "imaplib", "nntplib", "telnetlib", "xmlrpc", "webbrowser", "mailcap", "cgi",
    "cgitb", "wsgiref", "requests", "urllib3", "httpx", "aiohttp", "paramiko", "fsspec",
    # numpy's and torch's loaders, compilers and code paths
    "numpy.f2py", "numpy.distutils", "numpy.testing", "numpy.ctypeslib", "numpy.lib.npyio",
    "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._datasource", "numpy.lib.utils",
    "numpy.lib._utils_impl", "torch.hub", "torch.jit", "torch.package", "torch.utils.cpp_extension",
    "torch.utils.hooks", "torch.utils.data", "torch.utils.benchmark", "torch.utils.bottleneck",
    "torch.utils.collect_env", "torch.utils.tensorboard", "torch.utils._config_module", "torch.fx",
    "torch._dynamo", "torch._inductor", "torch.compiler", "torch.export", "torch._export", "torch.onnx",
    "torch.distributed", "torch.multiprocessing", "torch.ops", "torch._ops", "torch.library",
    "torch._library", "torch._C", "torch.cuda.jiterator", "torch.serialization", "torch.autograd.profiler",
    "torch.profiler", "torch._logging", "torch.backends",
    "IPython", "matplotlib", "pandas.io", "yaml", "_yaml", "_sqlite3", "_dbm", "_gdbm", "anydbm", "_ssl",
    "_multiprocessing", "_posixshmem", "_signal", "curses", "_curses", "_lzma", "_bz2",
))
_DANGEROUS_NAMES = frozenset((
    "torch.load", "torch.save", "torch.compile", "torch.from_file", "torch._load_global_deps",
    "torch.use_deterministic_algorithms", "torch.set_default_device", "torch._dynamo",
    "torch.Tensor.storage", "torch.storage._load_from_bytes", "torch.UntypedStorage.from_file",
    "numpy.load", "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex",
    "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "numpy.memmap",
    "numpy.DataSource", "numpy.load_library", "numpy.frompyfunc", "numpy.vectorize",
    "numpy.core.multiarray._load_from_filelike", "numpy.lib.npyio.load",
    "pandas.read_pickle", "pandas.read_csv", "pandas.eval", "pandas.core.computation.eval.eval",
    "json.load", "string.Template", "string.Formatter", "torch._utils._import_dotted_name",
))
_HARMLESS_BUILTIN_NAMES = frozenset((
    "int", "float", "str", "bytes", "bool", "tuple", "list", "dict", "set", "frozenset", "complex",
    "bytearray", "slice", "range", "NoneType", "Ellipsis", "NotImplemented", "object",
))


def canonical_global_name(module: str, name: str) -> tuple[str, str]:
    """The (module, name) Python 3's unpickler (and torch's) looks up: Python 2 names mapped
    (`__builtin__.long` → `builtins.int`, `copy_reg` → `copyreg`), torch's own renames applied."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        module, name = mapped
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return _TORCH_MODULE_MAPPING.get(module, module), name


def is_dangerous_by_name(module: str, name: str) -> bool:
    """Known to run code, import, spawn, write files or open sockets, however it is used."""
    full = f"{module}.{name}"
    if full in _DANGEROUS_NAMES:
        return True
    if full in WEIGHTS_ONLY_ALLOWED or full in HARMLESS_CONSTRUCTORS or full in DISTRIBUTED_RECORDS:
        return False
    if module in ("builtins", "__builtin__", "exceptions"):
        return name not in _HARMLESS_BUILTIN_NAMES
    top = module
    while top:
        if top in _DANGEROUS_MODULES:
            return True
        top = top.rpartition(".")[0]
    return False


@dataclass(slots=True)
class GlobalUse:
    """How one pickle uses one global: how many GLOBAL opcodes name it, the argument counts it is
    called with, how often it is rebuilt as an object or gets state, and the tricks it is part of."""

    module: str
    name: str
    references: int = 0
    calls: dict[int, int] = field(default_factory=dict)  # argument count → calls
    rebuilt: int = 0  # instances made without arguments (NEWOBJ, INST, copyreg._reconstructor)
    states: int = 0  # BUILD state given to its instances
    written: int = 0  # BUILD on the global itself: the pickle writes attributes into it
    planted: list[str] = field(default_factory=list)  # attributes it is planted as (__setstate__, append)
    reviewed_walks: int = 0  # getattr calls that only reached a reviewed nested class

    @property
    def full_name(self) -> str:
        """`module.name`; an attribute walk (a dotted name) as `module:a.b.c`."""
        return f"{self.module}{':' if '.' in self.name else '.'}{self.name}"

    def called(self, arguments: int) -> None:
        self.calls[arguments] = self.calls.get(arguments, 0) + 1

    def classify(self) -> tuple[Risk, str]:
        """The risk class and one sentence saying what a weights_only=False load would do."""
        full, module, name = self.full_name, self.module, self.name
        if self.written:
            return "dangerous", (f"would write attributes from the file into `{full}` itself, changing it for "
                                 "everything the process does after the load")
        if self.planted:
            return "dangerous", (f"would call `{full}(…)` with arguments from the file, planted as the "
                                 f"`{self.planted[0]}` attribute of an object that the unpickler then calls")
        if full in REVIEWED_NESTED_CLASSES:
            return "unknown", (f"would import `{module}` and take its nested data class `{name}` (reviewed), "
                               "building it from the file's fields; weights_only=True refuses it")
        if "." in name:
            return "dangerous", (f"would import `{module}` and walk the attributes `{name}` from it: an attribute "
                                 "walk can reach any object, so what runs cannot be known without importing")
        called = self._calls_text()
        if full == "builtins.getattr" and self.calls == {2: self.reviewed_walks}:
            return "unknown", (f"would call `builtins.getattr(…)` {called} only to reach nested data classes that "
                               "pickle protocol 2 writes that way (reviewed)")
        if is_dangerous_by_name(module, name):
            doing = f"would call `{full}(…)` {called}" if self.calls else f"would import `{full}`"
            return "dangerous", f"{doing}: it runs code, imports, spawns processes, writes files or opens sockets"
        if full in WEIGHTS_ONLY_ALLOWED:
            return "safe", "accepted by torch.load(weights_only=True) (tensor, storage, dtype or collection rebuilding)"
        if self.calls and full not in HARMLESS_CONSTRUCTORS and full not in DISTRIBUTED_RECORDS:
            return "dangerous", (f"would import `{module}` and call `{full}(…)` {called}: the file chooses what "
                                 "that call receives")
        if self.calls:
            return "unknown", (f"would import `{module}` and call `{full}(…)` {called}, a constructor that only "
                               "builds data; weights_only=True refuses it")
        if self.rebuilt or self.states:
            return "unknown", (f"would import `{module}` (running that module's code) and rebuild `{name}` objects "
                               "from the file's state the usual way (no arguments the file chooses)")
        return "unknown", f"would import `{module}` (running that module's code) and take `{name}`, without calling it"

    def _calls_text(self) -> str:
        parts = [f"{n} time{'s' if n != 1 else ''} with {a} argument{'s' if a != 1 else ''}"
                 for a, n in sorted(self.calls.items())]
        text = ", ".join(parts[:3]) + (", …" if len(parts) > 3 else "")
        return f"({text}) from the file" if self.calls else ""

    def uses_json(self, risk: Risk) -> dict[str, object]:
        """How the pickles use it. For globals torch's weights_only loader allows (safe however
        the pickle uses them, unless it writes into them) only references and writes are counted."""
        if risk == "safe":
            return {"referenced": self.references, "written": self.written}
        return {
            "referenced": self.references,
            "called": sum(self.calls.values()),
            "arguments": sorted(self.calls),
            "rebuilt": self.rebuilt,
            "state": self.states,
            "written": self.written,
            "planted": list(self.planted),
        }

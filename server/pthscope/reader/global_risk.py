"""Classify the globals a pickle names: what would `torch.load` import or call?

`safe`: what `torch.load(weights_only=True)` accepts (tensor rebuild functions, storages, dtypes,
collections); `dangerous`: callables that run code or reach the system; `unknown`: everything
else — classes a `weights_only=False` load would import (user modules, argparse.Namespace, ...).
"""

from __future__ import annotations

from .model import Risk

_SAFE_EXACT = {
    "collections.OrderedDict",
    "collections.Counter",
    "collections.defaultdict",
    "builtins.set",
    "builtins.frozenset",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.slice",
    "builtins.range",
    "_codecs.encode",
    "torch.Size",
    "torch.device",
    "torch.Tensor",
    "torch.nn.parameter.Parameter",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch.serialization._get_layout",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
}
# Any name with these prefixes is safe: tensor rebuild helpers, dtypes, storages, layouts.
_SAFE_PREFIXES = ("torch._utils._rebuild_", "torch._tensor._rebuild_from_type")
_SAFE_TORCH_ATTRIBUTE_SUFFIXES = ("Storage", "Tensor")

_DANGEROUS_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "runpy", "importlib", "pickle", "_pickle",
    "cPickle", "marshal", "shutil", "socket", "ctypes", "code", "codeop", "pty", "commands",
    "webbrowser", "multiprocessing", "asyncio", "threading", "signal", "pdb", "timeit",
    "platform", "tempfile", "http", "urllib", "requests", "ftplib", "smtplib", "telnetlib",
    "dill", "cloudpickle", "joblib", "shelve", "zipimport", "types", "operator", "functools",
    "inspect", "gc", "io", "_io", "glob", "site", "distutils", "setuptools", "pip",
    # Run a string of code, or spawn processes: cProfile.run/profile.run exec their argument.
    "cProfile", "profile", "bdb", "trace", "doctest", "_posixsubprocess", "_thread", "copy_reg",
}
_DANGEROUS_EXACT = {
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.open",
    "builtins.input", "builtins.breakpoint", "builtins.globals", "builtins.locals",
    "builtins.vars", "builtins.apply", "builtins.execfile", "builtins.reload",
    "builtins.memoryview", "builtins.type", "builtins.object", "builtins.super",
    "pydoc.locate", "pydoc.pipepager", "pydoc.tempfilepager",
    "torch.load", "torch.jit.load", "torch.hub.load", "torch.ops.load_library",
    "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
    "torch._C._jit_pass_onnx", "torch.serialization.load",
    # The names pickle writes for the loaders above (their defining modules) and their helpers.
    "torch.jit._serialization.load", "torch.serialization._load", "torch.serialization._legacy_load",
    "torch.hub.load_state_dict_from_url", "torch.hub._load_local",
    "numpy.load", "numpy.loadtxt", "numpy.fromfile", "numpy.testing._private.utils.runstring",
    "copyreg._reconstructor",
}


def canonical_global_name(module: str, name: str) -> str:
    """`__builtin__ set` (protocol 0-2 spelling) → `builtins.set`."""
    if module in ("__builtin__", "exceptions"):
        module = "builtins"
    return f"{module}.{name}"


def classify_global(full_name: str) -> Risk:
    if full_name in _DANGEROUS_EXACT:
        return "dangerous"
    module = full_name.rsplit(".", 1)[0] if "." in full_name else full_name
    top = module.split(".", 1)[0]
    if top in _DANGEROUS_MODULES:
        return "dangerous"
    if full_name in _SAFE_EXACT or full_name.startswith(_SAFE_PREFIXES):
        return "safe"
    if module in ("torch", "torch.cuda"):
        attribute = full_name.rsplit(".", 1)[1]
        if attribute.endswith(_SAFE_TORCH_ATTRIBUTE_SUFFIXES) or _is_torch_dtype_name(attribute):
            return "safe"
    if top == "builtins":
        # Plain builtin types are harmless to construct; builtin functions may not be.
        return "safe" if full_name.split(".", 1)[1] in _HARMLESS_BUILTINS else "dangerous"
    return "unknown"


_HARMLESS_BUILTINS = {
    "int", "float", "str", "bytes", "bool", "list", "dict", "tuple", "set", "frozenset",
    "complex", "bytearray", "slice", "range", "NoneType", "Ellipsis", "NotImplemented",
}


def _is_torch_dtype_name(name: str) -> bool:
    from .dtypes import ITEMSIZE

    return name in ITEMSIZE or name.startswith(("per_channel_", "per_tensor_")) or name in (
        "float", "double", "half", "long", "int", "short", "cfloat", "cdouble", "chalf",
    )

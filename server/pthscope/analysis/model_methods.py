"""The object protocol of the static evaluator: attributes, subscripts, attribute assignment and
the methods of the values it knows (modules and containers, lists, dicts, strings, tensors).

Writes made while the frame is uncertain make what they touch unknown instead of changing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import tensor_shapes
from .eval_objects import (
    BoundMethod,
    BuiltinMethod,
    Frame,
    LibraryValue,
    ModuleObject,
    SuperProxy,
    TorchClass,
    TorchInit,
    TorchRef,
    UserClass,
    UserFunction,
)
from .model_values import (
    ModuleValue,
    NameSource,
    ObjectValue,
    SDict,
    SList,
    SRange,
    TensorValue,
    Unknown,
)
from .torch_layers import Arg

if TYPE_CHECKING:
    from .model_eval import Interpreter

LIST_CONTAINERS = frozenset({"Sequential", "ModuleList"})
DICT_CONTAINERS = frozenset({"ModuleDict"})
PARAM_CONTAINERS = frozenset({"ParameterList", "ParameterDict"})
# nn.Module methods that return the module itself.
RETURNS_SELF = frozenset(["to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "requires_grad_", "type", "share_memory", "to_empty", "apply", "xpu", "ipu", "mtia"])
# nn.Module methods that change nothing a state_dict shows.
NO_EFFECT = frozenset(["zero_grad", "reset_parameters", "_reset_parameters", "reset_running_stats", "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook", "register_backward_hook", "register_load_state_dict_post_hook", "register_state_dict_pre_hook", "flatten_parameters", "_init_flat_weights", "extra_repr"])
WALKS = frozenset(["children", "named_children", "modules", "named_modules", "parameters", "named_parameters", "buffers", "named_buffers"])
STR_METHODS = frozenset(["format", "join", "upper", "lower", "title", "capitalize", "strip", "lstrip", "rstrip", "split", "rsplit", "replace", "startswith", "endswith", "zfill", "ljust", "rjust", "center", "count", "find", "rfind", "index", "isdigit", "isalpha", "isalnum", "isnumeric", "partition", "rpartition", "removeprefix", "removesuffix", "casefold", "swapcase"])


def attribute(interp: Interpreter, obj: Any, name: str, frame: Frame) -> Any:
    """`obj.name`."""
    if isinstance(obj, ModuleValue):
        return _module_attribute(interp, obj, name)
    if isinstance(obj, ObjectValue):
        if name in obj.attrs:
            return obj.attrs[name]
        if obj.cls is not None:
            found = class_attribute(interp, obj.cls, name, obj)
            if found is not _MISSING:
                return found
        return Unknown(f"`{name}` of {obj.type_name} is not known here")
    if isinstance(obj, UserClass):
        if name == "__name__":
            return obj.name
        found = class_attribute(interp, obj, name, None)
        return found if found is not _MISSING else Unknown(f"{obj.name}.{name} is not known here")
    if isinstance(obj, SuperProxy):
        return super_attribute(interp, obj, name)
    if isinstance(obj, TorchClass):
        if name == "__init__":
            return TorchInit(obj, None)
        if name == "from_pretrained" and obj.name in ("Embedding", "EmbeddingBag"):
            return BuiltinMethod(obj, name)
        return Unknown(f"nn.{obj.name}.{name} is not followed here")
    if isinstance(obj, TorchRef):
        from .model_eval import torch_value

        return torch_value(f"{obj.path}.{name}")
    if isinstance(obj, LibraryValue):
        return _library_constant(f"{obj.path}.{name}")
    if isinstance(obj, ModuleObject):
        if name in obj.file.top_level:
            return interp.global_value(obj.file, name)
        from .model_classes import module_target

        if obj.file.path.endswith("__init__.py"):
            target = module_target(interp.sources, obj.file, f".{name}", 1)
            if target is not None:
                return interp.target_value(target)
        return Unknown(f"{obj.file.module_name}.{name} is not defined")
    if isinstance(obj, TensorValue):
        return _tensor_attribute(obj, name)
    if isinstance(obj, UserFunction) and name == "__name__":
        return obj.name
    if isinstance(obj, Unknown):
        return Unknown(obj.reason, True)
    if isinstance(obj, (SList, SDict, str, tuple, int, float, SRange)):
        return BuiltinMethod(obj, name)
    return Unknown(f"`.{name}` of {type(obj).__name__} is not followed here", maybe_module=False)


_MISSING = object()


def _module_attribute(interp: Interpreter, module: ModuleValue, name: str) -> Any:
    try:
        return module.lookup(name)
    except KeyError:
        pass
    if module.user_class is not None:
        found = class_attribute(interp, module.user_class, name, module)
        if found is not _MISSING:
            return found
    if name == "training":
        return True
    if name in RETURNS_SELF or name in NO_EFFECT or name in WALKS or name in _MODULE_METHODS:
        return BuiltinMethod(module, name)
    if module.unknown_all:
        return Unknown(module.unknown_all)
    if module.unknown_extra:
        return Unknown(module.unknown_extra)
    return Unknown(f"`{name}` of {module.type_name} is not known here")


_MODULE_METHODS = frozenset(["register_buffer", "register_parameter", "add_module", "register_module", "get_submodule", "get_parameter", "get_buffer", "append", "extend", "insert", "pop", "update", "keys", "values", "items", "forward", "state_dict", "load_state_dict", "named_modules"])


def class_mro(interp: Interpreter, cls: UserClass) -> list[Any]:
    """The C3 linearisation of a workspace class (torch and library bases are leaves)."""
    if cls.mro_cache is not None:
        return cls.mro_cache
    cls.mro_cache = [cls]  # guards a class that (wrongly) inherits from itself
    sequences = [class_mro(interp, b) if isinstance(b, UserClass) else [b] for b in cls.bases]
    sequences.append(list(cls.bases))
    merged: list[Any] = []
    sequences = [list(s) for s in sequences if s]
    while sequences:
        for sequence in sequences:
            head = sequence[0]
            if not any(head in other[1:] for other in sequences):
                break
        else:  # not linearisable: fall back to depth first
            merged.extend(x for s in sequences for x in s if x not in merged)
            break
        merged.append(head)
        sequences = [[x for x in s if x != head] for s in sequences]
        sequences = [s for s in sequences if s]
    cls.mro_cache = [cls, *merged]
    return cls.mro_cache


def class_attribute(interp: Interpreter, cls: UserClass, name: str, instance: Any) -> Any:
    """`name` looked up on the class's MRO, bound to `instance` when it is a method."""
    for entry in class_mro(interp, cls):
        if isinstance(entry, UserClass):
            namespace = interp.class_namespace(entry)
            if name in namespace:
                return _bind(interp, namespace[name], instance, entry)
        elif isinstance(entry, TorchClass) and name == "__init__":
            return TorchInit(entry, instance)
    return _MISSING


def _bind(interp: Interpreter, value: Any, instance: Any, owner: UserClass) -> Any:
    value = interp.resolve(value)
    if not isinstance(value, UserFunction):
        return value
    if value.kind == "staticmethod":
        return value
    if value.kind == "classmethod":
        return BoundMethod(value, owner)
    if instance is None:
        return value
    if value.kind == "property":
        from .model_calls import call_function

        return call_function(interp, value, [], {}, None, None, bound=instance)
    return BoundMethod(value, instance)


def super_attribute(interp: Interpreter, proxy: SuperProxy, name: str) -> Any:
    owner = getattr(proxy.self_value, "user_class", None) or getattr(proxy.self_value, "cls", None)
    if not isinstance(owner, UserClass) or not isinstance(proxy.cls, UserClass):
        return Unknown("super() outside a workspace class")
    mro = class_mro(interp, owner)
    after = mro[mro.index(proxy.cls) + 1:] if proxy.cls in mro else []
    for entry in after:
        if isinstance(entry, UserClass):
            namespace = interp.class_namespace(entry)
            if name in namespace:
                return _bind(interp, namespace[name], proxy.self_value, entry)
        elif isinstance(entry, TorchClass):
            if name == "__init__":
                return TorchInit(entry, proxy.self_value)
            return BuiltinMethod(proxy.self_value, name)
        elif isinstance(entry, LibraryValue):
            from .model_classes import LIGHTNING_MODULES

            if entry.path in LIGHTNING_MODULES and name == "__init__":
                return TorchInit(TorchClass("Module"), proxy.self_value)
            return Unknown(f"{entry.path} is a library class (library model; not derived)")
    if name == "__init__":
        return TorchInit(TorchClass("Module"), proxy.self_value)
    return Unknown(f"super().{name} is not found")


def _tensor_attribute(tensor: TensorValue, name: str) -> Any:
    if name == "shape":
        return tensor_shapes.shape_tuple(tensor)
    if name in ("T", "mT"):
        return tensor_shapes.method(tensor, "t" if name == "T" else "transpose", [] if name == "T"
                                    else [Arg(-2), Arg(-1)])  # fmt: skip
    if name == "data":
        return tensor.with_dims(tensor.dims)
    if name == "ndim":
        return len(tensor.dims) if tensor.dims is not None else Unknown("the rank", False)
    if name == "dtype":
        return tensor_shapes.TorchDtype(tensor.dtype or "float32")
    if name in ("requires_grad", "is_leaf"):
        return tensor.parameter
    if name in ("device", "grad", "is_cuda", "layout"):
        return Unknown(f"the tensor's {name}", maybe_module=False)
    return BuiltinMethod(tensor, name)


def _library_constant(path: str) -> Any:
    import math

    constants = {"math.pi": math.pi, "math.e": math.e, "math.inf": math.inf, "math.tau": math.tau,
                 "sys.maxsize": 2**63 - 1}  # fmt: skip
    if path in constants:
        return constants[path]
    if path in ("os.environ", "sys.argv"):
        return Unknown(f"{path} is set when the program runs", maybe_module=False)
    return LibraryValue(path)


# --- subscripts ----------------------------------------------------------------------------

def subscript(interp: Interpreter, obj: Any, key: Any) -> Any:
    """`obj[key]`."""
    if isinstance(key, Unknown):
        return Unknown(key.reason, _may_hold_modules(obj))
    if isinstance(obj, ModuleValue):
        return _module_item(obj, key)
    if isinstance(obj, (SList, SDict)) and obj.unknown:
        if isinstance(obj, SDict) and key in obj:
            return obj[key]
        return Unknown(obj.unknown)
    if isinstance(obj, TensorValue):
        return _tensor_item(obj, key)
    if isinstance(obj, ObjectValue) and isinstance(key, int):  # a NamedTuple
        values = list(obj.attrs.values())
        return values[key] if -len(values) <= key < len(values) else Unknown("out of range")
    if isinstance(obj, (list, tuple, str, dict)):
        try:
            result = obj[key]
        except (KeyError, IndexError, TypeError):
            return Unknown(f"`[{key!r}]` is not in it", maybe_module=False)
        if isinstance(result, list) and not isinstance(result, SList):
            result = SList(result)
        return result
    if isinstance(obj, SRange):
        try:
            item = obj.values[key]
        except (IndexError, TypeError):
            return Unknown("out of range", maybe_module=False)
        return item if isinstance(item, int) else SRange(item)
    if isinstance(obj, Unknown):
        return Unknown(obj.reason, True)
    return Unknown("a subscript not followed here", maybe_module=False)


def _may_hold_modules(obj: Any) -> bool:
    return isinstance(obj, (ModuleValue, SList, SDict, Unknown, tuple))


def _module_item(module: ModuleValue, key: Any) -> Any:
    if module.unknown_all:
        return Unknown(module.unknown_all)
    if module.base in LIST_CONTAINERS or module.base == "ParameterList":
        table = module.params if module.base == "ParameterList" else module.children
        items = list(table.values())
        if isinstance(key, slice):
            part = ModuleValue(module.type_name, "container")
            part.base = module.base
            for i, child in enumerate(list(module.children.values())[key]):
                part.set_child(str(i), child)
            return part
        if isinstance(key, int) and -len(items) <= key < len(items):
            return items[key]
        return Unknown(f"index {key!r} of {module.type_name} is not known here")
    if module.base in DICT_CONTAINERS or module.base == "ParameterDict":
        table = module.params if module.base == "ParameterDict" else module.children
        if key in table:
            return table[key]
        if key in module.unknown or module.unknown_extra:
            return Unknown(module.unknown.get(key) or module.unknown_extra or "")
        return Unknown(f"{key!r} is not in {module.type_name}")
    return Unknown(f"{module.type_name} is not subscriptable here", maybe_module=False)


def _tensor_item(tensor: TensorValue, key: Any) -> Any:
    if tensor.dims is None:
        return TensorValue(None, tensor.dtype, reason=tensor.reason)
    keys = key if isinstance(key, tuple) else (key,)
    dims = list(tensor.dims)
    out = []
    for k in keys:
        if k is None:
            out.append(tensor_shapes.Dim(1))
        elif k is Ellipsis:
            rest = len([x for x in keys if x is not None and x is not Ellipsis])
            keep = len(dims) - rest
            out.extend(dims[:keep])
            dims = dims[keep:]
        elif not dims:
            return TensorValue(None, tensor.dtype, reason="an index past the tensor's rank")
        elif isinstance(k, int) and not isinstance(k, bool):
            dims.pop(0)
        elif isinstance(k, slice):
            dim = dims.pop(0)
            if k == slice(None):
                out.append(dim)
            elif dim.value is not None:
                out.append(tensor_shapes.Dim(len(range(*k.indices(dim.value)))))
            else:
                out.append(tensor_shapes.Dim(None, None, 0, "a slice of a dim not known here"))
        else:
            return TensorValue(None, tensor.dtype, reason="an index not followed here")
    return TensorValue((*out, *dims), tensor.dtype)


# --- attribute assignment ------------------------------------------------------------------

def set_attribute(interp: Interpreter, obj: Any, name: str, value: Any, frame: Frame,
                  source: NameSource | None) -> None:  # fmt: skip
    """`obj.name = value` (nn.Module's __setattr__ rules for modules)."""
    if isinstance(obj, ModuleValue):
        if frame.uncertain is not None:
            _uncertain_set(obj, name, value, frame.uncertain)
            return
        obj.assign(name, value, source)
        if isinstance(value, ModuleValue):
            obj.note_site(name, frame.file, frame.statement)
    elif isinstance(obj, ObjectValue):
        interp.changed_globals(obj)
        if frame.uncertain is not None and obj.attrs.get(name, _MISSING) is not value:
            obj.attrs[name] = Unknown(frame.uncertain)
            obj.attr_sources.pop(name, None)
            return
        obj.attrs[name] = value
        if source is not None:
            obj.attr_sources[name] = source


def _uncertain_set(module: ModuleValue, name: str, value: Any, reason: str) -> None:
    try:
        old = module.lookup(name)
    except KeyError:
        old = _MISSING
    if old is value:
        return
    holds_state = isinstance(value, ModuleValue) or (
        isinstance(value, TensorValue) and (value.parameter or value.buffer_persistent is not None)
    ) or (isinstance(value, Unknown) and value.maybe_module)
    if holds_state or module.has_entry(name) or name in module.unknown:
        module.set_unknown(name, reason)
    else:
        module.attrs[name] = Unknown(reason, maybe_module=False)
        module.attr_sources.pop(name, None)


# --- iteration over containers ------------------------------------------------------------

def container_items(module: ModuleValue) -> list[Any] | None:
    if module.unknown_all or module.unknown or module.unknown_extra:
        return None
    if module.base in LIST_CONTAINERS:
        return list(module.children.values())
    if module.base in DICT_CONTAINERS:
        return list(module.children)
    if module.base == "ParameterList":
        return list(module.params.values())
    if module.base == "ParameterDict":
        return list(module.params)
    return None


def walk(module: ModuleValue, what: str) -> list[Any] | None:
    """`module.children()`, `.modules()`, `.parameters()`… when every part is known."""
    named = what.startswith("named_")
    kind = what.removeprefix("named_")
    found: list[Any] = []
    seen: set[int] = set()

    def visit(m: ModuleValue, prefix: str, depth: int) -> bool:
        if m.unknown_all or m.unknown or m.unknown_extra or depth > 64:
            return False
        if kind == "modules":
            if id(m) in seen:
                return True
            seen.add(id(m))
            found.append((prefix, m) if named else m)
        if kind in ("parameters", "buffers"):
            table = m.params if kind == "parameters" else m.buffers
            for name, tensor in table.items():
                if tensor is not None and id(tensor) not in seen:
                    seen.add(id(tensor))
                    found.append((prefix + name, tensor) if named else tensor)
        for name, child in m.children.items():
            if child is None:
                continue
            if kind == "children":
                found.append((name, child) if named else child)
            elif not visit(child, f"{prefix}{name}.", depth + 1):
                return False
        return True

    if kind == "children":
        if module.unknown_all or module.unknown or module.unknown_extra:
            return None
        visit_children = [(n, c) if named else c for n, c in module.children.items() if c]
        return SList(visit_children)
    if not visit(module, "", 0):
        return None
    if named and kind == "modules":
        found = [(p.rstrip("."), m) for p, m in found]
    return SList(found)

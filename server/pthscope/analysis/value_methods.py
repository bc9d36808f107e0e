"""Methods of the values the static evaluator knows: `nn.Module` and its containers
(`register_buffer`, `add_module`, `append`, …), lists, dicts, strings and tensors.

A method that changes a module or list while the frame is uncertain makes it unknown instead.
Appends inside a loop are counted, so a list built over `range(depth)` knows its length comes
from `depth`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import tensor_shapes
from .eval_objects import Frame, TorchClass
from .model_calls import (
    Given,
    add_child,
    as_parameter,
    describe,
    fill_container,
    make_arg,
    origin_of,
)
from .model_methods import (
    DICT_CONTAINERS,
    LIST_CONTAINERS,
    NO_EFFECT,
    RETURNS_SELF,
    STR_METHODS,
    WALKS,
    walk,
)
from .model_values import ModuleValue, SDict, SList, TensorValue, Unknown
from .torch_layers import Arg, make_layer

if TYPE_CHECKING:
    from .model_eval import Interpreter


def call_method(interp: Interpreter, obj: Any, name: str, values: list[Any],
                named: dict[str, Any], frame: Frame, positional: list[Given] | None = None,
                keywords: dict[str, Given] | None = None) -> Any:  # fmt: skip
    """`obj.name(*values, **named)`."""
    if isinstance(obj, ModuleValue):
        return _module_method(interp, obj, name, values, named, frame)
    if isinstance(obj, TorchClass) and name == "from_pretrained":
        return _from_pretrained(obj.name, values, named, frame)
    if isinstance(obj, SList):
        return _list_method(interp, obj, name, values, frame)
    if isinstance(obj, SDict):
        return _dict_method(interp, obj, name, values, named, frame)
    if isinstance(obj, TensorValue):
        if name == "__setitem__" or name == "__delitem__":
            return None
        args = [make_arg(interp, frame, f"Tensor.{name}", f"argument {i + 1}", v, n)
                for i, (v, n) in enumerate(positional or [(v, None) for v in values])]  # fmt: skip
        return tensor_shapes.method(obj, name, args)
    if isinstance(obj, str) and name in STR_METHODS:
        if not all(_plain(v) or isinstance(v, (tuple, list)) for v in [*values, *named.values()]):
            return Unknown(f"str.{name} of values not known here", maybe_module=False)
        try:
            result = getattr(obj, name)(*values, **named)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError):
            return Unknown(f"str.{name} fails here", maybe_module=False)
        if isinstance(result, str) and len(result) > 10_000:
            return Unknown("a string too long to follow", maybe_module=False)
        return SList(result) if isinstance(result, list) else result
    if isinstance(obj, tuple) and name in ("count", "index"):
        try:
            return getattr(obj, name)(*values)
        except (TypeError, ValueError):
            return Unknown(f"tuple.{name} fails here", maybe_module=False)
    return Unknown(f"`.{name}(...)` of {describe(obj)} is not followed here", maybe_module=False)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _count_append(interp: Interpreter, obj: Any, n: int = 1) -> None:
    if interp.loop_appends:
        entry = interp.loop_appends[-1].setdefault(id(obj), [obj, 0])
        entry[1] += n


# --- modules -------------------------------------------------------------------------------

def _module_method(interp: Interpreter, module: ModuleValue, name: str, values: list[Any],
                   named: dict[str, Any], frame: Frame) -> Any:  # fmt: skip
    uncertain = frame.uncertain
    if name in ("register_buffer", "register_parameter", "add_module", "register_module"):
        key = values[0] if values else named.get("name")
        value = values[1] if len(values) > 1 else named.get(
            "tensor", named.get("param", named.get("module")))
        if not isinstance(key, str):
            module.unknown_extra = module.unknown_extra or f"{name}() with a name not known here"
            return None
        if uncertain:
            module.set_unknown(key, uncertain)
            return None
        if name == "register_buffer":
            persistent = values[2] if len(values) > 2 else named.get("persistent", True)
            if not isinstance(persistent, bool):
                module.set_unknown(key, "whether the buffer is persistent is not known here")
            elif isinstance(value, TensorValue) or value is None:
                tensor = None if value is None else _owned(value, frame)
                module.set_buffer(key, tensor, persistent)
            else:
                module.set_unknown(key, _reason(value, "the buffer's value is not known here"))
        elif name == "register_parameter":
            if value is None:
                module.set_param(key, None)
            elif isinstance(value, TensorValue):
                module.set_param(key, _owned(value, frame))
            else:
                module.set_unknown(key, _reason(value, "the parameter is not known here"))
        else:
            if module.base in LIST_CONTAINERS and key.isdigit():
                _count_append(interp, module)
            add_child(module, key, value)
            if isinstance(value, ModuleValue):
                module.note_site(key, frame.file, frame.statement)
        return None
    if name in RETURNS_SELF:
        return module
    if name in NO_EFFECT:
        return None
    if name in WALKS:
        found = walk(module, name)
        if found is None:
            return Unknown(f"{name}() of a module with parts not known here", maybe_module=False)
        return found
    if name in ("get_submodule", "get_parameter", "get_buffer") and values and isinstance(values[0], str):
        from .model_methods import attribute

        target: Any = module
        for part in values[0].split(".") if values[0] else []:
            target = attribute(interp, target, part, frame)
        return target
    if module.base in LIST_CONTAINERS or module.base == "ParameterList":
        return _list_container_method(interp, module, name, values, frame)
    if module.base in DICT_CONTAINERS or module.base == "ParameterDict":
        return _dict_container_method(module, name, values, named, frame)
    if name in ("forward", "__call__", "state_dict", "load_state_dict"):
        return Unknown(f"{name}() is not followed here", maybe_module=False)
    return Unknown(f"`.{name}(...)` of {module.type_name} is not followed here", maybe_module=False)


def _owned(tensor: TensorValue, frame: Frame) -> TensorValue:
    """The tensor as registered here, remembering the statement that registers it."""
    copy = tensor.with_dims(tensor.dims)
    copy.dtype, copy.parameter = tensor.dtype, tensor.parameter
    copy.origin = origin_of(frame, None)
    return copy


def _reason(value: Any, default: str) -> str:
    return value.reason if isinstance(value, Unknown) else default


def _list_container_method(interp: Interpreter, module: ModuleValue, name: str,
                           values: list[Any], frame: Frame) -> Any:  # fmt: skip
    params = module.base == "ParameterList"
    mutating = ("append", "extend", "insert", "__iadd__", "__setitem__", "__delitem__", "pop")
    if name in mutating and frame.uncertain:
        module.unknown_all = module.unknown_all or frame.uncertain
        return module if name != "pop" else Unknown(frame.uncertain)
    table: dict[str, Any] = module.params if params else module.children

    def put(key: str, value: Any) -> None:
        if params:
            tensor = as_parameter(value)
            if tensor is None:
                module.set_unknown(key, _reason(value, "not a tensor known here"))
            else:
                module.set_param(key, tensor)
        else:
            add_child(module, key, value)

    if name == "append" and values:
        put(str(len(table)), values[0])
        _count_append(interp, module)
        return module
    if name in ("extend", "__iadd__") and values:
        items = interp.items_of(values[0])
        if items is None:
            module.unknown_all = module.unknown_all or _list_reason(values[0])
            return module
        for item in items:
            put(str(len(table)), item)
        _count_append(interp, module, len(items))
        return module
    if name in ("insert", "__setitem__", "__delitem__", "pop"):
        items = list(table.values())
        index = values[0] if values else -1
        if not isinstance(index, int):
            module.unknown_all = module.unknown_all or f"{name}() at an index not known here"
            return module
        removed: Any = None
        try:
            if name == "insert":
                items.insert(index, values[1])
            elif name == "__setitem__":
                items[index] = values[1]
            else:
                removed = items.pop(index)
        except IndexError:
            return Unknown("an index out of range", maybe_module=False)
        table.clear()
        for i, item in enumerate(items):
            put(str(i), item)
        return removed if name == "pop" else None
    return Unknown(f"`.{name}(...)` of {module.type_name} is not followed here", maybe_module=False)


def _list_reason(value: Any) -> str:
    if isinstance(value, Unknown):
        return value.reason
    return getattr(value, "unknown", None) or "its items are not known here"


def _dict_container_method(module: ModuleValue, name: str, values: list[Any],
                           named: dict[str, Any], frame: Frame) -> Any:  # fmt: skip
    params = module.base == "ParameterDict"
    table: dict[str, Any] = module.params if params else module.children
    if name in ("keys", "values", "items"):
        if module.unknown_all or module.unknown or module.unknown_extra:
            return _unknown_items("its entries are not all known here")
        return SList(getattr(table, name)())
    if name in ("__setitem__", "update", "__delitem__", "pop"):
        key = values[0] if values else None
        if frame.uncertain or (name != "update" and not isinstance(key, str)):
            if isinstance(key, str):
                module.set_unknown(key, frame.uncertain or "")
            else:
                module.unknown_all = module.unknown_all or frame.uncertain or "a key not known here"
            return None
        if name == "update":
            fill_container("ParameterDict" if params else "ModuleDict", module,
                           values[:1] or [SDict(named)], {})  # fmt: skip
            return None
        assert isinstance(key, str)
        if name == "__setitem__":
            if params:
                tensor = as_parameter(values[1])
                module.set_param(key, tensor) if tensor else module.set_unknown(key, "not a tensor")
            else:
                add_child(module, key, values[1])
        else:
            found = table.get(key)
            module.delete(key)
            return found
        return None
    if name == "get" and values and isinstance(values[0], str):
        return table.get(values[0], values[1] if len(values) > 1 else None)
    return Unknown(f"`.{name}(...)` of {module.type_name} is not followed here", maybe_module=False)


def _unknown_items(reason: str) -> SList:
    result = SList()
    result.unknown = reason
    return result


def _from_pretrained(name: str, values: list[Any], named: dict[str, Any], frame: Frame) -> Any:
    weights = values[0] if values else named.get("embeddings")
    module = ModuleValue(f"torch.nn.{name}", "layer", origin_of(frame, None))
    if not isinstance(weights, TensorValue) or weights.dims is None or len(weights.dims) != 2:
        module.unknown_all = "the shape of the pretrained embeddings is not known here"
        return module
    rows, cols = weights.dims
    return make_layer(name, {"num_embeddings": Arg(rows.value), "embedding_dim": Arg(cols.value),
                             "_weight": Arg(weights)}, frame.file.path, into=module)  # fmt: skip


# --- lists and dicts -----------------------------------------------------------------------

def _list_method(interp: Interpreter, items: SList, name: str, values: list[Any], frame: Frame) -> Any:
    mutating = name in ("append", "extend", "insert", "pop", "remove", "clear", "reverse", "sort",
                        "__setitem__", "__delitem__")  # fmt: skip
    if mutating:
        interp.changed_globals(items)
    if mutating and frame.uncertain:
        items.unknown = items.unknown or frame.uncertain
        return None
    if name == "append" and values:
        items.append(values[0])
        _count_append(interp, items)
        return None
    if name == "extend" and values:
        more = interp.items_of(values[0])
        if more is None:
            items.unknown = items.unknown or _list_reason(values[0])
        else:
            items.extend(more)
            _count_append(interp, items, len(more))
        return None
    if name == "copy":
        copied = SList(items)
        copied.unknown, copied.repeat = items.unknown, items.repeat
        return copied
    if items.unknown:
        if mutating:
            return None
        return Unknown(items.unknown)
    try:
        if name == "insert":
            items.insert(values[0], values[1])
        elif name == "__setitem__":
            items[values[0]] = values[1]
        elif name == "__delitem__":
            del items[values[0]]
        elif name in ("pop", "remove", "clear", "reverse", "index", "count"):
            return getattr(items, name)(*values)
        elif name == "sort":
            items.sort()
        else:
            return Unknown(f"list.{name} is not followed here", maybe_module=False)
    except (TypeError, ValueError, IndexError):
        return Unknown(f"list.{name} fails here", maybe_module=False)
    return None


def _dict_method(interp: Interpreter, mapping: SDict, name: str, values: list[Any],
                 named: dict[str, Any], frame: Frame) -> Any:  # fmt: skip
    mutating = ("__setitem__", "update", "setdefault", "pop", "__delitem__", "clear", "popitem")
    if name in mutating:
        interp.changed_globals(mapping)
    if name in mutating and frame.uncertain:
        if name in ("__setitem__", "setdefault") and values and _hashable(values[0]):
            mapping[values[0]] = Unknown(frame.uncertain)
        else:
            mapping.unknown = mapping.unknown or frame.uncertain
        return None
    try:
        if name == "__setitem__":
            if isinstance(values[0], Unknown):
                mapping.unknown = values[0].reason
            else:
                mapping[values[0]] = values[1]
            return None
        if name == "update":
            source = values[0] if values else {}
            if isinstance(source, dict):
                mapping.update(source)
                if getattr(source, "unknown", None):
                    mapping.unknown = getattr(source, "unknown", None)
            else:
                mapping.unknown = "update() from items not known here"
            mapping.update(named)
            return None
        if name in ("get", "setdefault", "pop"):
            if values[0] in mapping:
                return mapping.pop(values[0]) if name == "pop" else mapping[values[0]]
            if mapping.unknown:
                return Unknown(mapping.unknown)
            default = values[1] if len(values) > 1 else None
            if name == "setdefault":
                mapping[values[0]] = default
            return default
        if name in ("keys", "values", "items"):
            if mapping.unknown:
                return _unknown_items(mapping.unknown)
            return SList(getattr(mapping, name)())
        if name == "copy":
            copied = SDict(mapping)
            copied.unknown, copied.ordered = mapping.unknown, mapping.ordered
            return copied
        if name == "__delitem__":
            mapping.pop(values[0], None)
            return None
    except (TypeError, IndexError):
        return Unknown(f"dict.{name} fails here", maybe_module=False)
    return Unknown(f"dict.{name} is not followed here", maybe_module=False)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True

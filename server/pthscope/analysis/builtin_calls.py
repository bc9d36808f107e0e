"""The Python builtins model code calls (`range`, `len`, `int`, `zip`, `isinstance`, `getattr`,
`setattr`, `super`, …), evaluated on the static evaluator's values."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .eval_objects import Builtin, Frame, SuperProxy, TorchClass, TorchRef, UserClass, UserFunction
from .eval_operators import truth
from .model_calls import Given, call_value, make_arg
from .model_methods import attribute, class_mro, set_attribute
from .model_values import ModuleValue, ObjectValue, SDict, SList, SRange, TensorValue, Unknown

if TYPE_CHECKING:
    from .model_eval import Interpreter

_CONVERSIONS: dict[str, Callable[..., Any]] = {"int": int, "float": float, "str": str, "bool": bool, "abs": abs, "round": round}


def call_builtin(interp: Interpreter, name: str, positional: list[Given],
                 keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> Any:  # fmt: skip

    values = [v for v, _ in positional]
    named = {k: v for k, (v, _) in keywords.items()}
    unknown = next((v for v in [*values, *named.values()] if isinstance(v, Unknown)), None)
    if name == "range":
        if unknown is not None or not all(isinstance(v, int) for v in values) or not values:
            return Unknown(unknown.reason if unknown else "a range not known here", maybe_module=False)
        values_range = range(*values)
        source = None
        if values_range.step == 1:
            stop_value, stop_node = positional[0] if len(positional) == 1 else positional[1]
            source = make_arg(interp, frame, "range", "stop", stop_value, stop_node).source
        return SRange(values_range, source)
    if name == "len":
        return _length(interp, values[0]) if values else Unknown("len()", False)
    if name in _CONVERSIONS:
        if unknown is not None or not all(_plain(v) for v in values):
            if name == "bool" and values:
                known = truth(values[0])
                if known is not None:
                    return known
            return Unknown(unknown.reason if unknown else f"{name}() of a value not known here",
                           maybe_module=False)  # fmt: skip
        try:
            return _CONVERSIONS[name](*values)
        except (TypeError, ValueError, OverflowError):
            return Unknown(f"{name}() fails here", maybe_module=False)
    if name in ("min", "max", "sum", "any", "all", "sorted", "divmod", "pow"):
        return _aggregate(interp, name, values, named)
    if name in ("list", "tuple", "set", "frozenset", "reversed"):
        return _sequence(interp, name, values)
    if name == "dict":
        return _dict(interp, values, named)
    if name == "enumerate":
        items = interp.items_of(values[0]) if values else None
        start = values[1] if len(values) > 1 else named.get("start", 0)
        if items is None or not isinstance(start, int):
            return _unknown_list(values[0] if values else None, "enumerate()")
        return SList((start + i, item) for i, item in enumerate(items))
    if name == "zip":
        columns = [interp.items_of(v) for v in values]
        if any(c is None for c in columns):
            return _unknown_list(next(v for v, c in zip(values, columns, strict=True) if c is None), "zip()")
        return SList(zip(*columns, strict=False))
    if name in ("map", "filter") and len(values) >= 2:
        return _map(interp, name, values, frame)
    if name == "isinstance" and len(values) == 2:
        answer = is_instance(interp, values[0], values[1])
        return Unknown("isinstance() of a value not known here", False) if answer is None else answer
    if name == "issubclass" and len(values) == 2:
        return _issubclass(interp, values[0], values[1])
    if name in ("getattr", "hasattr", "setattr"):
        return _attributes(interp, name, values, frame)
    if name == "super":
        if len(values) == 2:
            return SuperProxy(values[0], values[1])
        return SuperProxy(frame.cls, frame.self_value)
    if name == "callable" and values:
        return isinstance(values[0], (UserFunction, UserClass, Builtin))
    if name == "repr" and values and _plain(values[0]):
        return repr(values[0])
    if name == "type" and len(values) == 1:
        owner = getattr(values[0], "user_class", None) or getattr(values[0], "cls", None)
        return owner if owner is not None else Unknown("type() is not followed here", False)
    if name == "object":
        return ObjectValue("object")
    if name in ("staticmethod", "classmethod", "property") and values:
        return values[0]
    if name == "print":
        return None
    return Unknown(f"{name}() is not followed here", maybe_module=False)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _unknown_list(value: Any, what: str) -> SList:
    result = SList()
    result.unknown = value.reason if isinstance(value, Unknown) else (
        getattr(value, "unknown", None) or f"the items of {what} are not known here")
    return result


def _length(interp: Interpreter, value: Any) -> Any:
    if isinstance(value, SRange):
        return len(value.values)
    if isinstance(value, TensorValue):
        if value.dims and value.dims[0].value is not None:
            return value.dims[0].value
        return Unknown("the tensor's first dim is not known here", False)
    items = interp.items_of(value)
    if items is None:
        return Unknown(getattr(value, "reason", None) or getattr(value, "unknown", None)
                       or "a length not known here", maybe_module=False)  # fmt: skip
    return len(items)


def _aggregate(interp: Interpreter, name: str, values: list[Any], named: dict[str, Any]) -> Any:

    if named.get("key") is not None:
        return Unknown(f"{name}(key=...) is not followed here", maybe_module=False)
    if name in ("min", "max", "sum", "any", "all", "sorted") and len(values) == 1:
        items = interp.items_of(values[0])
    else:
        items = list(values)
    if items is None:
        return Unknown(f"{name}() of items not known here", maybe_module=False)
    if name in ("any", "all"):
        truths = [truth(v) for v in items]
        if name == "any" and True in truths or name == "all" and False in truths:
            return name == "any"
        return Unknown(f"{name}() of values not known here", False) if None in truths else name == "all"
    if not all(_plain(v) or isinstance(v, tuple) for v in items):
        return Unknown(f"{name}() of values not known here", maybe_module=False)
    try:
        if name == "sum":
            return sum(items, named.get("start", 0))
        if name == "sorted":
            return SList(sorted(items, reverse=bool(named.get("reverse"))))
        if name in ("divmod", "pow"):
            return divmod(items[0], items[1]) if name == "divmod" else pow(*items)
        return min(items) if name == "min" else max(items)
    except (TypeError, ValueError, ZeroDivisionError):
        return Unknown(f"{name}() fails here", maybe_module=False)


def _sequence(interp: Interpreter, name: str, values: list[Any]) -> Any:
    if not values:
        return SList() if name == "list" else () if name == "tuple" else set()
    items = interp.items_of(values[0])
    if items is None:
        if name == "list":
            return _unknown_list(values[0], "list()")
        return Unknown(_why(values[0]), maybe_module=True)
    if name == "list":
        result = SList(items)
        result.repeat = getattr(values[0], "repeat", None)
        return result
    if name == "reversed":
        return SList(reversed(items))
    if name == "tuple":
        return tuple(items)
    try:
        return set(items) if name == "set" else frozenset(items)
    except TypeError:
        return Unknown("a set of values not known here", maybe_module=False)


def _why(value: Any) -> str:
    if isinstance(value, Unknown):
        return value.reason
    return getattr(value, "unknown", None) or "items not known here"


def _dict(interp: Interpreter, values: list[Any], named: dict[str, Any]) -> SDict:
    result = SDict()
    if values:
        source = values[0]
        if isinstance(source, dict):
            result.update(source)
            result.unknown = getattr(source, "unknown", None)
        else:
            pairs = interp.items_of(source)
            if pairs is None:
                result.unknown = _why(source)
            else:
                for pair in pairs:
                    if isinstance(pair, tuple) and len(pair) == 2:
                        result[pair[0]] = pair[1]
                    else:
                        result.unknown = "a dict from items not known here"
    result.update(named)
    return result


def _map(interp: Interpreter, name: str, values: list[Any], frame: Frame) -> Any:

    function, iterables = values[0], values[1:]
    columns = [interp.items_of(v) for v in iterables]
    if any(c is None for c in columns):
        return _unknown_list(iterables[0], f"{name}()")
    result = SList()
    for row in zip(*columns, strict=False):
        value = call_value(interp, function, [(v, None) for v in row], {}, frame, None)
        if name == "map":
            result.append(value)
        else:
            keep = truth(value)
            if keep is None:
                return _unknown_list(None, "filter()")
            if keep:
                result.append(row[0])
    return result


def _issubclass(interp: Interpreter, cls: Any, kind: Any) -> Any:

    if isinstance(cls, UserClass):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return any(k in class_mro(interp, cls) for k in kinds)
    return Unknown("issubclass() is not followed here", maybe_module=False)


def _attributes(interp: Interpreter, name: str, values: list[Any], frame: Frame) -> Any:
    if len(values) < 2:
        return Unknown(f"{name}() is not followed here")
    obj, attr = values[0], values[1]
    if not isinstance(attr, str):
        reason = f"{name}() with a name not known here"
        if isinstance(attr, Unknown):
            reason = f"{name}() with a name not known here ({attr.reason})"
        if name == "setattr" and isinstance(obj, ModuleValue):
            obj.unknown_extra = obj.unknown_extra or f"it is set by {reason}"
            return None
        return Unknown(reason)
    if name == "setattr":
        if len(values) >= 3:
            set_attribute(interp, obj, attr, values[2], frame, None)
        return None
    found = attribute(interp, obj, attr, frame)
    exists = _exists(obj, attr, found)
    if name == "hasattr":
        return Unknown(f"hasattr(..., {attr!r}) is not known here", False) if exists is None else exists
    if exists is False and len(values) >= 3:
        return values[2]
    return found


def _exists(obj: Any, attr: str, found: Any) -> bool | None:
    """Whether `obj.attr` exists, when that is known."""
    if not isinstance(found, Unknown):
        return True
    if isinstance(obj, ModuleValue):
        if obj.unknown_all or obj.unknown_extra or attr in obj.unknown:
            return None
        return False
    if isinstance(obj, ObjectValue) and obj.cls is None:
        return attr in obj.attrs
    return None


def is_instance(interp: Interpreter, value: Any, kind: Any) -> bool | None:
    """`isinstance(value, kind)`, or None when it is not known here."""
    if isinstance(kind, tuple):
        answers = [is_instance(interp, value, k) for k in kind]
        if True in answers:
            return True
        return None if None in answers else False
    if isinstance(value, Unknown):
        return None
    if isinstance(kind, Builtin):
        python = {"int": int, "float": float, "str": str, "bool": bool, "list": list,
                  "tuple": tuple, "dict": dict, "set": set, "object": object}.get(kind.name)  # fmt: skip
        if python is None:
            return None
        if isinstance(value, (ModuleValue, TensorValue, ObjectValue)):
            return python is object
        return isinstance(value, python)
    if isinstance(kind, TorchClass):
        if not isinstance(value, ModuleValue):
            return False
        if kind.name == "Module" or value.base == kind.name:
            return True
        if value.user_class is not None:
            return kind in class_mro(interp, value.user_class)
        return False
    if isinstance(kind, TorchRef):
        if kind.path in ("torch.Tensor", "torch.nn.Parameter", "torch.nn.parameter.Parameter"):
            if not isinstance(value, TensorValue):
                return False
            return value.parameter if kind.path != "torch.Tensor" else True
        return None
    if isinstance(kind, UserClass):
        owner = getattr(value, "user_class", None) or getattr(value, "cls", None)
        if isinstance(owner, UserClass):
            return kind in class_mro(interp, owner)
        return False if isinstance(value, (int, float, str, bool, tuple, TensorValue)) else None
    return None

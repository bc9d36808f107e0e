"""Expressions for the static evaluator (`model_eval.Interpreter` inherits these): names,
attributes, subscripts, literals, comprehensions, operators, conditional expressions, and the
items a `for` would see. Calls go to `model_calls`, the object protocol to `model_methods`."""

from __future__ import annotations

import ast
import dataclasses
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from . import model_calls, model_methods
from .eval_objects import Frame, UserFunction
from .eval_operators import (
    MAX_SEQUENCE,
    compare,
    hashable,
    maybe_module,
    plain,
    reason_of,
    safe_binop,
    short_text,
    truth,
)
from .model_values import ModuleValue, Repeat, SDict, SList, SRange, TensorValue, Unknown
from .tensor_shapes import broadcast

MAX_ITEMS = 10_000


if TYPE_CHECKING:
    from .model_eval import Interpreter


class Expressions:
    @property
    def interp(self) -> Interpreter:
        return cast("Interpreter", self)

    if TYPE_CHECKING:  # provided by the Interpreter

        def tick(self) -> None: ...

        def lookup(self, frame: Frame, name: str) -> Any: ...

        def assign(self, target: ast.expr, value: Any, frame: Frame, value_node: ast.expr | None,
                   force: bool = False) -> None: ...

    def eval(self, node: ast.expr, frame: Frame) -> Any:
        self.tick()
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            return Unknown(f"`{short_text(node)}` is not followed here", maybe_module=False)
        return method(node, frame)

    def _eval_Constant(self, node: ast.Constant, frame: Frame) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name, frame: Frame) -> Any:
        return self.lookup(frame, node.id)

    def _eval_Attribute(self, node: ast.Attribute, frame: Frame) -> Any:
        return model_methods.attribute(self.interp, self.eval(node.value, frame), node.attr, frame)

    def _eval_Subscript(self, node: ast.Subscript, frame: Frame) -> Any:
        obj = self.eval(node.value, frame)
        return model_methods.subscript(self.interp, obj, self.eval(node.slice, frame))

    def _eval_Slice(self, node: ast.Slice, frame: Frame) -> Any:
        parts = [None if p is None else self.eval(p, frame) for p in (node.lower, node.upper, node.step)]
        if any(isinstance(p, Unknown) for p in parts):
            return Unknown("a slice bound is not known here", maybe_module=False)
        return slice(*parts)

    def _eval_Call(self, node: ast.Call, frame: Frame) -> Any:
        return model_calls.call_node(self.interp, node, frame)

    def _eval_Tuple(self, node: ast.Tuple, frame: Frame) -> Any:
        items = self._elements(node.elts, frame)
        return tuple(items) if not isinstance(items, Unknown) else items

    def _eval_List(self, node: ast.List, frame: Frame) -> Any:
        items = self._elements(node.elts, frame)
        if isinstance(items, Unknown):
            result = SList()
            result.unknown = items.reason
            return result
        return SList(items)

    def _eval_Set(self, node: ast.Set, frame: Frame) -> Any:
        items = self._elements(node.elts, frame)
        try:
            return set(items) if not isinstance(items, Unknown) else items
        except TypeError:
            return Unknown("a set of values not known here", maybe_module=False)

    def _elements(self, elts: list[ast.expr], frame: Frame) -> list[Any] | Unknown:
        items: list[Any] = []
        for element in elts:
            if isinstance(element, ast.Starred):
                inner = self.items_of(self.eval(element.value, frame))
                if inner is None:
                    return Unknown(f"`{short_text(element)}` has items not known here")
                items.extend(inner)
            else:
                items.append(self.eval(element, frame))
        return items

    def _eval_Dict(self, node: ast.Dict, frame: Frame) -> Any:
        result = SDict()
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            value = self.eval(value_node, frame)
            if key_node is None:
                if isinstance(value, dict) and not getattr(value, "unknown", None):
                    result.update(value)
                else:
                    result.unknown = reason_of(value, "a ** in a dict")
                continue
            key = self.eval(key_node, frame)
            if isinstance(key, Unknown) or not hashable(key):
                result.unknown = reason_of(key, "a key")
            else:
                result[key] = value
        return result

    def _eval_JoinedStr(self, node: ast.JoinedStr, frame: Frame) -> Any:
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            assert isinstance(value, ast.FormattedValue)
            inner = self.eval(value.value, frame)
            if not plain(inner) or value.format_spec is not None:
                return Unknown(f"the f-string `{short_text(node)}` is not known here", maybe_module=False)
            parts.append(repr(inner) if value.conversion == ord("r") else str(inner))
        return "".join(parts)

    def _eval_BinOp(self, node: ast.BinOp, frame: Frame) -> Any:
        return self.binop(node.op, self.eval(node.left, frame), self.eval(node.right, frame))

    def _eval_UnaryOp(self, node: ast.UnaryOp, frame: Frame) -> Any:
        value = self.eval(node.operand, frame)
        if isinstance(node.op, ast.Not):
            known = truth(value)
            return Unknown(reason_of(value, "a condition"), False) if known is None else not known
        if isinstance(value, TensorValue):
            return value.with_dims(value.dims)
        if isinstance(value, (int, float)):
            ops: dict[type, Callable[[Any], Any]] = {
                ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
            }  # fmt: skip
            try:
                return ops[type(node.op)](value)
            except TypeError:  # ~1.5
                return Unknown(f"`{short_text(node)}` fails", maybe_module=False)
        return Unknown(reason_of(value, f"`{short_text(node)}`"), maybe_module=False)

    def _eval_BoolOp(self, node: ast.BoolOp, frame: Frame) -> Any:
        is_and = isinstance(node.op, ast.And)
        result: Any = None
        for value_node in node.values:
            result = self.eval(value_node, frame)
            known = truth(result)
            if known is None:
                return Unknown(reason_of(result, f"`{short_text(node)}`"), maybe_module(result))
            if known is not is_and:
                return result
        return result

    def _eval_Compare(self, node: ast.Compare, frame: Frame) -> Any:
        left = self.eval(node.left, frame)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node, frame)
            outcome = compare(op, left, right)
            if outcome is None:
                return Unknown(f"`{short_text(node)}` is not known here", maybe_module=False)
            if not outcome:
                return False
            left = right
        return True

    def _eval_IfExp(self, node: ast.IfExp, frame: Frame) -> Any:
        test = self.eval(node.test, frame)
        condition = truth(test)
        if condition is not None:
            value = self.eval(node.body if condition else node.orelse, frame)
            other = node.orelse if condition else node.body
            if isinstance(value, TensorValue) and isinstance(other, ast.Constant) and other.value is None:
                # `nn.Parameter(...) if bias else None`: the flag decides whether it exists.
                value = dataclasses.replace(value, presence=model_calls.make_arg(
                    self.interp, frame, "if", short_text(node.test), test, node.test).source)
            return value
        body, orelse = self.eval(node.body, frame), self.eval(node.orelse, frame)
        if plain(body) and plain(orelse) and body == orelse:
            return body
        reason = f"it depends on `{short_text(node.test)}`, whose value is not known here"
        return Unknown(reason, maybe_module(body) or maybe_module(orelse))

    def _eval_NamedExpr(self, node: ast.NamedExpr, frame: Frame) -> Any:
        value = self.eval(node.value, frame)
        self.assign(node.target, value, frame, node.value)
        return value

    def _eval_Lambda(self, node: ast.Lambda, frame: Frame) -> Any:
        return UserFunction(node, frame.file, frame if frame.globals is not None else None)

    def _eval_ListComp(self, node: ast.ListComp | ast.GeneratorExp, frame: Frame) -> Any:
        return self.comprehension(node, frame, lambda f: self.eval(node.elt, f))

    _eval_GeneratorExp = _eval_ListComp

    def _eval_SetComp(self, node: ast.SetComp, frame: Frame) -> Any:
        items = self.comprehension(node, frame, lambda f: self.eval(node.elt, f))
        try:
            return set(items) if not items.unknown else items
        except TypeError:
            return Unknown("a set of values not known here", maybe_module=False)

    def _eval_DictComp(self, node: ast.DictComp, frame: Frame) -> Any:
        pairs = self.comprehension(node, frame,
                                   lambda f: (self.eval(node.key, f), self.eval(node.value, f)))  # fmt: skip
        result = SDict()
        if pairs.unknown:
            result.unknown = pairs.unknown
            return result
        for key, value in pairs:
            if isinstance(key, Unknown) or not hashable(key):
                result.unknown = reason_of(key, "a key")
            else:
                result[key] = value
        return result

    def comprehension(self, node: Any, frame: Frame, element: Any) -> SList:
        """The items of a comprehension; its `repeat` when it runs over one `range(...)`."""
        scope = Frame(frame.file, parent=frame, globals=frame.globals or frame,
                      self_value=frame.self_value, cls=frame.cls, uncertain=frame.uncertain,
                      statement=frame.statement, name=frame.name)  # fmt: skip
        result = SList()
        first = self.eval(node.generators[0].iter, frame)

        def run(index: int, iterable: Any) -> None:
            generator = node.generators[index]
            items = self.items_of(iterable)
            if items is None:
                result.unknown = (f"it is built over `{short_text(generator.iter)}`, whose items are "
                                  "not known here")  # fmt: skip
                if isinstance(iterable, Unknown) and iterable.reason:
                    result.unknown += f" ({iterable.reason})"
                return
            for item in items:
                self.assign(generator.target, item, scope, None, force=True)
                wanted = [truth(self.eval(test, scope)) for test in generator.ifs]
                if None in wanted:
                    result.unknown = f"a condition of `{short_text(node)}` is not known here"
                    return
                if not all(wanted):
                    continue
                if index + 1 < len(node.generators):
                    run(index + 1, self.eval(node.generators[index + 1].iter, scope))
                else:
                    result.append(element(scope))
                if len(result) > MAX_SEQUENCE:
                    result.unknown = "it has too many items"
                    return

        run(0, first)
        if (isinstance(first, SRange) and first.source is not None and len(node.generators) == 1
                and not node.generators[0].ifs):  # fmt: skip
            result.repeat = Repeat(first.source, -first.values.start)
        return result

    # --- operators ---------------------------------------------------------------------

    def binop(self, op: ast.operator, left: Any, right: Any) -> Any:
        if isinstance(left, TensorValue) or isinstance(right, TensorValue):
            if isinstance(op, ast.MatMult):
                return TensorValue(None, reason="a matrix product")
            if isinstance(left, TensorValue) and isinstance(right, TensorValue):
                return broadcast(left, right)
            tensor = left if isinstance(left, TensorValue) else right
            other = right if tensor is left else left
            if isinstance(other, (int, float, bool)):
                return tensor.with_dims(tensor.dims)
            return TensorValue(None, tensor.dtype, reason=reason_of(other, "an operand"))
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return Unknown(reason_of(left if isinstance(left, Unknown) else right, "an operand"),
                           maybe_module=False)  # fmt: skip
        return safe_binop(op, left, right)

    # --- iteration ---------------------------------------------------------------------

    def items_of(self, value: Any) -> list[Any] | None:
        """The items a `for` would see, or None when they are not known here."""
        if isinstance(value, SRange):
            return list(value.values) if len(value.values) <= MAX_ITEMS else None
        if isinstance(value, (SList, SDict)) and value.unknown:
            return None
        if isinstance(value, (list, tuple, str, set, frozenset)):
            return list(value) if len(value) <= MAX_ITEMS else None
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, ModuleValue):
            return model_methods.container_items(value)
        return None

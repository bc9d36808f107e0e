"""Operators of the static evaluator on its values: truth, comparisons and arithmetic, with
limits so that no result is too big to be a model size (`2 ** 10**9`, `"a" * 10**12`)."""

from __future__ import annotations

import ast
import operator
from typing import Any

from .model_values import ModuleValue, ObjectValue, SDict, SList, SRange, TensorValue, Unknown

MAX_SEQUENCE = 100_000


def reason_of(value: Any, what: str) -> str:
    if isinstance(value, Unknown):
        return value.reason
    return f"{what} is not known here"


def plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, tuple))


def hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def maybe_module(value: Any) -> bool:
    if isinstance(value, Unknown):
        return value.maybe_module
    return isinstance(value, (ModuleValue, TensorValue, SList, SDict, ObjectValue))


def truth(value: Any) -> bool | None:
    """The truth of a value, or None when it is not known here."""
    if isinstance(value, (Unknown, TensorValue)):
        return None
    if isinstance(value, (SList, SDict)):
        return None if value.unknown and not value else bool(value)
    if isinstance(value, ModuleValue):
        if value.kind == "container":
            return None if value.unknown_all else bool(value.children or value.params)
        return True
    if isinstance(value, SRange):
        return bool(value.values)
    if value is None or isinstance(value, (bool, int, float, str, tuple, set, frozenset, dict,
                                           list, range)):  # fmt: skip
        return bool(value)
    return True


def compare(op: ast.cmpop, left: Any, right: Any) -> bool | None:
    if isinstance(op, (ast.Is, ast.IsNot)):
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            if right is None and isinstance(left, Unknown) or left is None and isinstance(right, Unknown):
                return None
            return None
        same = left is right or (left is None and right is None)
        if plain(left) and plain(right) and not isinstance(left, (int, float, str)):
            same = left is right
        return same if isinstance(op, ast.Is) else not same
    if isinstance(left, (Unknown, TensorValue)) or isinstance(right, (Unknown, TensorValue)):
        return None
    if isinstance(op, (ast.In, ast.NotIn)):
        if isinstance(right, (SList, SDict)) and right.unknown:
            return None
        if isinstance(right, ModuleValue):
            inside: bool | None = str(left) in right.children if right.kind == "container" else None
        elif isinstance(right, SRange):
            inside = left in right.values
        else:
            try:
                inside = left in right
            except TypeError:
                return None
        if inside is None:
            return None
        return inside if isinstance(op, ast.In) else not inside
    ops = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge}  # fmt: skip
    if not (plain(left) or isinstance(left, (list, dict, set))) or not (
        plain(right) or isinstance(right, (list, dict, set))
    ):
        if isinstance(op, (ast.Eq, ast.NotEq)):
            same = left is right
            return same if isinstance(op, ast.Eq) else not same
        return None
    try:
        return bool(ops[type(op)](left, right))
    except TypeError:
        return None


_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
    ast.BitOr: operator.or_, ast.BitAnd: operator.and_, ast.BitXor: operator.xor,
}  # fmt: skip


def safe_binop(op: ast.operator, left: Any, right: Any) -> Any:
    """`left op right` on known plain values, refusing results too big to be model sizes."""
    function = _BINOPS.get(type(op))
    if function is None:
        return Unknown("an operator not followed here", maybe_module=False)
    if isinstance(op, (ast.Pow, ast.LShift)) and isinstance(right, int) and abs(right) > 4096:
        return Unknown("a number too big to be a size", maybe_module=False)
    if isinstance(op, ast.Mult):
        for seq, count in ((left, right), (right, left)):
            if (isinstance(seq, (str, list, tuple)) and isinstance(count, int)
                    and len(seq) * max(count, 0) > MAX_SEQUENCE):  # fmt: skip
                return Unknown("a sequence too long to follow", maybe_module=False)
    if isinstance(left, SDict) and isinstance(right, dict) and isinstance(op, ast.BitOr):
        merged = SDict(left)
        merged.update(right)
        return merged
    try:
        result = function(left, right)
    except Exception:
        return Unknown(f"`{left!r} {type(op).__name__} {right!r}` fails", maybe_module=False)
    if isinstance(result, int) and not isinstance(result, bool) and result.bit_length() > 4096:
        return Unknown("a number too big to be a size", maybe_module=False)
    if isinstance(result, list) and not isinstance(result, SList):
        result = SList(result)
    return result


def short_text(node: ast.AST) -> str:
    """A node's source, shortened for a message."""
    text = ast.unparse(node)
    return text if len(text) <= 80 else text[:77] + "..."

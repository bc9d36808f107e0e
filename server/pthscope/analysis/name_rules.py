"""What a parameter loop does to each parameter name, when that is statically clear.

`loop_rule(loop)` reads a `for name, param in m.named_parameters():` (or `m.parameters()`) loop
and returns a function `name -> True | False | None` (None: the loop leaves that parameter
alone), or None when the loop does more than simple conditions on the name can express. The
returned function is built from closures once, so evaluating 30,000 names stays cheap. Only
string tests on the name are understood; nothing in the user's code is run.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

NameRule = Callable[[str], "bool | None"]
_Expr = Callable[[str], Any]
_Step = Callable[[str, list[Any]], bool]


class _Unclear(Exception):
    """The loop does something that simple name tests cannot describe."""


def loop_rule(loop: ast.For) -> NameRule | None:
    """A function giving the requires_grad each parameter name ends up with, or None."""
    target = loop.target
    name_var: str | None = None
    param_var: str
    if isinstance(target, ast.Name):
        param_var = target.id
    elif (
        isinstance(target, ast.Tuple)
        and len(target.elts) == 2
        and all(isinstance(e, ast.Name) for e in target.elts)
    ):
        name_var, param_var = (e.id for e in target.elts)  # type: ignore[attr-defined]
    else:
        return None
    try:
        block = _block(loop.body, name_var, param_var)
    except _Unclear:
        return None

    def rule(name: str) -> bool | None:
        state: list[Any] = [None]
        block(name, state)
        value: bool | None = state[0]
        return value

    return rule


def _block(body: list[ast.stmt], name_var: str | None, param_var: str) -> _Step:
    steps = [step for s in body if (step := _stmt(s, name_var, param_var)) is not None]

    def run(name: str, state: list[Any]) -> bool:
        return all(step(name, state) for step in steps)

    return run


def _stmt(node: ast.stmt, name_var: str | None, param_var: str) -> _Step | None:
    if isinstance(node, ast.Continue):
        return lambda name, state: False
    if isinstance(node, ast.If):
        test = _expr(node.test, name_var)
        then = _block(node.body, name_var, param_var)
        other = _block(node.orelse, name_var, param_var)
        return lambda name, state: then(name, state) if test(name) else other(name, state)
    value_node = _flag_value(node, param_var)
    if value_node is not None:
        value = _expr(value_node, name_var)

        def assign(name: str, state: list[Any]) -> bool:
            state[0] = bool(value(name))
            return True

        return assign
    if isinstance(node, (ast.Break, ast.Return, ast.For, ast.While)) or "requires_grad" in ast.dump(
        node
    ):
        raise _Unclear
    return None


def _flag_value(node: ast.stmt, param_var: str) -> ast.expr | None:
    """The value of `param.requires_grad = v` or `param.requires_grad_(v)`."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if (
            isinstance(target, ast.Attribute)
            and target.attr == "requires_grad"
            and isinstance(target.value, ast.Name)
            and target.value.id == param_var
        ):
            return node.value
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "requires_grad_"
            and isinstance(func.value, ast.Name)
            and func.value.id == param_var
        ):
            return node.value.args[0] if node.value.args else ast.Constant(True)
    return None


def _expr(node: ast.expr, name_var: str | None) -> _Expr:
    if isinstance(node, ast.Constant):
        constant = node.value
        return lambda name: constant
    if isinstance(node, ast.Name) and node.id == name_var:
        return lambda name: name
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [_expr(e, name_var) for e in node.elts]
        return lambda name: tuple(item(name) for item in items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operand = _expr(node.operand, name_var)
        return lambda name: not operand(name)
    if isinstance(node, ast.BoolOp):
        values = [_expr(v, name_var) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda name: all(v(name) for v in values)
        return lambda name: any(v(name) for v in values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        return _compare(node, name_var)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.keywords:
        return _method(node, node.func, name_var)
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and type(node.slice.value) is int
    ):
        base, index = _expr(node.value, name_var), node.slice.value
        return lambda name: _index(base(name), index)
    raise _Unclear


def _compare(node: ast.Compare, name_var: str | None) -> _Expr:
    left, right, op = _expr(node.left, name_var), _expr(node.comparators[0], name_var), node.ops[0]
    if isinstance(op, ast.In):
        return lambda name: left(name) in right(name)
    if isinstance(op, ast.NotIn):
        return lambda name: left(name) not in right(name)
    if isinstance(op, ast.Eq):
        return lambda name: left(name) == right(name)
    if isinstance(op, ast.NotEq):
        return lambda name: left(name) != right(name)
    raise _Unclear


def _method(node: ast.Call, func: ast.Attribute, name_var: str | None) -> _Expr:
    if func.attr not in ("startswith", "endswith", "split"):
        raise _Unclear
    base = _expr(func.value, name_var)
    args = [_expr(a, name_var) for a in node.args]
    method = func.attr
    return lambda name: getattr(str(base(name)), method)(*(a(name) for a in args))


def _index(value: Any, index: int) -> Any:
    try:
        return value[index]
    except (IndexError, TypeError):
        return None

"""What a parameter loop sets `requires_grad` to, and calls of this file's freezing helpers.

The walk in collect.py records direct `requires_grad` assignments and `requires_grad_()` calls
itself; it asks `loop_flag_values` about a `for … in m.named_parameters():` loop, and once the
walk is done `helper_flag_ops` turns `freeze(model)` into a `FlagOp` when `freeze` is defined
in the file and sets `requires_grad` on that argument; the helper's own statements on that
parameter become the op's `inner` ops, so that hovers can tell which parameters the call sets.
"""

from __future__ import annotations

import ast
from typing import NamedTuple

from .ast_shapes import bool_const, combine
from .facts import FlagOp, Span
from .flow import Value
from .source import Positions


class NameArg(NamedTuple):
    """A name passed to a call: `freeze(model)` → callee "freeze", slot 0, var "model"."""

    callee: str
    slot: int | str
    var: str
    scope: str
    line: int
    stmt: ast.stmt
    value: Value | None = None  # what `var` holds at the call (flow.py)


def loop_flag_values(pos: Positions, loop: ast.For) -> tuple[list[bool | None], list[Span]] | None:
    """Values a parameter loop assigns to `requires_grad` and where, or None if it assigns none."""
    values: list[bool | None] = []
    sites: list[Span] = []
    for inner in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
        if isinstance(inner, ast.Assign):
            for target in inner.targets:
                if isinstance(target, ast.Attribute) and target.attr == "requires_grad":
                    values.append(bool_const(inner.value))
                    sites.append(pos.tail_span(target, len("requires_grad")))
        elif (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "requires_grad_"
        ):
            values.append(bool_const(inner.args[0]) if inner.args else True)
            sites.append(pos.tail_span(inner.func, len("requires_grad_")))
    return (values, sites) if values else None


def helper_flag_ops(
    flag_ops: list[FlagOp],
    local_functions: dict[str, tuple[str, ...]],
    name_args: list[NameArg],
    model_vars: set[str],
    pos: Positions,
) -> list[FlagOp]:
    """`freeze(model_ft)` where `freeze` is defined here and sets requires_grad on its arg."""
    ops: list[FlagOp] = []
    helpers: dict[str, dict[int | str, bool | None]] = {}
    inner: dict[tuple[str, int | str], list[FlagOp]] = {}
    for op in flag_ops:
        params = local_functions.get(op.scope)
        if params and op.var in params:
            slots = helpers.setdefault(op.scope, {})
            value = combine([slots[op.var], op.value]) if op.var in slots else op.value
            slots[op.var] = slots[params.index(op.var)] = value
            inner.setdefault((op.scope, op.var), []).append(op)
            inner[(op.scope, params.index(op.var))] = inner[(op.scope, op.var)]
    for arg in name_args:
        slots = helpers.get(arg.callee, {})
        if arg.slot in slots and arg.var in model_vars:
            stmt = pos.span(arg.stmt)
            name_at = pos.lines[stmt.start_line].find(arg.callee, stmt.start_char)
            site = Span(arg.line, max(name_at, 0), arg.line, max(name_at, 0) + len(arg.callee))
            op = FlagOp(arg.var, arg.scope, "helper", (), slots[arg.slot], stmt, [site])
            op.target = arg.value
            op.inner = list(inner.get((arg.callee, arg.slot), []))
            ops.append(op)
    return ops

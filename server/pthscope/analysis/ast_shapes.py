"""Small questions about the shape of AST nodes, asked by the walk in `collect.py`.

`attr_chain` reads `model.layer1[0].conv1` as a name and a path; the others say what a
constant, a loop target or a for-loop's iterable is. Nothing here records facts.
"""

from __future__ import annotations

import ast

from .facts import PathElement

PARAM_ITERATORS = {
    "parameters", "named_parameters", "children", "named_children", "modules", "named_modules",
}  # fmt: skip
# Statements with bodies: the walk visits their parts, not the statement as one.
COMPOUND = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor,
    ast.While, ast.With, ast.AsyncWith, ast.Try,
)  # fmt: skip


def root_name(node: ast.expr) -> str | None:
    """The name an attribute or item chain starts from: `model` of `model.blocks[i].fc`."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def attr_chain(node: ast.AST) -> tuple[str, tuple[PathElement, ...]] | None:
    """`model.layer1[0].conv1` → ("model", ("layer1", 0, "conv1")); None for other shapes."""
    path: list[PathElement] = []
    while True:
        if isinstance(node, ast.Attribute):
            path.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript):
            index = node.slice
            if not (isinstance(index, ast.Constant) and type(index.value) is int):
                return None
            path.append(index.value)
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, tuple(reversed(path))
        else:
            return None


def bool_const(node: ast.AST | None) -> bool | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    return None


def combine(values: list[bool | None]) -> bool | None:
    """False if all are False, True if all are True, else None (it depends)."""
    if values and all(v is False for v in values):
        return False
    if values and all(v is True for v in values):
        return True
    return None


def param_iter_call(node: ast.AST) -> ast.Call | None:
    """The `x.parameters()` call a for-loop iterates over (through enumerate/list)."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("enumerate", "list")
        and node.args
    ):
        node = node.args[0]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in PARAM_ITERATORS
    ):
        return node
    return None


def target_names(target: ast.AST) -> list[str]:
    """The names an assignment or loop target binds."""
    if isinstance(target, ast.Name):
        return [target.id]
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def push_children(stack: list[ast.AST], node: ast.AST) -> None:
    """`stack.extend(ast.iter_child_nodes(node))` without the `ctx` leaves, a bit faster."""
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, ast.AST))
        elif isinstance(value, ast.AST) and not isinstance(value, ast.expr_context):
            stack.append(value)

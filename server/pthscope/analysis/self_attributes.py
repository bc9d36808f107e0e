"""The model a class keeps on `self` (`self.model = Net()` in `__init__`), for the methods that
load into it (`self.model.load_state_dict(...)`).

An attribute is followed only when nothing else can change it: it is set once, by a statement at
the top of `__init__`, and no other statement of the file stores into it or under it
(`self.model = ...` in another method, `self.model.fc = ...`, `trainer.model.head = ...`,
`del self.model`, `setattr(self, ...)`). Anything else leaves it unknown (UNCLEAR).
"""

from __future__ import annotations

import ast
from collections import Counter

from .ast_shapes import attr_chain

_ANY = "*"  # a setattr/delattr whose attribute name is not a constant: any attribute may change


def stored_attributes(tree: ast.Module) -> Counter[str]:
    """How many statements of the file store into (or under) an attribute of each name, by its
    first attribute after the name it starts from: `self.model.fc = m` counts `model`."""
    stores: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for element in _elements(target):
                    first = _first_attribute(element)
                    if first is not None:
                        stores[first] += 1
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            name = node.args[1] if len(node.args) > 1 else None
            stores[name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else _ANY] += 2
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith, ast.comprehension)):
            bound = [node.target] if not isinstance(node, (ast.With, ast.AsyncWith)) else [
                item.optional_vars for item in node.items if item.optional_vars is not None]
            for target in bound:
                for element in _elements(target):
                    first = _first_attribute(element)
                    if first is not None:
                        stores[first] += 2  # never followed
    return stores


def followed_attributes(cls: ast.ClassDef, stores: Counter[str]) -> set[str]:
    """The attributes of `cls`'s instances that hold what `__init__` set them to everywhere."""
    init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    if stores[_ANY] or init is None or not init.args.args or init.args.args[0].arg != "self":
        return set()
    set_there = [self_attribute(stmt) for stmt in init.body if isinstance(stmt, ast.Assign)]
    return {name for name in set_there if name is not None and stores[name] == 1}


def self_attribute(node: ast.Assign) -> str | None:
    """X, when `node` is `self.X = value`."""
    if len(node.targets) != 1:
        return None
    chain = attr_chain(node.targets[0])
    if chain is None or chain[0] != "self" or len(chain[1]) != 1 or not isinstance(chain[1][0], str):
        return None
    return chain[1][0]


def _elements(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [e for t in target.elts for e in _elements(t)]
    if isinstance(target, ast.Starred):
        return _elements(target.value)
    return [target]


def _first_attribute(target: ast.expr) -> str | None:
    """`a.b.c[0] = v` → "b"; None for a plain name."""
    first = None
    node = target
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute):
            first = node.attr
        node = node.value
    return first

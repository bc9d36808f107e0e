"""Which `self.<name>` attributes of a file's classes hold an `nn.Module`, so that
`torch.save(self.bert.cpu(), path)` is known to pickle a whole module (PTH003) like
`torch.save(model, path)`.

An attribute counts when the class says so: an annotation (`bert: BertModel` in the class
body, `self.bert: BertModel = ...`) or an assignment of a construction (`self.bert =
BertModel(config)`) naming a module class — an `nn.Module` subclass of this file, a
`torch.nn` class (`nn.Linear`, `nn.Sequential`), or a class imported from a workspace file
whose own bases say it is an `nn.Module`. Anything else (a factory, a name bound elsewhere, an
attribute assigned two different kinds of value) is not guessed: the save stays unreported.
"""

from __future__ import annotations

import ast

from .model_classes import FileMember, ModelSources, SourceFile, parse_source, resolve_import
from .paths import dotted_name

# Calls on a module that return the module itself (`self.bert.cpu()` saves `self.bert`).
RETURNS_MODULE = frozenset({"cpu", "cuda", "to", "eval", "train", "float", "half", "double", "bfloat16",
                            "requires_grad_", "share_memory"})  # fmt: skip
_TORCH_NN = ("nn.", "torch.nn.")
_NOT_MODULES = frozenset({"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"})


def saved_object(node: ast.expr) -> ast.expr:
    """The object a `torch.save` argument saves, past calls that return it (`.cpu()`, `.to(d)`)."""
    while (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
           and node.func.attr in RETURNS_MODULE):  # fmt: skip
        node = node.func.value
    return node


def module_attributes(tree: ast.Module, source: str, path: str, module_classes: set[str],
                      folders: tuple[str, ...]) -> set[str]:  # fmt: skip
    """`self.<name>` (as that text) for each attribute of a class here that holds a module: one
    annotation or construction says so and nothing given to it says otherwise (None, a
    constant, an optimizer; what a call of something else returns is not known either way)."""
    kinds: dict[str, set[bool | None]] = {}  # attribute → what each thing given to it is
    resolver = _ModuleClasses(tree, source, path, module_classes, folders)
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                kinds.setdefault(stmt.target.id, set()).add(resolver.is_module(stmt.annotation) or None)
        for node in ast.walk(cls):
            if isinstance(node, ast.AnnAssign) and (name := _self_attribute(node.target)):
                kinds.setdefault(name, set()).add(resolver.is_module(node.annotation) or None)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if name := _self_attribute(target):
                        kinds.setdefault(name, set()).add(resolver.holds_module(node.value))
    return {f"self.{name}" for name, found in kinds.items() if True in found and False not in found}


def _self_attribute(node: ast.expr) -> str | None:
    """`name` for `self.name`."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


class _ModuleClasses:
    """Whether a class expression names an nn.Module class (this file, torch.nn, or imported
    from a workspace file), read statically."""

    def __init__(self, tree: ast.Module, source: str, path: str, module_classes: set[str],
                 folders: tuple[str, ...]) -> None:  # fmt: skip
        self.tree, self.source, self.path = tree, source, path
        self.local = module_classes
        self.classes = {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        self.folders = folders
        self._sources: ModelSources | None = None
        self._importer: SourceFile | None = None

    def holds_module(self, value: ast.expr) -> bool | None:
        """Whether an assigned value is a module: True for a module class's construction, False
        for a literal or another known class's, None when it cannot be told."""
        if isinstance(value, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr)):
            return False
        if not isinstance(value, ast.Call):
            return None
        if self.is_module(value.func):
            return True
        name = dotted_name(value.func) or ""
        known = name in self.classes or (name.startswith("torch.") and not name.startswith("torch.nn."))
        return False if known else None

    def is_module(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "BertModel"
            node = ast.Name(node.value)
        name = dotted_name(node)
        if name is None:
            return False
        if name.startswith(_TORCH_NN):
            rest = name.removeprefix("torch.").removeprefix("nn.")  # nn.Linear, not nn.utils.…
            return "." not in rest and rest[:1].isupper() and rest not in _NOT_MODULES
        if name in self.local:
            return True
        return "." not in name and self._imported_module_class(name)

    def _imported_module_class(self, name: str) -> bool:
        if not self.folders:
            return False
        if self._sources is None:
            self._sources = ModelSources(self.folders)
            self._importer = parse_source(self.path, self.source, "__main__")
        importer = self._importer
        target = resolve_import(self._sources, importer, name) if importer is not None else None
        if not isinstance(target, FileMember) or target.name is None:
            return False
        for stmt in target.file.top_level.get(target.name, []):
            if isinstance(stmt, ast.ClassDef):
                bases = [dotted_name(b) or "" for b in stmt.bases]
                return any(b.endswith("Module") and (b == "Module" or b.startswith(_TORCH_NN)) for b in bases)
        return False

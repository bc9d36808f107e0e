"""The callable and namespace values of the static evaluator: classes and functions of the
workspace, torch and library references, bound methods, `super()`, `functools.partial`.

They only describe what the source says; calling one is `model_calls.call`'s job.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from .model_classes import SourceFile
from .model_values import NameSource


@dataclass(repr=False)
class Frame:
    """One function (or module, or class body) being evaluated.

    `uncertain` is set while statements run whose execution is not known (an `if` on a value
    not known here, a loop over items not known here): their writes make what they touch
    unknown, with that reason.
    """

    file: SourceFile
    env: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, NameSource] = field(default_factory=dict)
    parent: Frame | None = None  # the enclosing function's frame (closures)
    globals: Frame | None = None  # the module's frame (None: this is one)
    self_value: Any = None
    cls: Any = None  # the class whose method runs (for super())
    uncertain: str | None = None
    prelude: bool = False  # module top level or a construction site: loops are not run
    statement: ast.stmt | None = None
    returned: Any = None
    maybe_returned: str | None = None
    name: str = "<module>"
    declared_global: set[str] = field(default_factory=set)  # `global x` in this function


@dataclass(eq=False, repr=False)
class UserFunction:
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    file: SourceFile
    closure: Frame | None
    kind: str = ""  # "staticmethod", "classmethod", "property" or ""
    owner: Any = None  # the UserClass defining it, for super()

    @property
    def name(self) -> str:
        return getattr(self.node, "name", "<lambda>")

    def __repr__(self) -> str:
        return f"<function {self.name}>"


@dataclass(eq=False, repr=False)
class UserClass:
    node: ast.ClassDef
    file: SourceFile
    bases: list[Any]
    is_module: str  # "yes", "no", "maybe"
    namespace: dict[str, Any] | None = None  # the class body's names, evaluated on first use
    dataclass: bool = False
    namedtuple: bool = False
    closure: Frame | None = None  # the function frame the class statement ran in
    mro_cache: list[Any] | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def qualname(self) -> str:
        return f"{self.file.module_name}.{self.node.name}"

    def __repr__(self) -> str:
        return f"<class {self.qualname}>"


@dataclass(frozen=True)
class TorchClass:
    """A torch.nn module class: a table layer, a container, a wrapper or a base."""

    name: str


@dataclass(frozen=True)
class TorchRef:
    """Any other name under torch: a module (`torch.nn.functional`) or a function."""

    path: str


@dataclass(frozen=True)
class LibraryValue:
    """A name from a library outside the workspace (or the standard library)."""

    path: str


@dataclass(frozen=True)
class ModuleObject:
    """A workspace module imported as a whole (`import models`)."""

    file: SourceFile


@dataclass(frozen=True)
class LazyImport:
    """An import not yet resolved (resolving is deferred so import cycles are harmless)."""

    file: SourceFile
    stmt: ast.Import | ast.ImportFrom
    alias: ast.alias


@dataclass(eq=False)
class BoundMethod:
    function: UserFunction
    self_value: Any


@dataclass(eq=False)
class BuiltinMethod:
    """`obj.name` for a method the evaluator implements (list.append, register_buffer, …)."""

    obj: Any
    name: str


@dataclass(frozen=True)
class Builtin:
    name: str


@dataclass(eq=False)
class SuperProxy:
    cls: Any
    self_value: Any


@dataclass(eq=False)
class Partial:
    function: Any
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(eq=False)
class TorchInit:
    """`nn.Linear.__init__` (or a container's) reached through super() or the class."""

    cls: TorchClass
    self_value: Any


@dataclass(frozen=True)
class FieldSpec:
    """`dataclasses.field(default=..., default_factory=...)` in a dataclass body."""

    default: Any
    factory: Any

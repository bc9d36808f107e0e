"""A static evaluator for the code that builds models: statements, expressions and names.

It walks `__init__` bodies (and the functions, methods and module constants they use) over the
`ast`, never running them: values are plain Python constants, `SList`/`SDict`, `ModuleValue`s
and `TensorValue`s, or `Unknown` with a reason. An `if` on a known value takes its branch; on a
value not known here both branches run "uncertain", so what they write becomes unknown (a
branch that only raises is dropped). Loops over known items run (bounded); loops over items not
known here run once, uncertain. Work is bounded by a step budget and a call depth.

Here: the interpreter's frames, names, imports and statements. Expressions are in
`eval_expressions` (which the `Interpreter` inherits), operators in `eval_operators`, calls in
`model_calls` (`library_calls`, `builtin_calls`), attributes and methods of values in
`model_methods` and `value_methods`.
"""

from __future__ import annotations

import ast
import contextlib
from typing import Any

from . import model_calls, model_methods, value_methods
from .eval_expressions import MAX_ITEMS, Expressions
from .eval_objects import (
    Builtin,
    Frame,
    LazyImport,
    LibraryValue,
    ModuleObject,
    TorchClass,
    TorchRef,
    UserClass,
    UserFunction,
)
from .eval_operators import (
    maybe_module,
    plain,
    reason_of,
    short_text,
    truth,
)
from .model_classes import (
    FileMember,
    LibraryPath,
    ModelSources,
    SourceFile,
    TorchPath,
    import_target,
)
from .model_values import (
    ModuleValue,
    NameSource,
    ObjectValue,
    SDict,
    SList,
    SRange,
    Unknown,
)
from .tensor_shapes import DTYPES, TorchDtype
from .torch_layers import KNOWN_CLASSES

MAX_STEPS = 400_000
MAX_DEPTH = 48

BUILTINS = frozenset("""
    range len int float str bool min max sum abs round list tuple dict set frozenset sorted
    reversed enumerate zip isinstance issubclass hasattr getattr setattr print super divmod pow
    any all map filter callable repr type object iter next id hash format vars locals globals
    NotImplementedError ValueError TypeError KeyError RuntimeError AssertionError Exception
    staticmethod classmethod property
""".split())  # noqa: SIM905


class BudgetExceeded(Exception):
    """The evaluation did more work than the budget allows."""


class Raised(Exception):
    """This path raises: the construction does not get past it."""


class Returned(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Broke(Exception):
    pass


class Continued(Exception):
    pass


class Interpreter(Expressions):
    def __init__(self, sources: ModelSources) -> None:
        self.sources = sources
        self.modules: dict[str, Frame] = {}
        self.classes: dict[int, UserClass] = {}
        self.steps = 0
        self.depth = 0
        # Per running loop: id(list or container) → [object, number of appends].
        self.loop_appends: list[dict[int, list[Any]]] = []
        # Modules built from plain arguments, by call site and arguments (see model_calls).
        self.constructed: dict[tuple[Any, ...], Any] = {}
        # Bumped whenever module-level state changes (a global rebound, a module-level dict,
        # list or object changed), so a construction is reused only while its globals are.
        self.globals_epoch = 0
        self.module_objects: set[int] = set()

    def changed_globals(self, obj: Any = None) -> None:
        if obj is None or id(obj) in self.module_objects:
            self.globals_epoch += 1

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise BudgetExceeded

    # --- modules and names -------------------------------------------------------------

    def module_frame(self, file: SourceFile) -> Frame:
        """The module's globals: its top level, run once (loops not run, `__main__` skipped)."""
        frame = self.modules.get(file.path)
        if frame is None:
            frame = Frame(file, prelude=True, name=file.module_name)
            self.modules[file.path] = frame
            for stmt in file.tree.body:
                if _is_main_guard(stmt):
                    continue
                with contextlib.suppress(Raised, Returned, Broke, Continued):
                    self.exec_stmt(stmt, frame)
        return frame

    def global_value(self, file: SourceFile, name: str) -> Any:
        frame = self.module_frame(file)
        if name in frame.env:
            return self.resolve(frame.env[name])
        for stmt in file.star_imports:
            target = import_target(self.sources, file, stmt, ast.alias(name=name))
            if isinstance(target, TorchPath) and name in KNOWN_CLASSES:
                return TorchClass(name)
            if isinstance(target, FileMember) and name in target.file.top_level:
                return self.global_value(target.file, name)
        return Unknown(f"`{name}` is not defined in {file.module_name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, LazyImport):
            target = import_target(self.sources, value.file, value.stmt, value.alias)
            return self.target_value(target)
        return value

    def target_value(self, target: Any) -> Any:
        if isinstance(target, TorchPath):
            return torch_value(target.path)
        if isinstance(target, LibraryPath):
            return LibraryValue(target.path)
        if isinstance(target, FileMember):
            if target.name is None:
                return ModuleObject(target.file)
            return self.global_value(target.file, target.name)
        return Unknown("an import that does not resolve in the workspace")

    def lookup(self, frame: Frame, name: str) -> Any:
        scope: Frame | None = frame
        while scope is not None:
            if name in scope.env:
                return self.resolve(scope.env[name])
            scope = scope.parent
        module = frame.globals or frame
        if name in module.env:
            return self.resolve(module.env[name])
        if name in BUILTINS:
            return Builtin(name)
        if name == "__name__":
            return module.file.module_name
        if module.file.star_imports:
            return self.global_value(module.file, name)
        return Unknown(f"`{name}` is not known here")

    def source_of(self, frame: Frame, name: str) -> NameSource | None:
        scope: Frame | None = frame
        while scope is not None:
            if name in scope.env:
                return scope.sources.get(name)
            scope = scope.parent
        module = frame.globals or frame
        return module.sources.get(name)

    def bind(self, frame: Frame, name: str, value: Any, source: NameSource | None = None) -> None:
        if name in frame.declared_global and frame.globals is not None:
            uncertain = frame.uncertain
            frame = frame.globals
            frame.uncertain = uncertain
            self.changed_globals()
        elif frame.globals is None:
            self.changed_globals()
            if isinstance(value, (SDict, SList, ObjectValue)):
                self.module_objects.add(id(value))
        if frame.uncertain is not None:
            old = frame.env.get(name, _MISSING)
            if old is value or (plain(old) and plain(value) and old == value):
                return
            value, source = Unknown(frame.uncertain, maybe_module(value)), None
        frame.env[name] = value
        if source is not None:
            frame.sources[name] = source
        else:
            frame.sources.pop(name, None)

    # --- statements --------------------------------------------------------------------

    def exec_block(self, body: list[ast.stmt], frame: Frame) -> None:
        for stmt in body:
            self.exec_stmt(stmt, frame)

    def exec_stmt(self, stmt: ast.stmt, frame: Frame) -> None:
        self.tick()
        if not isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            frame.statement = stmt
        method = getattr(self, f"_exec_{type(stmt).__name__}", None)
        if method is None:
            self._mark_assigned(stmt, frame, "a statement not followed here")
            return
        method(stmt, frame)

    def _exec_Expr(self, stmt: ast.Expr, frame: Frame) -> None:
        if not frame.prelude or self._mutates_data(stmt.value, frame):
            self.eval(stmt.value, frame)

    def _mutates_data(self, node: ast.expr, frame: Frame) -> bool:
        """`cfg.update(depth=12)` at a module's top level or before a construction: a method
        call on a config dict, list or object (other calls there are not followed)."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)):  # fmt: skip
            return False
        scope: Frame | None = frame
        while scope is not None:
            if node.func.value.id in scope.env:
                return isinstance(scope.env[node.func.value.id], (SDict, SList, ObjectValue))
            scope = scope.parent
        module = frame.globals
        return module is not None and isinstance(module.env.get(node.func.value.id),
                                                 (SDict, SList, ObjectValue))  # fmt: skip

    def _exec_Pass(self, stmt: ast.Pass, frame: Frame) -> None:
        pass

    _exec_Nonlocal = _exec_Pass

    def _exec_Global(self, stmt: ast.Global, frame: Frame) -> None:
        frame.declared_global.update(stmt.names)

    def _exec_Assign(self, stmt: ast.Assign, frame: Frame) -> None:
        value = self.eval(stmt.value, frame)
        for target in stmt.targets:
            self.assign(target, value, frame, stmt.value)

    def _exec_AnnAssign(self, stmt: ast.AnnAssign, frame: Frame) -> None:
        if stmt.value is not None:
            self.assign(stmt.target, self.eval(stmt.value, frame), frame, stmt.value)

    def _exec_AugAssign(self, stmt: ast.AugAssign, frame: Frame) -> None:
        current = self.eval(stmt.target, frame)
        right = self.eval(stmt.value, frame)
        if isinstance(stmt.op, ast.Add) and isinstance(current, (SList, ModuleValue)):
            value_methods.call_method(self, current, "extend" if isinstance(current, SList)
                                    else "__iadd__", [right], {}, frame)  # fmt: skip
            return
        self.assign(stmt.target, self.binop(stmt.op, current, right), frame, None)

    def _exec_Delete(self, stmt: ast.Delete, frame: Frame) -> None:
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                frame.env.pop(target.id, None)
            elif isinstance(target, ast.Attribute):
                obj = self.eval(target.value, frame)
                if isinstance(obj, ModuleValue):
                    if frame.uncertain:
                        obj.set_unknown(target.attr, frame.uncertain)
                    else:
                        obj.delete(target.attr)
            elif isinstance(target, ast.Subscript):
                obj = self.eval(target.value, frame)
                key = self.eval(target.slice, frame)
                value_methods.call_method(self, obj, "__delitem__", [key], {}, frame)

    def _exec_Return(self, stmt: ast.Return, frame: Frame) -> None:
        raise Returned(None if stmt.value is None else self.eval(stmt.value, frame))

    def _exec_Raise(self, stmt: ast.Raise, frame: Frame) -> None:
        raise Raised

    def _exec_Assert(self, stmt: ast.Assert, frame: Frame) -> None:
        if truth(self.eval(stmt.test, frame)) is False:
            raise Raised

    def _exec_Break(self, stmt: ast.Break, frame: Frame) -> None:
        raise Broke

    def _exec_Continue(self, stmt: ast.Continue, frame: Frame) -> None:
        raise Continued

    def _exec_Import(self, stmt: ast.Import | ast.ImportFrom, frame: Frame) -> None:
        for alias in stmt.names:
            if alias.name == "*":
                continue
            name = alias.asname or alias.name.split(".")[0]
            frame.env[name] = LazyImport(frame.file, stmt, alias)
            frame.sources.pop(name, None)

    _exec_ImportFrom = _exec_Import

    def _exec_FunctionDef(self, stmt: ast.FunctionDef | ast.AsyncFunctionDef, frame: Frame) -> None:
        closure = frame if frame.globals is not None else None
        function = UserFunction(stmt, frame.file, closure)
        for decorator in stmt.decorator_list:
            kind = _decorator_name(decorator)
            if kind in ("staticmethod", "classmethod", "property"):
                function.kind = kind
        self.bind(frame, stmt.name, function)

    _exec_AsyncFunctionDef = _exec_FunctionDef

    def _exec_ClassDef(self, stmt: ast.ClassDef, frame: Frame) -> None:
        bases = [self.eval(base, frame) for base in stmt.bases]
        decorators = [self.eval(d.func if isinstance(d, ast.Call) else d, frame)
                      for d in stmt.decorator_list]  # fmt: skip
        cls = UserClass(stmt, frame.file, bases, _is_module(bases))
        cls.dataclass = any(isinstance(d, LibraryValue) and d.path.endswith("dataclass")
                            for d in decorators)  # fmt: skip
        cls.namedtuple = any(isinstance(b, LibraryValue) and b.path.endswith("NamedTuple")
                             for b in bases)  # fmt: skip
        cls.closure = frame if frame.globals is not None else None
        self.bind(frame, stmt.name, cls)

    def class_namespace(self, cls: UserClass) -> dict[str, Any]:
        """The class body's names (class attributes, methods), evaluated on first use."""
        if cls.namespace is None:
            cls.namespace = {}
            module = self.module_frame(cls.file)
            outer = cls.closure
            body = Frame(cls.file, env=cls.namespace, parent=outer, globals=module, prelude=True,
                         name=cls.name)  # fmt: skip
            for stmt in cls.node.body:
                with contextlib.suppress(Raised, Returned, Broke, Continued):
                    self.exec_stmt(stmt, body)
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    function = cls.namespace.get(stmt.name)
                    if isinstance(function, UserFunction):
                        function.closure, function.owner = outer, cls
        return cls.namespace

    def _exec_If(self, stmt: ast.If, frame: Frame) -> None:
        if frame.prelude and frame.globals is None and _is_main_guard(stmt):
            return
        condition = truth(self.eval(stmt.test, frame))
        if condition is not None:
            self.exec_block(stmt.body if condition else stmt.orelse, frame)
            return
        body_raises, else_raises = _always_raises(stmt.body), _always_raises(stmt.orelse)
        if body_raises and not else_raises:
            self.exec_block(stmt.orelse, frame)
            return
        if else_raises and not body_raises:
            self.exec_block(stmt.body, frame)
            return
        reason = f"it depends on `if {short_text(stmt.test)}`, whose value is not known here"
        self.exec_uncertain([stmt.body, stmt.orelse], frame, reason)

    def exec_uncertain(self, blocks: list[list[ast.stmt]], frame: Frame, reason: str) -> None:
        """Run blocks whose execution is not known: what they write becomes unknown."""
        before = frame.uncertain
        frame.uncertain = before or reason
        keep = False
        for block in blocks:
            try:
                self.exec_block(block, frame)
            except Raised:
                pass
            except Returned:
                frame.maybe_returned = frame.maybe_returned or reason
                keep = True
            except (Broke, Continued):
                keep = True  # the rest of the loop runs uncertain; the loop restores it
        if not keep:
            frame.uncertain = before

    def _exec_For(self, stmt: ast.For | ast.AsyncFor, frame: Frame) -> None:
        if frame.prelude:
            self._mark_assigned(stmt, frame, f"it is assigned in a loop (line {stmt.lineno})")
            return
        iterable = self.eval(stmt.iter, frame)
        items = self.items_of(iterable)
        before = frame.uncertain
        if items is None:
            reason = f"it is built in a loop over `{short_text(stmt.iter)}`, whose items are not known here"
            if isinstance(iterable, Unknown) and iterable.reason:
                reason += f" ({iterable.reason})"
            self.assign(stmt.target, Unknown(reason), frame, None, force=True)
            self.exec_uncertain([stmt.body, stmt.orelse], frame, reason)
            frame.uncertain = before if frame.maybe_returned is None else frame.uncertain
            return
        self.loop_appends.append({})
        broke = False
        try:
            for item in items:
                self.assign(stmt.target, item, frame, None)
                try:
                    self.exec_block(stmt.body, frame)
                except Continued:
                    continue
                except Broke:
                    broke = True
                    break
        finally:
            appends = self.loop_appends.pop()
        if frame.uncertain != before and frame.maybe_returned is None:
            frame.uncertain = before
        if not broke:
            self.exec_block(stmt.orelse, frame)
        self._note_repeats(iterable, len(items), appends)

    _exec_AsyncFor = _exec_For

    def _note_repeats(self, iterable: Any, count: int, appends: dict[int, list[Any]]) -> None:
        from .model_values import Repeat

        for obj, appended in appends.values():
            length = len(obj) if isinstance(obj, SList) else len(getattr(obj, "children", {}))
            if isinstance(iterable, SRange) and iterable.source is not None and appended == count:
                obj.repeat = Repeat(iterable.source, length - count - iterable.values.start)
            if self.loop_appends:  # the outer loop appended these too
                outer = self.loop_appends[-1].setdefault(id(obj), [obj, 0])
                outer[1] += appended

    def _exec_While(self, stmt: ast.While, frame: Frame) -> None:
        if frame.prelude:
            self._mark_assigned(stmt, frame, f"it is assigned in a loop (line {stmt.lineno})")
            return
        before = frame.uncertain
        for _ in range(MAX_ITEMS):
            condition = truth(self.eval(stmt.test, frame))
            if condition is False:
                self.exec_block(stmt.orelse, frame)
                break
            if condition is None:
                reason = f"it is built in a loop `while {short_text(stmt.test)}`, not followed here"
                self.exec_uncertain([stmt.body], frame, reason)
                break
            try:
                self.exec_block(stmt.body, frame)
            except Continued:
                continue
            except Broke:
                break
        else:
            self.exec_uncertain([stmt.body], frame, "it is built in a loop that runs too long")
        if frame.maybe_returned is None:
            frame.uncertain = before

    def _exec_With(self, stmt: ast.With | ast.AsyncWith, frame: Frame) -> None:
        for item in stmt.items:
            self.eval(item.context_expr, frame)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, Unknown("a context manager's value"), frame, None)
        self.exec_block(stmt.body, frame)

    _exec_AsyncWith = _exec_With

    def _exec_Try(self, stmt: ast.Try, frame: Frame) -> None:
        try:
            self.exec_block(stmt.body, frame)
        except Raised:
            if stmt.handlers:
                self.exec_block(stmt.handlers[0].body, frame)
        else:
            self.exec_block(stmt.orelse, frame)
        finally:
            self.exec_block(stmt.finalbody, frame)

    _exec_TryStar = _exec_Try

    def _mark_assigned(self, stmt: ast.stmt, frame: Frame, reason: str) -> None:
        """Names a statement not run here may assign become unknown."""
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                frame.env[node.id] = Unknown(reason)
                frame.sources.pop(node.id, None)

    # --- assignment targets ------------------------------------------------------------

    def assign(self, target: ast.expr, value: Any, frame: Frame, value_node: ast.expr | None,
               force: bool = False) -> None:  # fmt: skip
        if isinstance(target, ast.Name):
            source = model_calls.local_source(self, frame, target.id, value, value_node)
            if force:
                frame.env[target.id] = value
                frame.sources.pop(target.id, None)
            else:
                self.bind(frame, target.id, value, source)
        elif isinstance(target, ast.Attribute):
            obj = self.eval(target.value, frame)
            source = model_calls.local_source(self, frame, target.attr, value, value_node)
            model_methods.set_attribute(self, obj, target.attr, value, frame, source)
        elif isinstance(target, ast.Subscript):
            obj = self.eval(target.value, frame)
            key = self.eval(target.slice, frame)
            value_methods.call_method(self, obj, "__setitem__", [key, value], {}, frame)
        elif isinstance(target, (ast.Tuple, ast.List)):
            self._unpack(target, value, frame, force)
        elif isinstance(target, ast.Starred):
            self.assign(target.value, value, frame, None, force)

    def _unpack(self, target: ast.Tuple | ast.List, value: Any, frame: Frame, force: bool) -> None:
        items = self.items_of(value)
        starred = [i for i, e in enumerate(target.elts) if isinstance(e, ast.Starred)]
        if items is not None and not starred and len(items) != len(target.elts):
            items = None
        if items is not None and starred:
            at = starred[0]
            tail = len(target.elts) - at - 1
            if len(items) < len(target.elts) - 1:
                items = None
            else:
                middle = SList(items[at:len(items) - tail])
                items = [*items[:at], middle, *items[len(items) - tail:]]
        for i, element in enumerate(target.elts):
            item = items[i] if items is not None else Unknown(reason_of(value, "an unpacked value"))
            self.assign(element, item, frame, None, force)


# --- helpers -------------------------------------------------------------------------------

_MISSING = object()




def _always_raises(body: list[ast.stmt]) -> bool:
    return any(isinstance(stmt, ast.Raise) for stmt in body)


def _is_main_guard(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare)
            and isinstance(stmt.test.left, ast.Name) and stmt.test.left.id == "__name__")  # fmt: skip


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _is_module(bases: list[Any]) -> str:
    from .model_classes import LIGHTNING_MODULES, STDLIB

    verdicts = []
    for base in bases:
        if isinstance(base, TorchClass):
            verdicts.append("yes")
        elif isinstance(base, UserClass):
            verdicts.append(base.is_module)
        elif isinstance(base, LibraryValue):
            if base.path in LIGHTNING_MODULES:
                verdicts.append("yes")
            else:
                verdicts.append("no" if base.path.split(".")[0] in STDLIB else "maybe")
        elif isinstance(base, Unknown):
            verdicts.append("maybe")
    if "yes" in verdicts:
        return "yes"
    return "maybe" if "maybe" in verdicts else "no"


_TORCH_CLASS_MODULES = ("torch.nn", "torch.nn.modules", "torch.nn.parallel")


def torch_value(path: str) -> Any:
    """What a dotted name under torch denotes for the evaluator."""
    head, _, last = path.rpartition(".")
    if last in KNOWN_CLASSES and (head in _TORCH_CLASS_MODULES or head.startswith("torch.nn.modules.")
                                  or head.startswith("torch.nn.parallel")):  # fmt: skip
        return TorchClass(last)
    if head == "torch" and last in DTYPES:
        return TorchDtype(DTYPES[last])
    return TorchRef(path)

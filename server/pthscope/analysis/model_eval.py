"""A static evaluator for the code that builds models: statements, expressions and names.

It walks `__init__` bodies (and the functions, methods and module constants they use) over the
`ast`, never running them: values are plain Python constants, `SList`/`SDict`, `ModuleValue`s
and `TensorValue`s, or `Unknown` with a reason. An `if` on a known value takes its branch; on a
value not known here both branches run "uncertain", so what they write becomes unknown (a
branch that only raises is dropped). Loops over known items run (bounded); loops over items not
known here run once, uncertain. Work is bounded by a step budget and a call depth.

Calls, attributes and subscripts — the object protocol — live in `model_calls`.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from . import model_calls, model_methods, value_methods
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
    TensorValue,
    Unknown,
)
from .tensor_shapes import DTYPES, TorchDtype, broadcast
from .torch_layers import KNOWN_CLASSES

MAX_STEPS = 400_000
MAX_DEPTH = 48
MAX_ITEMS = 10_000
MAX_SEQUENCE = 100_000

BUILTINS = frozenset(["range", "len", "int", "float", "str", "bool", "min", "max", "sum", "abs", "round", "list", "tuple", "dict", "set", "frozenset", "sorted", "reversed", "enumerate", "zip", "isinstance", "issubclass", "hasattr", "getattr", "setattr", "print", "super", "divmod", "pow", "any", "all", "map", "filter", "callable", "repr", "type", "object", "iter", "next", "id", "hash", "format", "vars", "locals", "globals", "NotImplementedError", "ValueError", "TypeError", "KeyError", "RuntimeError", "AssertionError", "Exception", "staticmethod", "classmethod", "property"])


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


class Interpreter:
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
        if frame.uncertain is not None:
            old = frame.env.get(name, _MISSING)
            if old is value or (_plain(old) and _plain(value) and old == value):
                return
            value, source = Unknown(frame.uncertain, _maybe_module(value)), None
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

    _exec_Global = _exec_Nonlocal = _exec_Pass

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
        reason = f"it depends on `if {_text(stmt.test)}`, whose value is not known here"
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
            reason = f"it is built in a loop over `{_text(stmt.iter)}`, whose items are not known here"
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
                reason = f"it is built in a loop `while {_text(stmt.test)}`, not followed here"
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
            item = items[i] if items is not None else Unknown(_reason(value, "an unpacked value"))
            self.assign(element, item, frame, None, force)

    # --- expressions -------------------------------------------------------------------

    def eval(self, node: ast.expr, frame: Frame) -> Any:
        self.tick()
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            return Unknown(f"`{_text(node)}` is not followed here", maybe_module=False)
        return method(node, frame)

    def _eval_Constant(self, node: ast.Constant, frame: Frame) -> Any:
        return node.value

    def _eval_Name(self, node: ast.Name, frame: Frame) -> Any:
        return self.lookup(frame, node.id)

    def _eval_Attribute(self, node: ast.Attribute, frame: Frame) -> Any:
        return model_methods.attribute(self, self.eval(node.value, frame), node.attr, frame)

    def _eval_Subscript(self, node: ast.Subscript, frame: Frame) -> Any:
        obj = self.eval(node.value, frame)
        return model_methods.subscript(self, obj, self.eval(node.slice, frame))

    def _eval_Slice(self, node: ast.Slice, frame: Frame) -> Any:
        parts = [None if p is None else self.eval(p, frame) for p in (node.lower, node.upper, node.step)]
        if any(isinstance(p, Unknown) for p in parts):
            return Unknown("a slice bound is not known here", maybe_module=False)
        return slice(*parts)

    def _eval_Call(self, node: ast.Call, frame: Frame) -> Any:
        return model_calls.call_node(self, node, frame)

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
                    return Unknown(f"`{_text(element)}` has items not known here")
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
                    result.unknown = _reason(value, "a ** in a dict")
                continue
            key = self.eval(key_node, frame)
            if isinstance(key, Unknown) or not _hashable(key):
                result.unknown = _reason(key, "a key")
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
            if not _plain(inner) or value.format_spec is not None:
                return Unknown(f"the f-string `{_text(node)}` is not known here", maybe_module=False)
            parts.append(repr(inner) if value.conversion == ord("r") else str(inner))
        return "".join(parts)

    def _eval_BinOp(self, node: ast.BinOp, frame: Frame) -> Any:
        return self.binop(node.op, self.eval(node.left, frame), self.eval(node.right, frame))

    def _eval_UnaryOp(self, node: ast.UnaryOp, frame: Frame) -> Any:
        value = self.eval(node.operand, frame)
        if isinstance(node.op, ast.Not):
            known = truth(value)
            return Unknown(_reason(value, "a condition"), False) if known is None else not known
        if isinstance(value, TensorValue):
            return value.with_dims(value.dims)
        if isinstance(value, (int, float)):
            ops: dict[type, Callable[[Any], Any]] = {
                ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert,
            }  # fmt: skip
            try:
                return ops[type(node.op)](value)
            except TypeError:  # ~1.5
                return Unknown(f"`{_text(node)}` fails", maybe_module=False)
        return Unknown(_reason(value, f"`{_text(node)}`"), maybe_module=False)

    def _eval_BoolOp(self, node: ast.BoolOp, frame: Frame) -> Any:
        is_and = isinstance(node.op, ast.And)
        result: Any = None
        for value_node in node.values:
            result = self.eval(value_node, frame)
            known = truth(result)
            if known is None:
                return Unknown(_reason(result, f"`{_text(node)}`"), _maybe_module(result))
            if known is not is_and:
                return result
        return result

    def _eval_Compare(self, node: ast.Compare, frame: Frame) -> Any:
        left = self.eval(node.left, frame)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node, frame)
            outcome = compare(op, left, right)
            if outcome is None:
                return Unknown(f"`{_text(node)}` is not known here", maybe_module=False)
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
                    self, frame, "if", _text(node.test), test, node.test).source)
            return value
        body, orelse = self.eval(node.body, frame), self.eval(node.orelse, frame)
        if _plain(body) and _plain(orelse) and body == orelse:
            return body
        reason = f"it depends on `{_text(node.test)}`, whose value is not known here"
        return Unknown(reason, _maybe_module(body) or _maybe_module(orelse))

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
            if isinstance(key, Unknown) or not _hashable(key):
                result.unknown = _reason(key, "a key")
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
                result.unknown = (f"it is built over `{_text(generator.iter)}`, whose items are "
                                  "not known here")  # fmt: skip
                if isinstance(iterable, Unknown) and iterable.reason:
                    result.unknown += f" ({iterable.reason})"
                return
            for item in items:
                self.assign(generator.target, item, scope, None, force=True)
                wanted = [truth(self.eval(test, scope)) for test in generator.ifs]
                if None in wanted:
                    result.unknown = f"a condition of `{_text(node)}` is not known here"
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
            from .model_values import Repeat

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
            return TensorValue(None, tensor.dtype, reason=_reason(other, "an operand"))
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return Unknown(_reason(left if isinstance(left, Unknown) else right, "an operand"),
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


# --- helpers -------------------------------------------------------------------------------

_MISSING = object()


def _text(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 80 else text[:77] + "..."


def _reason(value: Any, what: str) -> str:
    if isinstance(value, Unknown):
        return value.reason
    return f"{what} is not known here"


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, tuple))


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _maybe_module(value: Any) -> bool:
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
        if _plain(left) and _plain(right) and not isinstance(left, (int, float, str)):
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
    if not (_plain(left) or isinstance(left, (list, dict, set))) or not (
        _plain(right) or isinstance(right, (list, dict, set))
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

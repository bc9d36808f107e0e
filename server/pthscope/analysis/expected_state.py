"""The state_dict a model class would have, derived from its source without running it.

    expected = expected_state_dict(source, path, workspace_folders, "Net", "num_classes=10")
    expected = expected_state_dict(source, path, workspace_folders, "Net", call_line=41)
    expected.tensors["fc.weight"].shape        # (10, 64)
    expected.tensors["fc.weight"].dims[0].source.name.root()   # NameSource of num_classes=10
    expected.unknown                           # [UnknownPart("blocks", "it is built in a loop over …")]

`source` is the text of the file at `path` (an editor's unsaved text is fine); the class and the
modules it imports are resolved within that file's folder and the workspace folders, read as
text and parsed with `ast` — never imported or run. The construction's arguments come either as
the text between the parentheses (`call_args`, evaluated against the file's module-level names:
constants, literal config dicts, dataclass instances) or from the call on line `call_line`
(0-based) of `source`, evaluated where it stands (the straight-line code before it in its
function or `__main__` block is followed too). `class_name` may be dotted (`models.Net`); it may
also name a torch.nn layer (`nn.LSTM`).

The result lists, in `state_dict()` order, each key with its shape (each dim an int, or None
with the reason), kind (parameter or persistent buffer), dtype when it is not the default float,
the statement that creates it and the constructor argument deciding each dim (`Dim.source`, an
`ArgSource` whose `name` chain leads to the construction argument, default or constant that set
it). What cannot be known is listed in `unknown` by key prefix, with the reason; it is never
guessed. Pass a `ModelSources` to reuse parsed workspace files between calls.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..gc_pause import gc_paused
from .ast_shapes import root_name
from .eval_objects import Frame, LibraryValue, TorchClass, UserClass
from .flow import WRAPPED_AS
from .model_calls import CONSTRUCTION, call_node
from .model_classes import ModelSources, SourceFile, parse_source
from .model_eval import BudgetExceeded, Interpreter, Raised, Returned
from .model_methods import LIST_CONTAINERS
from .model_values import ArgSource, Dim, ModuleValue, Origin, Unknown

Kind = Literal["parameter", "buffer"]


@dataclass(slots=True)
class ExpectedTensor:
    """One state_dict entry the model will have."""

    key: str
    shape: tuple[int | None, ...] | None  # None: not even the rank is known
    kind: Kind
    dtype: str | None  # None: the default float dtype
    dims: tuple[Dim, ...] | None
    origin: Origin | None  # the statement creating it (its layer's, for a layer's weights)
    layer: str  # the module's class: "torch.nn.Linear", "models.Block"
    reason: str | None = None  # why (part of) the shape is not known
    presence: ArgSource | None = None  # the flag argument that makes it exist (bias=True)
    # A lazy layer's (LazyLinear, LazyConv2d, LazyBatchNorm1d): uninitialized until its first
    # input, so load_state_dict gives it the checkpoint's shape, whatever that is.
    lazy: bool = False

    @property
    def module(self) -> str:
        return self.key.rpartition(".")[0]

    @property
    def known(self) -> bool:
        return self.shape is not None and None not in self.shape


@dataclass(frozen=True)
class UnknownPart:
    """Keys under `prefix` ("" for the whole model; a full key for one entry) are not known.
    scope "all": nothing under it is known; "extra": entries of names not known here may
    exist beside the known ones."""

    prefix: str
    reason: str
    origin: Origin | None = None
    scope: Literal["all", "extra"] = "all"

    def covers(self, key: str) -> bool:
        return not self.prefix or key == self.prefix or key.startswith(self.prefix + ".")


@dataclass(frozen=True)
class RepeatedBlock:
    """A ModuleList/Sequential built over `range(...)`: `count == stop + offset`, with `source`
    the range's stop argument (so a checkpoint's number of blocks implies its value)."""

    prefix: str
    count: int
    source: ArgSource
    offset: int = 0


@dataclass
class ExpectedStateDict:
    class_name: str
    tensors: dict[str, ExpectedTensor] = field(default_factory=dict)
    unknown: list[UnknownPart] = field(default_factory=list)
    # Module prefix ("" for the root) → (its class, the torch.nn class its state follows).
    modules: dict[str, tuple[str, str]] = field(default_factory=dict)
    repeats: list[RepeatedBlock] = field(default_factory=list)
    # Keys a flag argument leaves out (`bias=False`, `affine=False`) → that argument.
    absent: dict[str, ArgSource] = field(default_factory=dict)
    # BatchNorm/InstanceNorm prefixes → their class (their loading has version rules).
    norms: dict[str, str] = field(default_factory=dict)
    # For compat: per container prefix, how many keys each index holds (built on first use).
    index_counts: dict[str, dict[int, int]] | None = field(default=None, repr=False, compare=False)
    # For compat: this state_dict with a prefix before its keys (a DataParallel file's view).
    prefixed: dict[str, ExpectedStateDict] = field(default_factory=dict, repr=False, compare=False)
    # Key → shape, for compat's comparisons (built on first use).
    shape_table: dict[str, tuple[int | None, ...] | None] | None = field(default=None, repr=False, compare=False)
    # The prefixes most keys share, for compat's prefix fixes (found on first use).
    key_prefixes: list[str] | None = field(default=None, repr=False, compare=False)
    # Module prefix → the statement that attached it, when it was made elsewhere (a helper).
    sites: dict[str, Origin] = field(default_factory=dict, repr=False, compare=False)
    # (file, 0-based line) → "prefix." of the modules attached there (sites; by_lines()).
    site_prefixes: dict[tuple[str, int], list[str]] = field(default_factory=dict, repr=False, compare=False)
    attached_keys: dict[tuple[str, int], list[str]] = field(default_factory=dict, repr=False, compare=False)
    # (file, 0-based line) → the keys of the tensors the statement there creates (by_lines()).
    lines: dict[tuple[str, int], list[str]] | None = field(default=None, repr=False, compare=False)
    error: str | None = None  # the model could not be derived at all (class not found, …)

    def shapes(self) -> dict[str, tuple[int | None, ...] | None]:
        """Each key's shape (kept: a checkpoint read again is compared with the same table)."""
        if self.shape_table is None:
            self.shape_table = {key: tensor.shape for key, tensor in self.tensors.items()}
        return self.shape_table

    def by_lines(self) -> dict[tuple[str, int], list[str]]:
        """The keys of the tensors each statement creates, by (file, line) of each of its lines
        (a block class's statement creates tensors for every block)."""
        if self.lines is None:
            lines: dict[tuple[str, int], list[str]] = {}
            for key, tensor in self.tensors.items():
                origin = tensor.origin
                if origin is not None:
                    for line in range(origin.span.start_line, origin.span.end_line + 1):
                        lines.setdefault((origin.file, line), []).append(key)
            sites: dict[tuple[str, int], list[str]] = {}
            for prefix, site in self.sites.items():
                for line in range(site.span.start_line, site.span.end_line + 1):
                    sites.setdefault((site.file, line), []).append(prefix + ".")
            self.lines, self.site_prefixes = lines, sites
        return self.lines

    def keys_at(self, file: str, line: int) -> list[str]:
        """The keys of the tensors the statement on that line creates, and of those under the
        modules it attaches when they were made elsewhere (`self.conv1 = conv3x3(64, 64)`,
        `self.layer1 = self._make_layer(...)`)."""
        own = self.by_lines().get((file, line), [])
        attached = self.site_prefixes.get((file, line))
        if not attached:
            return own
        found = self.attached_keys.get((file, line))
        if found is None:  # kept: a hover asks again on every move of the mouse
            starts = tuple(attached)
            found = list(dict.fromkeys([*own, *(k for k in self.tensors if k.startswith(starts))]))
            self.attached_keys[(file, line)] = found
        return found

    def unknown_for(self, key: str) -> UnknownPart | None:
        """The unknown part that makes `key` not checkable, if any ("extra" parts cover only
        keys the derivation does not list)."""
        for part in self.unknown:
            if part.covers(key) and (part.scope == "all" or key not in self.tensors):
                return part
        return None


def expected_state_dict(
    source: str,
    path: str,
    workspace_folders: Sequence[str] = (),
    class_name: str | None = None,
    call_args: str = "",
    *,
    call_line: int | None = None,
    sources: ModelSources | None = None,
    wrappers: tuple[str, ...] = (),
    stores: Sequence[int] = (),
) -> ExpectedStateDict:
    """The expected state_dict of `class_name(call_args)` (or of the call on `call_line`), after
    the submodule stores on the lines `stores` (`model.fc = nn.Linear(32, 5)`, in order), inside
    `wrappers` (flow.WRAPPED_AS' paths, outermost first: `nn.DataParallel(model)`)."""
    sources = sources or ModelSources(tuple(workspace_folders))
    file = sources.document(source, path)
    name = class_name or "?"
    if file is None:
        return ExpectedStateDict(name, error=f"{path} does not parse")
    interp = Interpreter(sources)
    with gc_paused():  # all the values built stay alive until the end
        try:
            found = _construction(interp, file, class_name, call_args, call_line)
            if isinstance(found, str):
                return ExpectedStateDict(name, error=found)
            call, frame = found
            name = class_name or ast.unparse(call.func)
            value = call_node(interp, call, frame)
            for line in stores:
                replaced = _store(interp, file, value, line)
                if isinstance(replaced, str):
                    return ExpectedStateDict(name, error=replaced)
            for wrapper in reversed(wrappers) if isinstance(value, ModuleValue) else ():
                value = _wrapped(wrapper, value)
                name = f"{'torch.compile' if wrapper == 'torch.compile' else wrapper.rsplit('.', 1)[-1]}({name})"
        except BudgetExceeded:
            value = Unknown("the model takes too much work to derive statically")
        except RecursionError:
            value = Unknown("the model's code nests too deeply to derive statically")
        except (Raised, Returned):
            value = Unknown("the construction raises here")
        return flatten(name, value)


def _wrapped(wrapper: str, model: ModuleValue) -> ModuleValue:
    """The wrapper's module: no state of its own, the model as its one child (its keys under
    `module.` or `_orig_mod.`)."""
    outer = ModuleValue(wrapper if wrapper != "torch.compile" else "torch._dynamo.OptimizedModule", "wrapper")
    outer.set_child(WRAPPED_AS[wrapper], model)
    return outer


def _construction(interp: Interpreter, file: SourceFile, class_name: str | None, call_args: str,
                  call_line: int | None) -> tuple[ast.Call, Frame] | str:  # fmt: skip
    if call_line is not None:
        call = _call_on_line(interp, file, class_name, call_line)
        if call is None:
            return f"no construction of {class_name or 'a model'} on line {call_line + 1}"
        return call, construction_frame(interp, file, call)
    if not class_name:
        return "no class name given"
    snippet = f"{class_name}(\n{call_args}\n)"
    parsed = parse_source("<construction>", snippet, CONSTRUCTION)
    if parsed is None or not parsed.tree.body or not isinstance(
        getattr(parsed.tree.body[0], "value", None), ast.Call
    ):
        return f"the arguments `{call_args}` do not parse"
    call = parsed.tree.body[0].value  # type: ignore[attr-defined]
    module = interp.module_frame(file)
    return call, Frame(parsed, globals=module, prelude=True, name=CONSTRUCTION)


def _call_on_line(interp: Interpreter, file: SourceFile, class_name: str | None,
                  line: int) -> ast.Call | None:  # fmt: skip
    calls = file.calls_on_line(line)
    for call in calls:
        text = ast.unparse(call.func)
        if class_name and (text == class_name or text.endswith("." + class_name)
                           or class_name.endswith("." + text)):  # fmt: skip
            return call
    if class_name:
        return None
    module = interp.module_frame(file)
    for call in calls:
        value = interp.eval(call.func, Frame(file, globals=module, prelude=True))
        if isinstance(value, TorchClass) or (isinstance(value, UserClass) and value.is_module == "yes"):
            return call
    return None


def _store(interp: Interpreter, file: SourceFile, model: object, line: int) -> str | None:
    """`model.fc = <expr>` on `line` done on the built model as torch's `__setattr__` does it (a
    child replaced keeps its place); why not, when the value is not a module known here or the
    store does not land (an index the evaluator does not model)."""
    found = [n for n in ast.walk(file.tree) if isinstance(n, ast.Assign) and n.lineno - 1 == line]
    store = found[0] if len(found) == 1 else None  # two on a line (`a.x = 1; m.fc = f`): not told apart
    target = store.targets[0] if store is not None and len(store.targets) == 1 else None
    root = root_name(target) if target is not None else None
    if store is None or target is None or root is None or not isinstance(model, ModuleValue):
        return f"the model is changed on line {line + 1} in a way not known here"
    frame = construction_frame(interp, file, store.value)
    frame.env[root] = model  # the model as built and changed so far, not a new construction
    with contextlib.suppress(Raised, Returned):
        value = interp.eval(store.value, frame)
        if isinstance(value, ModuleValue):
            interp.assign(target, value, frame, store.value)
            if interp.eval(target, frame) is value:
                return None
    return f"`{ast.unparse(target)}` is set on line {line + 1} to a module not known here"


def construction_frame(interp: Interpreter, file: SourceFile, call: ast.expr) -> Frame:
    """The names visible at `call`: module globals, and the straight-line code before it in its
    function (parameters not known) or `if __name__ == "__main__":` block."""
    module = interp.module_frame(file)
    frame = Frame(file, globals=module, prelude=True, name=CONSTRUCTION)
    body = file.tree.body
    function = _innermost_function(file, call)
    if function is not None:
        arguments = function.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                    *(a for a in (arguments.vararg, arguments.kwarg) if a)]:  # fmt: skip
            frame.env[arg.arg] = Unknown(f"`{arg.arg}` is a parameter of {function.name}()")
        body = function.body
    with contextlib.suppress(BudgetExceeded, Raised, Returned):
        _run_until(interp, body, call, frame)
    return frame


def _innermost_function(file: SourceFile, call: ast.expr) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    best = None
    for node in file.functions():
        if _contains(node, call) and (best is None or node.lineno >= best.lineno):
            best = node
    return best


def _contains(stmt: ast.AST, node: ast.AST) -> bool:
    start, end = stmt.lineno, stmt.end_lineno or stmt.lineno  # type: ignore[attr-defined]
    return start <= node.lineno <= end and stmt is not node  # type: ignore[attr-defined]


def _run_until(interp: Interpreter, body: list[ast.stmt], call: ast.expr, frame: Frame) -> None:
    for stmt in body:
        if not _contains(stmt, call):
            if stmt.lineno > call.lineno:
                return
            interp.exec_stmt(stmt, frame)
            continue
        if isinstance(stmt, ast.If):
            _run_until(interp, stmt.body if _in_block(stmt.body, call) else stmt.orelse, call, frame)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            if isinstance(stmt, (ast.For, ast.AsyncFor)):
                loop = Unknown(f"`{ast.unparse(stmt.target)}` is a loop variable where it is built")
                interp.assign(stmt.target, loop, frame, None, force=True)
            _run_until(interp, stmt.body, call, frame)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            _run_until(interp, stmt.body, call, frame)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody):
                if _in_block(block, call):
                    _run_until(interp, block, call, frame)
        return


def _in_block(block: list[ast.stmt], node: ast.AST) -> bool:
    return any(_contains(stmt, node) for stmt in block)


# --- the module tree → state_dict entries ---------------------------------------------------

def flatten(class_name: str, root: object) -> ExpectedStateDict:
    """The state_dict entries of a built module, in torch's order (own parameters, own
    persistent buffers, then each child's), and its unknown parts."""
    result = ExpectedStateDict(class_name)
    if isinstance(root, Unknown):
        result.unknown.append(UnknownPart("", root.reason))
        return result
    if isinstance(root, LibraryValue):
        result.unknown.append(UnknownPart("", f"{root.path} is a library model; not derived"))
        return result
    if not isinstance(root, ModuleValue):
        result.error = f"{class_name}(...) is not an nn.Module"
        return result
    _visit(result, root, "", [], {})
    return result


def _site_origin(file: SourceFile, statement: ast.stmt) -> Origin:
    text = file.text_of(statement)
    return Origin(file.path, file.positions.span(statement), text,
                  " ".join(file.text_of(statement, first_line_only=False).split())[:200])  # fmt: skip


def _visit(result: ExpectedStateDict, module: ModuleValue, prefix: str, path: list[int],
           sites: dict[int, Origin]) -> None:  # fmt: skip
    here = prefix[:-1]
    if id(module) in path or len(path) > 64:
        result.unknown.append(UnknownPart(here, "the module contains itself", module.origin))
        return
    result.modules.setdefault(here, (module.type_name, module.base))
    if "Norm" in module.base and ("Batch" in module.base or "Instance" in module.base):
        result.norms.setdefault(here, module.base)
    if module.unknown_all:
        result.unknown.append(UnknownPart(here, module.unknown_all, module.origin))
        return
    for kind, table in (("parameter", module.params), ("buffer", module.buffers)):
        for name, tensor in table.items():
            if tensor is None or (kind == "buffer" and name in module.non_persistent):
                continue
            key = prefix + name
            shape = tensor.shape_values()
            reason = None
            if shape is None or None in shape:
                reasons = [d.reason for d in tensor.dims or () if d.reason]
                reason = (reasons[0] if reasons else tensor.reason) or "its shape is not known here"
            result.tensors[key] = ExpectedTensor(key, shape, kind, tensor.dtype, tensor.dims,  # type: ignore[arg-type]
                                                 tensor.origin or module.origin, module.type_name,
                                                 reason, tensor.presence,
                                                 module.base.startswith("Lazy") and name != "num_batches_tracked")
    for name, flag in module.absent.items():
        if module.params.get(name, 0) is None or module.buffers.get(name, 0) is None:
            result.absent[prefix + name] = flag
    for name, reason in module.unknown.items():
        result.unknown.append(UnknownPart(prefix + name, reason, module.origin))
    if module.unknown_extra:
        result.unknown.append(UnknownPart(here, module.unknown_extra, module.origin, "extra"))
    if module.repeat is not None and module.base in LIST_CONTAINERS:
        result.repeats.append(RepeatedBlock(here, len(module.children), module.repeat.source,
                                            module.repeat.offset))  # fmt: skip
    elif module.repeat is not None and module.base in ("RNN", "LSTM", "GRU"):
        layers = sum(1 for name in module.params if name.startswith("weight_ih_l")
                     and not name.endswith("_reverse"))  # fmt: skip
        result.repeats.append(RepeatedBlock(here, layers, module.repeat.source, module.repeat.offset))
    for name, child in module.children.items():
        if child is not None:
            site = module.sites.get(name)
            if site is not None:  # one Origin per statement (a block class's serves every block)
                origin = sites.get(id(site[1]))
                if origin is None:
                    origin = sites[id(site[1])] = _site_origin(*site)
                result.sites[prefix + name] = origin
            _visit(result, child, f"{prefix}{name}.", [*path, id(module)], sites)

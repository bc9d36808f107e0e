"""Calls in the static evaluator: workspace functions and classes, torch.nn layers and
containers, torch tensor functions, the few library and builtin functions model code uses.

A workspace class that is an `nn.Module` becomes a `ModuleValue` built by running its
`__init__` (and its bases', through `super()`); a torch.nn layer is built by its rule in
`torch_layers`. Arguments keep where they came from: each bound parameter gets a `NameSource`,
each layer argument an `ArgSource`. A call to a library outside the workspace gives `Unknown`
("library model; not derived"), and makes the modules it receives unknown.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from .eval_objects import (
    BoundMethod,
    Builtin,
    BuiltinMethod,
    FieldSpec,
    Frame,
    LibraryValue,
    Partial,
    TorchClass,
    TorchInit,
    TorchRef,
    UserClass,
    UserFunction,
)
from .model_classes import LIGHTNING_MODULES, STDLIB
from .model_methods import class_mro, container_items
from .model_values import (
    ArgSource,
    ModuleValue,
    NameSource,
    ObjectValue,
    Origin,
    SDict,
    SList,
    TensorValue,
    Unknown,
    deep_copy,
)
from .torch_layers import (
    CONTAINERS,
    LAYERS,
    NOT_DERIVED,
    WRAPPERS,
    Arg,
    display_name,
    make_layer,
)

if TYPE_CHECKING:
    from .model_eval import Interpreter

Given = tuple[Any, ast.expr | None]
CONSTRUCTION = "<construction site>"


# --- provenance ----------------------------------------------------------------------------

def describe(value: Any) -> str:
    if isinstance(value, ModuleValue):
        return value.type_name.rsplit(".", 1)[-1] + "(...)"
    if isinstance(value, TensorValue):
        return "a tensor"
    if isinstance(value, Unknown):
        return "?"
    if isinstance(value, ObjectValue):
        return f"{value.type_name.rsplit('.', 1)[-1]}(...)"
    plain = isinstance(value, (int, float, bool, str, type(None))) or (
        isinstance(value, tuple) and len(value) <= 8 and all(_numberish(v) for v in value))
    text = repr(value) if plain else "…"
    return text if len(text) <= 40 else text[:37] + "..."


def origin_of(frame: Frame, node: ast.AST | None) -> Origin:
    stmt = frame.statement or node
    file = frame.file
    span = file.positions.span(stmt) if stmt is not None else file.positions.span(file.tree)
    text = file.text_of(stmt) if stmt is not None else ""
    call = file.text_of(node, first_line_only=False) if node is not None else text
    return Origin(file.path, span, text, " ".join(call.split())[:200])


def name_link(interp: Interpreter, frame: Frame, node: ast.expr | None,
              value: Any) -> tuple[NameSource | None, Any, Any]:  # fmt: skip
    """The name an argument expression is a linear function of: `num_classes`, `hidden * 4`,
    `self.dim`, `cfg.depth` → (its source, scale, offset)."""
    if node is None:
        return None, 0, 0
    if isinstance(node, ast.Name):
        return interp.source_of(frame, node.id), 1, 0
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = interp.lookup(frame, node.value.id) if node.value.id == "self" else None
        sources = getattr(owner, "attr_sources", None)
        if sources and node.attr in sources:
            return sources[node.attr], 1, 0
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        base = node.value
        while isinstance(base, (ast.Attribute, ast.Subscript)):
            base = base.value
        via = interp.source_of(frame, base.id) if isinstance(base, ast.Name) else None
        text = ast.unparse(node)
        return NameSource(text, describe(value), "field", text, frame.file.path,
                          frame.file.positions.span(node), via, 0, 0), 1, 0  # fmt: skip
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int" \
            and len(node.args) == 1:
        return name_link(interp, frame, node.args[0], value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        source, scale, offset = name_link(interp, frame, node.operand, value)
        return source, -scale, -offset
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Add, ast.Sub)):
        for inner, constant in ((node.left, node.right), (node.right, node.left)):
            if isinstance(constant, ast.Constant) and isinstance(constant.value, int) \
                    and not isinstance(constant.value, bool):
                source, scale, offset = name_link(interp, frame, inner, value)
                if source is None or not scale:
                    continue
                k = constant.value
                if isinstance(node.op, ast.Mult):
                    return source, scale * k, offset * k
                if isinstance(node.op, ast.Add):
                    return source, scale, offset + k
                return (source, scale, offset - k) if inner is node.left else (source, -scale, k - offset)
    return None, 0, 0


def local_source(interp: Interpreter, frame: Frame, name: str, value: Any,
                 node: ast.expr | None) -> NameSource | None:  # fmt: skip
    """The source of `name = <node>`: a module constant or a local, linked to what it uses."""
    if node is None or not _numberish(value):
        return None
    via, scale, offset = name_link(interp, frame, node, value)
    how = "module constant" if frame.globals is None else "local"
    statement = frame.statement
    text = frame.file.text_of(statement) if statement is not None else ast.unparse(node)
    span = frame.file.positions.span(statement if statement is not None else node)
    return NameSource(name, describe(value), how, text, frame.file.path, span, via, scale, offset)


def _numberish(value: Any) -> bool:
    if isinstance(value, tuple):
        return len(value) <= 8 and all(_numberish(v) for v in value)
    return isinstance(value, (int, float, bool)) or value is None


def _given_source(interp: Interpreter, caller: Frame, param: str, value: Any,
                  node: ast.expr | None, keyword: str | None) -> NameSource | None:  # fmt: skip
    if node is None:
        return None
    via, scale, offset = name_link(interp, caller, node, value)
    text = ast.unparse(node)
    how = "construction argument" if caller.name == CONSTRUCTION else "argument"
    return NameSource(param, describe(value), how, f"{keyword}={text}" if keyword else text,
                      caller.file.path, caller.file.positions.span(node), via, scale, offset)  # fmt: skip


def make_arg(interp: Interpreter, frame: Frame, layer: str, param: str, value: Any,
             node: ast.expr | None) -> Arg:  # fmt: skip
    if node is None:
        return Arg(value, ArgSource(param, layer, "", frame.file.path, None))
    via, scale, offset = name_link(interp, frame, node, value)
    source = ArgSource(param, layer, ast.unparse(node), frame.file.path,
                       frame.file.positions.span(node), via, scale, offset)  # fmt: skip
    parts: tuple[Arg, ...] = ()
    if isinstance(node, (ast.Tuple, ast.List)) and isinstance(value, (tuple, list)) \
            and len(node.elts) == len(value) and not any(isinstance(e, ast.Starred) for e in node.elts):
        parts = tuple(make_arg(interp, frame, layer, f"{param}[{i}]", v, e)
                      for i, (v, e) in enumerate(zip(value, node.elts, strict=True)))  # fmt: skip
    return Arg(value, source, parts)


# --- calls ---------------------------------------------------------------------------------

def call_node(interp: Interpreter, node: ast.Call, frame: Frame) -> Any:
    function = interp.eval(node.func, frame)
    positional: list[Given] = []
    keywords: dict[str, Given] = {}
    spread: str | None = None
    starred: Any = None
    for arg in node.args:
        if isinstance(arg, ast.Starred):
            value = starred = interp.eval(arg.value, frame)
            items = interp.items_of(value)
            if items is None:
                spread = f"`{ast.unparse(arg)}`, whose items are not known here"
            else:
                positional.extend((item, None) for item in items)
        else:
            positional.append((interp.eval(arg, frame), arg))
    for keyword in node.keywords:
        value = interp.eval(keyword.value, frame)
        if keyword.arg is not None:
            keywords[keyword.arg] = (value, keyword.value)
        elif isinstance(value, dict) and not getattr(value, "unknown", None):
            keywords.update((str(k), (v, None)) for k, v in value.items())
        else:
            spread = f"`**{ast.unparse(keyword.value)}`, whose contents are not known here"
    result = call_value(interp, function, positional, keywords, frame, node, spread)
    if (len(node.args) == 1 and isinstance(node.args[0], ast.Starred)
            and isinstance(result, ModuleValue) and result.repeat is None):  # fmt: skip
        # nn.Sequential(*layers): the list's length is the container's.
        result.repeat = getattr(starred, "repeat", None)
    return result


def call_value(interp: Interpreter, function: Any, positional: list[Given],
               keywords: dict[str, Given], frame: Frame, node: ast.Call | None,
               spread: str | None = None) -> Any:  # fmt: skip
    interp.tick()
    if isinstance(function, Partial):
        positional = [*function.args, *positional]
        keywords = {**function.kwargs, **keywords}
        function = function.function
    if spread is not None:
        return _spread_result(function, spread, frame, node)
    if isinstance(function, (TorchClass, UserClass)):
        return _construct(interp, function, positional, keywords, frame, node)
    if isinstance(function, UserFunction):
        return call_function(interp, function, positional, keywords, frame, node)
    if isinstance(function, BoundMethod):
        return call_function(interp, function.function, positional, keywords, frame, node,
                             bound=function.self_value)  # fmt: skip
    if isinstance(function, TorchInit):
        target = function.self_value
        if target is None and positional:
            target, positional = positional[0][0], positional[1:]
        if isinstance(target, ModuleValue):
            init_torch_base(interp, function.cls.name, target, positional, keywords, frame, node)
        return None
    if isinstance(function, BuiltinMethod):
        from .value_methods import call_method

        return call_method(interp, function.obj, function.name, [v for v, _ in positional],
                           {k: v for k, (v, _) in keywords.items()}, frame, positional, keywords)  # fmt: skip
    if isinstance(function, Builtin):
        from .builtin_calls import call_builtin

        return call_builtin(interp, function.name, positional, keywords, frame, node)
    if isinstance(function, TorchRef):
        from .library_calls import call_torch

        return call_torch(interp, function.path, positional, keywords, frame, node)
    if isinstance(function, LibraryValue):
        from .library_calls import call_library

        return call_library(interp, function.path, positional, keywords, frame)
    if isinstance(function, ModuleValue):
        return TensorValue(None, reason="the output of a module's forward")
    if isinstance(function, Unknown):
        touch_modules(positional, keywords, function.reason, whole=False)
        return Unknown(function.reason)
    return Unknown(f"calling {describe(function)} is not followed here")


def _construct(interp: Interpreter, cls: TorchClass | UserClass, positional: list[Given],
               keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> Any:  # fmt: skip
    """Build a module or object; the same call with the same plain arguments (a block in a
    comprehension over range(depth)) is built once and copied."""
    key = _construction_key(interp, cls, positional, keywords, frame, node)
    cached = interp.constructed.get(key) if key is not None else None
    if cached is not None:
        return deep_copy(cached)
    if isinstance(cls, TorchClass):
        result = construct_torch(interp, cls.name, positional, keywords, frame, node)
    else:
        result = instantiate(interp, cls, positional, keywords, frame, node)
    if key is not None and isinstance(result, ModuleValue):
        interp.constructed[key] = deep_copy(result)
    return result


_IMMUTABLE = (int, float, str, bool, type(None), TorchClass, TorchRef, LibraryValue, Builtin)


def _construction_key(interp: Interpreter, cls: Any, positional: list[Given],
                      keywords: dict[str, Given], frame: Frame,
                      node: ast.Call | None) -> tuple[Any, ...] | None:  # fmt: skip
    """A key for calls whose arguments are plain immutable values (with the same sources)."""
    if node is None or frame.uncertain is not None:
        return None
    parts: list[Any] = [id(node), id(cls), id(frame.file), interp.globals_epoch]
    for name, (value, arg) in [*((None, g) for g in positional), *keywords.items()]:
        if not _immutable(value):
            return None
        source = interp.source_of(frame, arg.id) if isinstance(arg, ast.Name) else None
        parts.append((name, type(value), value if not isinstance(value, UserClass) else id(value),
                      id(source)))  # fmt: skip
    return tuple(parts)


def _immutable(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_immutable(v) for v in value)
    return isinstance(value, (*_IMMUTABLE, UserClass))


def _spread_result(function: Any, spread: str, frame: Frame, node: ast.Call | None) -> Any:
    if isinstance(function, TorchClass) or (isinstance(function, UserClass)
                                            and function.is_module == "yes"):  # fmt: skip
        name = function.name
        module = ModuleValue(f"torch.nn.{name}" if isinstance(function, TorchClass) else
                             function.qualname, "layer", origin_of(frame, node))  # fmt: skip
        module.unknown_all = f"its arguments include {spread}"
        return module
    return Unknown(f"its arguments include {spread}")


def touch_modules(positional: list[Given], keywords: dict[str, Given], reason: str,
                   whole: bool) -> None:  # fmt: skip
    """Modules handed to code not followed here may be changed by it."""
    for value, _ in [*positional, *keywords.values()]:
        if isinstance(value, ModuleValue) and value.unknown_all is None:
            if whole:
                value.unknown_all = reason
            else:
                value.unknown_extra = value.unknown_extra or reason


# --- workspace functions and classes -------------------------------------------------------

def call_function(interp: Interpreter, function: UserFunction, positional: list[Given],
                  keywords: dict[str, Given], caller: Frame | None, node: ast.Call | None,
                  bound: Any = None, new_object: bool = False) -> Any:  # fmt: skip
    from .model_eval import MAX_DEPTH, Returned

    if interp.depth >= MAX_DEPTH:
        return Unknown(f"calls nest too deeply to follow (at {function.name})")
    module = interp.module_frame(function.file)
    frame = Frame(function.file, parent=function.closure, globals=module, cls=function.owner,
                  name=function.name)  # fmt: skip
    frame.uncertain = None if new_object or caller is None else caller.uncertain
    if bound is not None:
        positional = [(bound, None), *positional]
        frame.self_value = bound
    error = bind_parameters(interp, function, frame, positional, keywords, caller or frame)
    if error:
        return Unknown(f"{function.name}(...) is called with {error}")
    interp.depth += 1
    try:
        if isinstance(function.node, ast.Lambda):
            return interp.eval(function.node.body, frame)
        if _is_generator(function.node):
            return Unknown(f"{function.name} is a generator, not followed here")
        try:
            interp.exec_block(function.node.body, frame)
            value = None
        except Returned as returned:
            value = returned.value
    finally:
        interp.depth -= 1
    if frame.maybe_returned:
        return Unknown(frame.maybe_returned, not isinstance(value, (int, float, str, bool)))
    return value


def _is_generator(node: ast.AST) -> bool:
    cached = getattr(node, "_pthscope_generator", None)
    if cached is None:
        cached = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in ast.walk(node)
                     if not isinstance(n, (ast.FunctionDef, ast.Lambda)) or n is node)  # fmt: skip
        node._pthscope_generator = cached  # type: ignore[attr-defined]
    return cached


def bind_parameters(interp: Interpreter, function: UserFunction, frame: Frame,
                    positional: list[Given], keywords: dict[str, Given],
                    caller: Frame) -> str | None:  # fmt: skip
    """Bind the call's arguments in `frame` (with their sources); the error, if they don't fit."""
    args = function.node.args
    ordered = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(ordered) - len(args.defaults)) + list(args.defaults)
    scope = function.closure or interp.module_frame(function.file)
    bound: set[str] = set()

    def put(name: str, value: Any, source: NameSource | None) -> None:
        frame.env[name] = value
        if source is not None:
            frame.sources[name] = source
        bound.add(name)

    for i, (value, node) in enumerate(positional):
        if i < len(ordered):
            put(ordered[i].arg, value, _given_source(interp, caller, ordered[i].arg, value, node, None))
        elif args.vararg is None:
            return "too many positional arguments"
    if args.vararg is not None:
        put(args.vararg.arg, tuple(v for v, _ in positional[len(ordered):]), None)
    named = {a.arg for a in args.args} | {a.arg for a in args.kwonlyargs}
    extra = SDict()
    for key, (value, node) in keywords.items():
        if key in named and key not in bound:
            put(key, value, _given_source(interp, caller, key, value, node, key))
        elif args.kwarg is not None:
            extra[key] = value
        else:
            return f"an unexpected argument {key}"
    if args.kwarg is not None:
        put(args.kwarg.arg, extra, None)
    for param, default in [*zip(ordered, defaults, strict=True),
                           *zip(args.kwonlyargs, args.kw_defaults, strict=True)]:  # fmt: skip
        if param.arg in bound:
            continue
        if default is None:
            return f"no value for {param.arg}"
        value = interp.eval(default, scope)
        via, scale, offset = name_link(interp, scope, default, value)
        source = NameSource(param.arg, describe(value), "default",
                            f"{param.arg}={ast.unparse(default)}", function.file.path,
                            function.file.positions.span(default), via, scale, offset)  # fmt: skip
        put(param.arg, value, source if _numberish(value) else None)
    return None


def instantiate(interp: Interpreter, cls: UserClass, positional: list[Given],
                keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> Any:  # fmt: skip
    from .model_eval import MAX_DEPTH, Raised

    if cls.is_module == "maybe":
        return Unknown(f"{cls.name} derives from a library class (library model; not derived)")
    if cls.dataclass or cls.namedtuple:
        return _record(interp, cls, positional, keywords, frame)
    if cls.is_module == "yes":
        instance: Any = ModuleValue(cls.qualname, "user", origin_of(frame, node))
        instance.user_class = cls
    else:
        instance = ObjectValue(cls.qualname, cls=cls)
    if interp.depth >= MAX_DEPTH:
        if isinstance(instance, ModuleValue):
            instance.unknown_all = "it nests too deeply to follow"
        return instance
    try:
        init_instance(interp, cls, instance, positional, keywords, frame, node)
    except Raised:
        if isinstance(instance, ModuleValue):
            instance.unknown_all = f"{cls.name}.__init__ raises with these arguments"
        else:
            return Unknown(f"{cls.name}(...) raises with these arguments")
    return instance


def init_instance(interp: Interpreter, cls: UserClass, instance: Any, positional: list[Given],
                  keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> None:  # fmt: skip
    """Run the first `__init__` on the class's MRO (a torch base runs its rule)."""
    for entry in class_mro(interp, cls):
        if isinstance(entry, UserClass):
            init = interp.class_namespace(entry).get("__init__")
            init = interp.resolve(init)
            if isinstance(init, UserFunction):
                init.owner = entry
                call_function(interp, init, positional, keywords, frame, node, bound=instance,
                              new_object=True)  # fmt: skip
                return
            if init is not None:
                _mark_whole(instance, f"{entry.name}.__init__ is not followed here")
                return
        elif isinstance(entry, TorchClass):
            if isinstance(instance, ModuleValue):
                init_torch_base(interp, entry.name, instance, positional, keywords, frame, node)
            return
        elif isinstance(entry, LibraryValue):
            if entry.path in LIGHTNING_MODULES or entry.path.split(".")[0] in STDLIB:
                return
            _mark_whole(instance, f"its base {entry.path} is a library class (library model; "
                                  "not derived)")  # fmt: skip
            return
        elif isinstance(entry, Unknown):
            _mark_whole(instance, entry.reason)
            return


def _mark_whole(instance: Any, reason: str) -> None:
    if isinstance(instance, ModuleValue):
        instance.unknown_all = reason


def _record(interp: Interpreter, cls: UserClass, positional: list[Given],
            keywords: dict[str, Given], frame: Frame) -> Any:  # fmt: skip
    """A dataclass or NamedTuple instance: its fields from the call and the defaults."""
    fields: dict[str, Any] = {}
    for entry in reversed(class_mro(interp, cls)):
        if isinstance(entry, UserClass) and (entry.dataclass or entry.namedtuple):
            namespace = interp.class_namespace(entry)
            for stmt in entry.node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    fields[stmt.target.id] = namespace.get(stmt.target.id, NO_DEFAULT)
    record = ObjectValue(cls.qualname, cls=cls)
    names = list(fields)
    for i, (value, node) in enumerate(positional):
        if i >= len(names):
            return Unknown(f"{cls.name}(...) is called with too many arguments")
        record.attrs[names[i]] = value
        source = _given_source(interp, frame, names[i], value, node, None)
        if source is not None:
            record.attr_sources[names[i]] = source
    for key, (value, node) in keywords.items():
        record.attrs[key] = value
        source = _given_source(interp, frame, key, value, node, key)
        if source is not None:
            record.attr_sources[key] = source
    for name in names:
        if name in record.attrs:
            continue
        default = fields[name]
        if isinstance(default, FieldSpec):
            default = default.default if default.factory is None else call_value(
                interp, default.factory, [], {}, frame, None)
        record.attrs[name] = Unknown(f"{cls.name}.{name} has no value") if default is NO_DEFAULT else default
    ordered = {name: record.attrs.pop(name) for name in names if name in record.attrs}
    record.attrs = {**ordered, **record.attrs}
    post_init = interp.class_namespace(cls).get("__post_init__")
    if isinstance(post_init, UserFunction):
        call_function(interp, post_init, [], {}, frame, None, bound=record, new_object=True)
    return record


NO_DEFAULT = object()


# --- torch.nn classes ----------------------------------------------------------------------

def construct_torch(interp: Interpreter, name: str, positional: list[Given],
                    keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> Any:  # fmt: skip
    kind = "container" if name in CONTAINERS and name != "Module" else "layer"
    module = ModuleValue(f"torch.nn.{name}", kind, origin_of(frame, node))
    init_torch_base(interp, name, module, positional, keywords, frame, node)
    return module


def init_torch_base(interp: Interpreter, name: str, module: ModuleValue, positional: list[Given],
                    keywords: dict[str, Given], frame: Frame, node: ast.Call | None) -> None:  # fmt: skip
    """Fill `module` as the torch class `name`'s __init__ would."""
    if name in LAYERS:
        args = _bind_layer(interp, name, positional, keywords, frame)
        if isinstance(args, str):
            module.unknown_all = args
            return
        make_layer(name, args, frame.file.path, module.origin, into=module)
    elif name in CONTAINERS:
        module.base = name if name not in ("Module", "Container") else module.base
        fill_container(name, module, [v for v, _ in positional], {k: v for k, (v, _) in keywords.items()})
    elif name in WRAPPERS:
        wrapped = positional[0][0] if positional else keywords.get("module", (None, None))[0]
        add_child(module, "module", wrapped)
    elif name in NOT_DERIVED:
        module.unknown_all = f"{display_name(name)} is not derived here"


def _bind_layer(interp: Interpreter, name: str, positional: list[Given],
                keywords: dict[str, Given], frame: Frame) -> dict[str, Arg] | str:  # fmt: skip
    spec = LAYERS[name]
    layer = display_name(name)
    ordered = [p for p in spec.params if not p.keyword_only and not p.star]
    takes_args = any(p.star == "*" for p in spec.params)
    takes_kwargs = any(p.star == "**" for p in spec.params)
    names = {p.name for p in spec.params if not p.star}
    args: dict[str, Arg] = {}
    for i, (value, node) in enumerate(positional):
        if i < len(ordered):
            args[ordered[i].name] = make_arg(interp, frame, layer, ordered[i].name, value, node)
        elif not takes_args:
            return f"{layer} is called with too many arguments"
    for key, (value, node) in keywords.items():
        if key in names:
            args[key] = make_arg(interp, frame, layer, key, value, node)
        elif not takes_kwargs:
            return f"{layer} has no argument {key}"
    return args


def add_child(module: ModuleValue, name: str, value: Any) -> None:
    if isinstance(value, ModuleValue) or value is None:
        module.set_child(name, value)
    elif isinstance(value, Unknown):
        module.set_unknown(name, value.reason)
    else:
        module.set_unknown(name, f"{describe(value)} is not a module")


def as_parameter(value: Any) -> TensorValue | None:
    if isinstance(value, TensorValue):
        return TensorValue(value.dims, value.dtype, True, value.reason, origin=value.origin)
    return None


def fill_container(name: str, module: ModuleValue, values: list[Any], named: dict[str, Any]) -> None:
    if name == "Sequential":
        if len(values) == 1 and isinstance(values[0], SDict) and values[0].ordered:
            if values[0].unknown:
                module.unknown_all = values[0].unknown
            for key, value in values[0].items():
                add_child(module, str(key), value)
            return
        for i, value in enumerate(values):
            add_child(module, str(i), value)
        return
    source = values[0] if values else named.get("modules", named.get("values", named.get("parameters")))
    if source is None:
        return
    if isinstance(source, dict):
        if getattr(source, "unknown", None):
            module.unknown_all = source.unknown  # type: ignore[attr-defined]
            return
        pairs = list(source.items())
    else:
        items = items_of_value(source)
        if items is None:
            module.unknown_all = why(source, "its items are not known here")
            return
        if name in ("ModuleDict", "ParameterDict"):
            if not all(isinstance(p, tuple) and len(p) == 2 for p in items):
                module.unknown_all = "its items are not (name, value) pairs known here"
                return
            pairs = list(items)
        else:
            pairs = [(str(i), v) for i, v in enumerate(items)]
            module.repeat = getattr(source, "repeat", None)
    for key, value in pairs:
        if name.startswith("Parameter"):
            tensor = as_parameter(value)
            if tensor is None:
                module.set_unknown(str(key), why(value, "not a tensor known here"))
            else:
                module.set_param(str(key), tensor)
        else:
            add_child(module, str(key), value)


def items_of_value(value: Any) -> list[Any] | None:
    if isinstance(value, (SList, SDict)) and value.unknown:
        return None
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, ModuleValue):
        return container_items(value)
    return None


def why(value: Any, default: str) -> str:
    if isinstance(value, Unknown):
        return value.reason
    return getattr(value, "unknown", None) or default

"""The value (flow.py) an expression gives, and the keys code reads from what `torch.load`
returned (`KeyRef`s).

The walk in collect.py asks `value_of` for the right-hand side of every assignment, the
argument of every `load_state_dict` and the arguments of calls of the file's own functions.
Understood: static strings (paths.py), names, `x["key"]`, `x.get("key")`, `x.get("key", x)` and
`x["key"] if "key" in x else x` (also with another entry, `x.get("key", x["other"])`; the `if`
statement's form is flow_walk.py's), `torch.load(...)`, calls that hand back their receiver
(`model.to(device)`), wrappers of a model (`nn.DataParallel(model)`, `torch.compile(model)`: the
same `Built` with its wrappers; `wrapper.module` the model again), `copy.deepcopy(model)` (a
`Built` copied: another model of the same structure; `copy.copy` is UNCLEAR),
`self.model` in a method, when the class's `__init__` set it once and nothing else changes it
(self_attributes.py), `open(path)` (so that `with open(p, "rb") as f: torch.load(f)` reads `p`), a comprehension that
renames a loaded dict's keys (`Renamed`: `key_renaming`'s forms) and any other call (an object it
built). Everything else is UNCLEAR.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from typing import TYPE_CHECKING

from .facts import KeyChanges, KeyRef
from .flow import (
    UNCLEAR,
    WRAPPED_AS,
    Built,
    Loaded,
    Param,
    Renamed,
    Value,
    join,
    key_choice,
    same_value,
)
from .paths import dotted_name, static_path

if TYPE_CHECKING:
    from .collect import Collector

# Methods that return the object they are called on.
_SAME_OBJECT_METHODS = {
    "to", "cuda", "cpu", "eval", "train", "half", "float", "double", "bfloat16",
    "requires_grad_", "share_memory", "to_empty",
}  # fmt: skip
# Names of wrappers that may hold their argument under a prefix we cannot tell (one not
# imported from torch): the same model, its keys not known.
_WRAPPER_NAMES = {"DataParallel", "DistributedDataParallel", "DDP", "compile"}
_OPEN_CALLS = {"open", "io.open", "builtins.open"}
_OBJECTS = (Built, Loaded, Param)


def value_of(c: Collector, node: ast.AST | None) -> Value:
    """What `node` evaluates to, as far as the walk can tell at this point."""
    if node is None:
        return UNCLEAR
    text = static_path(node, c.text_of)
    if text is not None:
        return text
    if isinstance(node, ast.Name):
        return c.flow.get(node.id) or UNCLEAR
    if isinstance(node, ast.Subscript):
        key = _string(node.slice)
        base = value_of(c, node.value) if key is not None else UNCLEAR
        return base.at(key) if isinstance(base, Loaded) and key is not None else UNCLEAR
    if isinstance(node, ast.IfExp):
        return _conditional(c, node)
    if isinstance(node, ast.Call):
        return _call_value(c, node)
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id == "self" and c.classes:
            held = c.self_attributes.get((".".join(c.classes), node.attr))
            if held is not None:  # what `__init__` set it to, and nothing changes (self_attributes.py)
                return held
        return _unwrapped(value_of(c, node.value), node.attr)
    if isinstance(node, ast.DictComp):
        return _renamed(c, node)
    return UNCLEAR


def _renamed(c: Collector, node: ast.DictComp) -> Value:
    """A comprehension that renames or leaves out a loaded dict's keys: a new dict from here on."""
    renaming = key_renaming(node)
    return renamed_copy(c, *renaming) if renaming is not None else UNCLEAR


def renamed_copy(c: Collector, changes: KeyChanges, items: ast.expr) -> Value:
    """A copy of the dict `items` is, its keys changed, with the literal-key edits made to that
    dict before (flow_stores.py): `Renamed` when it is a loaded dict, else UNCLEAR."""
    from .flow_stores import edits_for  # flow_stores reads values through this module

    base = value_of(c, items)
    if not isinstance(base, Loaded):
        return UNCLEAR
    removed = edits_for(c, base)
    if removed is None:
        return UNCLEAR
    return Renamed(base, replace(changes, drops=(*changes.drops, *(k for k in removed if k not in changes.drops))))


def _unwrapped(base: Value, attr: str) -> Value:
    """`wrapper.module` (`compiled._orig_mod`): the model inside the outermost wrapper."""
    if isinstance(base, Built) and base.wrappers and WRAPPED_AS[base.wrappers[0]] == attr:
        return replace(base, wrappers=base.wrappers[1:])
    return UNCLEAR


def _call_value(c: Collector, node: ast.Call) -> Value:
    index = c.torch_load_index(node)
    if index is not None:
        return Loaded(index)
    func = node.func
    if isinstance(func, ast.Attribute):
        if func.attr == "get":
            return _get_value(c, node, func.value)
        if func.attr in _SAME_OBJECT_METHODS:
            base = value_of(c, func.value)
            return base if isinstance(base, _OBJECTS) else UNCLEAR
        if func.attr == "open" and not node.args:  # Path(p).open("rb")
            text = static_path(func.value, c.text_of)
            return text if text is not None else UNCLEAR
    name = dotted_name(func)
    if name is None:
        return UNCLEAR
    made = _of_model(c, name, node)
    if made is not None:
        return made
    if name in _OPEN_CALLS:
        text = static_path(node.args[0], c.text_of) if node.args else None
        return text if text is not None else UNCLEAR
    return Built(name, c.scope, node.lineno - 1)


def _of_model(c: Collector, name: str, node: ast.Call) -> Value | None:
    """A wrapper or copy of the model its first argument is; None for other calls. A wrapper
    holds the same parameters under its prefix; a deepcopy is a new model of the same
    structure; a shallow copy shares parameters with it (neither the same nor another: unclear)."""
    full = c.qualified(name) or ""
    wrapper = full in WRAPPED_AS or name.rsplit(".", 1)[-1] in _WRAPPER_NAMES
    deep = full == "copy.deepcopy" or (not full and name == "deepcopy")
    if not (wrapper or deep or full == "copy.copy"):
        return None
    inner = value_of(c, node.args[0]) if node.args else UNCLEAR
    if full in WRAPPED_AS:
        if isinstance(inner, Loaded):
            return inner  # a whole model torch.load returned, wrapped: still that file's
        if not isinstance(inner, Built):
            return UNCLEAR  # a parameter's wrapper: its callers' model, under a prefix
        return replace(inner, wrappers=None if inner.wrappers is None else (full, *inner.wrappers))
    if wrapper:  # not torch's (or not imported): the same model, under a prefix not known
        return replace(inner, wrappers=None) if isinstance(inner, Built) else None
    if deep:
        if isinstance(inner, Built):
            return replace(inner, copied=(node.lineno - 1, node.col_offset))
        return inner if isinstance(inner, Loaded) else UNCLEAR
    return UNCLEAR  # copy.copy


def _get_value(c: Collector, node: ast.Call, receiver: ast.expr) -> Value:
    """`x.get("k")` is the entry; `x.get("k", x)` the entry when there is one, else `x`."""
    key = _string(node.args[0]) if node.args and not node.keywords else None
    base = value_of(c, receiver) if key is not None else UNCLEAR
    if not isinstance(base, Loaded) or key is None:
        return UNCLEAR
    if len(node.args) == 1:
        return base.at(key)
    if len(node.args) == 2:  # `x.get("k", x)`, `x.get("k", x["m"])`, `x.get("k", x.get("m", x))`
        chosen = key_choice(base, key, value_of(c, node.args[1]), c.same_file)
        return chosen if chosen is not None else UNCLEAR
    return UNCLEAR


def _conditional(c: Collector, node: ast.IfExp) -> Value:
    """`x["k"] if "k" in x else y` is `x["k"]` where the file has "k", else `y` (flow.key_choice);
    other conditionals join both sides."""
    body, orelse = value_of(c, node.body), value_of(c, node.orelse)
    guard = key_test(c, node.test)
    if guard is not None and same_value(body, guard[0].at(guard[1]), c.same_file):
        chosen = key_choice(*guard, orelse, c.same_file)
        if chosen is not None:
            return chosen
    joined = join(body, orelse, c.same_file)
    return joined if joined is not None else UNCLEAR


def key_test(c: Collector, test: ast.expr) -> tuple[Loaded, str] | None:
    """(x, "k") for a test that holds exactly when loaded dict `x` has key "k": `"k" in x`,
    `"k" in x.keys()`, either after `isinstance(x, dict) and`."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        found = [key_test(c, part) for part in test.values]
        tests = [f for f in found if f is not None]
        others = [p for p, f in zip(test.values, found, strict=True) if f is None]
        if len(tests) == 1 and all(_is_isinstance(p) for p in others):
            return tests[0]
        return None
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.In)):
        return None
    key, container = _string(test.left), test.comparators[0]
    if (isinstance(container, ast.Call) and isinstance(container.func, ast.Attribute)
            and container.func.attr == "keys" and not container.args):  # fmt: skip
        container = container.func.value
    base = value_of(c, container) if key is not None else None
    return (base, key) if isinstance(base, Loaded) and key is not None else None


def _is_isinstance(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"


def record_key_ref(c: Collector, node: ast.Subscript | ast.Call) -> None:
    """A string key read from a loaded checkpoint (or from a parameter, resolved after the
    walk): remembered with what it reads, and kept from being taken for a parameter key."""
    if isinstance(node, ast.Subscript):
        if not isinstance(node.ctx, ast.Load):
            return
        literal, base_node, get = node.slice, node.value, False
    else:
        literal, base_node, get = node.args[0], node.func.value, True  # type: ignore[attr-defined]
    key = _string(literal)
    if key is None:
        return
    value = value_of(c, node)
    span = c.pos.span(literal)
    root, depth = _written(node)
    if isinstance(value, Loaded):
        guarded = get or id(node) in c.guarded_reads or any(
            g is not None and g[1] == key and same_value(g[0].at(key), value, c.same_file) for g in c.key_guards)
        c.facts.key_refs.append(KeyRef(key, span, value, guarded, root, depth))
        c.consumed.add(id(literal))
        return
    base = value_of(c, base_node)
    if isinstance(base, Param):
        c.param_key_refs.append((base, KeyRef(key, span, Loaded(-1, (key,)), get, root, depth)))
        c.consumed.add(id(literal))


def _written(node: ast.AST) -> tuple[str | None, int]:
    """The name a chain of key reads starts from, and how many keys it reads."""
    depth = 0
    while is_key_access(node):
        depth += 1
        node = node.value if isinstance(node, ast.Subscript) else node.func.value  # type: ignore[attr-defined]
    return (node.id if isinstance(node, ast.Name) else None), max(depth, 1)


def is_key_access(node: ast.AST) -> bool:
    """`x["k"]` or `x.get("k"...)` with a string constant key."""
    if isinstance(node, ast.Subscript):
        return _string(node.slice) is not None
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and _string(node.args[0]) is not None
    )


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def key_loop(c: Collector, loop: ast.For | ast.AsyncFor) -> tuple[str, Value] | None:
    """The loop that looks for the entry a checkpoint keeps its weights under → (Y, what Y holds
    after it):

        for key in ("state_dict", "model"):     # a tuple or list of strings
            if key in X:
                Y = X[key]                       # Y = X: each entry found is looked in again
                break                            # with it: the first entry X has

    `X` a loaded dict; without `break` only `X = X[key]`. None for anything else."""
    keys = _strings(loop.iter)
    if not (keys and isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and not loop.orelse
            and len(loop.body) == 1 and isinstance(loop.body[0], ast.If)):  # fmt: skip
        return None
    test, variable = loop.body[0], loop.target.id
    found = test.body[0] if test.body and not test.orelse else None
    breaks = len(test.body) == 2 and isinstance(test.body[1], ast.Break)
    if not (isinstance(found, ast.Assign) and len(found.targets) == 1 and isinstance(found.targets[0], ast.Name)
            and (breaks or len(test.body) == 1) and isinstance(test.test, ast.Compare)
            and len(test.test.ops) == 1 and isinstance(test.test.ops[0], ast.In)
            and isinstance(test.test.left, ast.Name) and test.test.left.id == variable
            and isinstance(test.test.comparators[0], ast.Name)):  # fmt: skip
        return None
    tested, held = test.test.comparators[0].id, found.targets[0].id
    read = found.value
    if not (isinstance(read, ast.Subscript) and isinstance(read.value, ast.Name) and read.value.id == tested
            and isinstance(read.slice, ast.Name) and read.slice.id == variable):  # fmt: skip
        return None
    base = value_of(c, test.test.comparators[0])
    if not isinstance(base, Loaded) or variable in (tested, held):
        return None
    if not breaks:  # `X = X[key]` each time X has it: entries inside entries
        if held != tested:
            return None
        for key in keys:
            base = base.at(key, optional=True)
        return held, base
    otherwise = c.flow.get(held) if held != tested else base
    chosen = otherwise
    for key in reversed(keys):  # the first key found wins
        chosen = key_choice(base, key, chosen, c.same_file) if chosen is not None else None
    return (held, chosen) if chosen is not None else None


def _strings(node: ast.expr) -> tuple[str, ...]:
    """The strings of a literal tuple or list of them; () for anything else."""
    if not isinstance(node, (ast.Tuple, ast.List)):
        return ()
    texts = tuple(_string(e) for e in node.elts)
    return texts if texts and None not in texts else ()  # type: ignore[return-value]


def copy_loop(loop: ast.For | ast.AsyncFor, before: ast.stmt | None) -> tuple[str, KeyChanges, ast.expr] | None:
    """The forum-famous copy of a state_dict under new keys → (D, what it does to the keys, X):

        D = OrderedDict()            # or {}, dict(), collections.OrderedDict()
        for k, v in X.items():
            name = k[7:]             # any key expression key_renaming reads, or none
            D[name] = v

    None for anything else (a filter, another statement, an else branch)."""
    if not (isinstance(before, ast.Assign) and len(before.targets) == 1 and isinstance(before.targets[0], ast.Name)
            and _empty_dict(before.value) and isinstance(loop, ast.For) and not loop.orelse):  # fmt: skip
        return None
    copy = before.targets[0].id
    body = loop.body
    if not (isinstance(loop.target, ast.Tuple) and len(loop.target.elts) == 2
            and all(isinstance(e, ast.Name) for e in loop.target.elts) and 1 <= len(body) <= 2):  # fmt: skip
        return None
    key, value = (e.id for e in loop.target.elts)  # type: ignore[attr-defined]
    store = body[-1]
    if not (isinstance(store, ast.Assign) and len(store.targets) == 1 and isinstance(store.targets[0], ast.Subscript)
            and isinstance(store.targets[0].value, ast.Name) and store.targets[0].value.id == copy
            and isinstance(store.value, ast.Name) and store.value.id == value):  # fmt: skip
        return None
    made: ast.expr = store.targets[0].slice
    if len(body) == 2:  # `name = <key expression>; D[name] = v`
        first = body[0]
        if not (isinstance(first, ast.Assign) and len(first.targets) == 1 and isinstance(first.targets[0], ast.Name)
                and isinstance(made, ast.Name) and made.id == first.targets[0].id not in (key, value, copy)):  # fmt: skip
            return None
        made = first.value
    if isinstance(made, ast.Name) and made.id == key:  # a plain copy
        items = loop.iter
        return (copy, KeyChanges(), items.func.value) if _items_of(items) else None  # type: ignore[attr-defined]
    comprehension = ast.DictComp(key=made, value=ast.Name(value), generators=[
        ast.comprehension(target=loop.target, iter=loop.iter, ifs=[], is_async=0)])
    renaming = key_renaming(comprehension)
    return (copy, *renaming) if renaming is not None else None


def _empty_dict(node: ast.expr) -> bool:
    if isinstance(node, ast.Dict):
        return not node.keys
    name = dotted_name(node.func) if isinstance(node, ast.Call) and not node.args and not node.keywords else None
    return name in ("dict", "OrderedDict", "collections.OrderedDict")


def _items_of(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "items"
            and not node.args and not node.keywords)  # fmt: skip


def key_renaming(arg: ast.expr) -> tuple[KeyChanges, ast.expr] | None:
    """A comprehension over `X.items()` that renames or filters the keys → (what it does, X):
    `{k.removeprefix("P"): v …}`, `{k.replace("a", "b"): v …}`, `{k[7:]: v …}`, `{"P" + k: v …}` and
    `{k: v …}`, each with at most one filter, `if k not in ("a", "b")` or `if k.startswith("P")`
    (the plain `{k: v …}` needs one). None for anything else."""
    if not (isinstance(arg, ast.DictComp) and len(arg.generators) == 1):
        return None
    loop = arg.generators[0]
    target, items = loop.target, loop.iter
    if (len(loop.ifs) > 1 or loop.is_async or not isinstance(target, ast.Tuple) or len(target.elts) != 2
            or not all(isinstance(e, ast.Name) for e in target.elts)):  # fmt: skip
        return None
    key, value = (e.id for e in target.elts)  # type: ignore[attr-defined]
    if not (isinstance(arg.value, ast.Name) and arg.value.id == value and _items_of(items)):
        return None
    assert isinstance(items, ast.Call) and isinstance(items.func, ast.Attribute)
    condition = loop.ifs[0] if loop.ifs else None
    kept = _string_method_of(condition, key, "startswith") if condition is not None else None
    drops = () if condition is None or kept is not None else _dropped_keys(condition, key)
    if drops is None:
        return None
    base, made = items.func.value, arg.key
    prefix = _string_method_of(made, key, "removeprefix") or _prefix_cut(made, key)
    if prefix is not None:
        return KeyChanges(drops, kept, renames=(prefix, "")), base
    replaced = _replace_of(made, key)
    if replaced is not None:
        return KeyChanges(drops, kept, replaced=replaced), base
    cut = _cut_of(made, key)
    if cut is not None:
        return KeyChanges(drops, kept, cut=cut), base
    if (isinstance(made, ast.BinOp) and isinstance(made.op, ast.Add)
            and isinstance(made.left, ast.Constant) and isinstance(made.left.value, str)
            and isinstance(made.right, ast.Name) and made.right.id == key):  # fmt: skip
        return KeyChanges(drops, kept, renames=("", made.left.value)), base
    if (drops or kept is not None) and isinstance(made, ast.Name) and made.id == key:
        return KeyChanges(drops, kept), base
    return None


def _prefix_cut(node: ast.expr, key: str) -> str | None:
    """`k[len("P"):] if k.startswith("P") else k` (or `k[7:]` for a 7-character P): removeprefix."""
    if not (isinstance(node, ast.IfExp) and isinstance(node.orelse, ast.Name) and node.orelse.id == key):
        return None
    prefix = _string_method_of(node.test, key, "startswith")
    return prefix if prefix and _cut_of(node.body, key) == len(prefix) else None


def _cut_of(node: ast.expr, key: str) -> int | None:
    """`k[7:]` or `k[len("module."):]` → 7."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == key
            and isinstance(node.slice, ast.Slice) and node.slice.upper is None and node.slice.step is None):  # fmt: skip
        return None
    lower = node.slice.lower
    if isinstance(lower, ast.Constant) and type(lower.value) is int and lower.value > 0:
        return lower.value
    if (isinstance(lower, ast.Call) and isinstance(lower.func, ast.Name) and lower.func.id == "len"
            and len(lower.args) == 1 and not lower.keywords and isinstance(lower.args[0], ast.Constant)
            and isinstance(lower.args[0].value, str) and lower.args[0].value):  # fmt: skip
        return len(lower.args[0].value)
    return None


def _replace_of(node: ast.expr, key: str) -> tuple[str, str] | None:
    """`k.replace("a", "b")` (no count) → ("a", "b")."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == key and len(node.args) == 2
            and not node.keywords and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
            and node.args[0].value):  # type: ignore[attr-defined]  # fmt: skip
        return node.args[0].value, node.args[1].value  # type: ignore[attr-defined]
    return None


def _string_method_of(node: ast.expr, key: str, method: str) -> str | None:
    """`k.<method>("P")` (`removeprefix`, `startswith`) → "P"."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == method and isinstance(node.func.value, ast.Name)
            and node.func.value.id == key and len(node.args) == 1 and not node.keywords
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):  # fmt: skip
        return node.args[0].value
    return None


def _dropped_keys(condition: ast.expr, key: str) -> tuple[str, ...] | None:
    """`k not in ("a", "b")` (a tuple, list or set of strings) → ("a", "b"); else None."""
    if not (isinstance(condition, ast.Compare) and isinstance(condition.left, ast.Name)
            and condition.left.id == key and len(condition.ops) == 1
            and isinstance(condition.ops[0], ast.NotIn)):  # fmt: skip
        return None
    listed = condition.comparators[0]
    if not isinstance(listed, (ast.Tuple, ast.List, ast.Set)) or not listed.elts:
        return None
    if not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in listed.elts):
        return None
    return tuple(dict.fromkeys(e.value for e in listed.elts))  # type: ignore[attr-defined]

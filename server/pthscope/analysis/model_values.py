"""The values the static model evaluator works with, and where each number comes from.

`model_eval` reads an `nn.Module`'s `__init__` (never running it) and builds a `ModuleValue`
tree: parameters and buffers as `TensorValue`s whose dimensions are `Dim`s, children, and the
parts that cannot be known (`Unknown`, with a reason). Plain Python values (int, float, str,
bool, None, tuple) stand for themselves; lists and dicts are `SList`/`SDict`, which can be
marked as having contents not known here.

Provenance is data: a `Dim` names the constructor argument that decides it (`ArgSource`), and
that argument names where its value came from (`NameSource`: a construction-site argument, a
default, a module constant, a local), each link saying `value == scale * upstream + offset` when
that is so, so a checkpoint's shape can be turned back into the argument value it implies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .facts import Span

Number = int | Fraction


class Unknown:
    """A value not known here, and why. `maybe_module` is False for values that cannot be a
    module or parameter (the result of arithmetic, a comparison, a string method)."""

    __slots__ = ("reason", "maybe_module")

    def __init__(self, reason: str, maybe_module: bool = True) -> None:
        self.reason = reason
        self.maybe_module = maybe_module

    def __repr__(self) -> str:
        return f"Unknown({self.reason!r})"


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


@dataclass(frozen=True)
class NameSource:
    """Where the value of a name comes from: `num_classes=10` at the construction site, a
    default, a module constant, a local assignment. `via` is the name it was computed from,
    with `value == scale * via.value + offset` (scale 0: not a linear function of it)."""

    name: str
    value: str
    how: str  # "construction argument", "argument", "default", "module constant", "local", …
    text: str
    file: str
    span: Span | None
    via: NameSource | None = None
    scale: Number = 1
    offset: Number = 0

    def root(self) -> NameSource:
        """The first name of a chain of linear links (the one a user would change)."""
        link = self
        while link.via is not None and link.scale:
            link = link.via
        return link


@dataclass(frozen=True)
class ArgSource:
    """The constructor argument that decides a dimension: `out_features` of
    `nn.Linear(64, num_classes)`, given as `num_classes` (whose value comes from `name`, with
    `argument == scale * name + offset`; scale 0: not a linear function of one name)."""

    argument: str
    layer: str
    expression: str
    file: str
    span: Span | None
    name: NameSource | None = None
    scale: Number = 1
    offset: Number = 0


@dataclass(frozen=True)
class Dim:
    """One dimension: its value (None: not known, and `reason` says why), the argument that
    decides it, and `factor` with `value == factor * argument` (0: not a multiple of one)."""

    value: int | None
    source: ArgSource | None = None
    factor: Number = 1
    reason: str | None = None


@dataclass(frozen=True)
class Origin:
    """Where a tensor or module is created: the statement (its first line as text) and the
    call that builds it."""

    file: str
    span: Span
    text: str
    call: str


@dataclass
class TensorValue:
    """A tensor the code creates: its dims (None: not even the rank is known, `reason` says
    why), dtype when known ("int64" for `num_batches_tracked`; None means the default float)."""

    dims: tuple[Dim, ...] | None
    dtype: str | None = None
    parameter: bool = False
    reason: str | None = None
    buffer_persistent: bool | None = None  # set by nn.Buffer(t, persistent=...)
    origin: Origin | None = None
    presence: ArgSource | None = None  # the flag argument that makes it exist (bias=True)

    def with_dims(self, dims: tuple[Dim, ...] | None, reason: str | None = None) -> TensorValue:
        return TensorValue(dims, self.dtype, False, reason or self.reason)

    def shape_values(self) -> tuple[int | None, ...] | None:
        return None if self.dims is None else tuple(d.value for d in self.dims)


class SList(list):
    """A list (or tuple built into one) whose contents may be not known (`unknown` says why).
    `repeat` remembers how a comprehension or loop over `range(...)` decided its length."""

    unknown: str | None = None
    repeat: Repeat | None = None


class SDict(dict):
    """A dict whose contents may be not known (`unknown` says why); `ordered` for an
    OrderedDict (nn.Sequential takes names only from one)."""

    unknown: str | None = None
    ordered: bool = False


class SRange:
    """`range(...)`, with the argument that decides its stop (for "depth" explanations)."""

    def __init__(self, values: range, source: ArgSource | None = None) -> None:
        self.values = values
        self.source = source


@dataclass(frozen=True)
class Repeat:
    """The length of a list built over `range(...)`: `length == count_of(range) + offset`,
    with the range's stop argument as an ArgSource (so a checkpoint's depth implies a value)."""

    source: ArgSource
    offset: int = 0


@dataclass
class ObjectValue:
    """An instance of a plain class, a dataclass or a namespace: its attributes."""

    type_name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    cls: Any = None  # the UserClass, for methods
    attr_sources: dict[str, NameSource] = field(default_factory=dict)


class ModuleValue:
    """An `nn.Module` being built: what `_parameters`, `_buffers` and `_modules` would hold,
    in torch's order, plus plain attributes and the parts not known here.

    `unknown` maps a name to why its entry (a parameter, buffer or child, or none) is not
    known; `unknown_all` makes the whole module unknown; `unknown_extra` says that entries of
    names not known here may exist beside the known ones.
    """

    __slots__ = (
        "type_name", "params", "buffers", "non_persistent", "children", "attrs",
        "attr_sources", "unknown", "unknown_all", "unknown_extra", "origin", "user_class",
        "repeat", "kind", "base", "absent", "sites",
    )  # fmt: skip

    def __init__(self, type_name: str, kind: str = "module", origin: Origin | None = None):
        self.type_name = type_name
        self.kind = kind  # "layer" (a torch.nn table entry), "container", "user", "module"
        # The torch.nn class whose rules its state follows: "Linear", "Sequential", "Module".
        self.base = type_name.rsplit(".", 1)[-1] if type_name.startswith("torch.") else "Module"
        self.params: dict[str, TensorValue | None] = {}
        self.buffers: dict[str, TensorValue | None] = {}
        self.non_persistent: set[str] = set()
        self.children: dict[str, ModuleValue | None] = {}
        self.attrs: dict[str, Any] = {}
        self.attr_sources: dict[str, NameSource] = {}
        self.unknown: dict[str, str] = {}
        self.unknown_all: str | None = None
        self.unknown_extra: str | None = None
        self.origin = origin
        self.user_class: Any = None
        self.repeat: Repeat | None = None
        # Entries a flag argument left out (bias=False): name → that argument.
        self.absent: dict[str, ArgSource] = {}
        # Children made elsewhere (a helper's `return nn.Conv2d(...)`) → the file and statement
        # that attached them here (`self.conv1 = conv3x3(64, 64)`), for hovers on that line.
        self.sites: dict[str, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"ModuleValue({self.type_name})"

    # --- torch's Module.__setattr__ / register_* rules, statically -----------------------

    def has_entry(self, name: str) -> bool:
        return name in self.params or name in self.buffers or name in self.children

    def _forget(self, name: str, keep: str) -> None:
        for kind, table in (("param", self.params), ("buffer", self.buffers),
                            ("child", self.children), ("attr", self.attrs)):  # fmt: skip
            if kind != keep:
                table.pop(name, None)
        if keep != "buffer":
            self.non_persistent.discard(name)
        self.unknown.pop(name, None)

    def set_param(self, name: str, value: TensorValue | None) -> None:
        self._forget(name, "param")
        self.params[name] = value

    def set_buffer(self, name: str, value: TensorValue | None, persistent: bool = True) -> None:
        self._forget(name, "buffer")
        self.buffers[name] = value
        if persistent:
            self.non_persistent.discard(name)
        else:
            self.non_persistent.add(name)

    def set_child(self, name: str, value: ModuleValue | None) -> None:
        self._forget(name, "child")
        self.children[name] = value
        self.sites.pop(name, None)

    def note_site(self, name: str, file: Any, statement: Any) -> None:
        """Child `name` was attached by `statement` of `file` (a SourceFile): kept when that
        is not where the child was made."""
        child = self.children.get(name)
        origin = child.origin if child is not None else None
        if statement is None or (origin is not None and origin.file == file.path
                                 and origin.span.start_line == statement.lineno - 1):  # fmt: skip
            return
        self.sites[name] = (file, statement)

    def set_unknown(self, name: str, reason: str) -> None:
        self._forget(name, "none")
        self.unknown[name] = reason

    def assign(self, name: str, value: Any, source: NameSource | None = None) -> None:
        """`self.name = value`, as `nn.Module.__setattr__` files it."""
        if isinstance(value, TensorValue) and value.parameter:
            self.set_param(name, value)
        elif name in self.params and value is None:
            self.params[name] = None
        elif isinstance(value, ModuleValue):
            self.set_child(name, value)
        elif name in self.children and value is None:
            self.children[name] = None
        elif isinstance(value, TensorValue) and value.buffer_persistent is not None:
            self.set_buffer(name, value, value.buffer_persistent)
        elif name in self.buffers and (value is None or isinstance(value, TensorValue)):
            self.buffers[name] = value
        elif isinstance(value, Unknown) and value.maybe_module:
            self.set_unknown(name, value.reason)
        else:
            self.unknown.pop(name, None)
            self.attrs[name] = value
            if source is not None:
                self.attr_sources[name] = source
            else:
                self.attr_sources.pop(name, None)

    def lookup(self, name: str) -> Any:
        """`self.name` for an entry or plain attribute; KeyError when there is none."""
        if name in self.attrs:
            return self.attrs[name]
        for table in (self.params, self.buffers, self.children):
            if name in table:
                return table[name]
        if name in self.unknown:
            return Unknown(self.unknown[name])
        raise KeyError(name)

    def delete(self, name: str) -> None:
        self._forget(name, "none")

    def indexed_children(self) -> list[ModuleValue | None]:
        return list(self.children.values())


def deep_copy(module: ModuleValue, memo: dict[int, ModuleValue] | None = None) -> ModuleValue:
    """`copy.deepcopy` of a module being built: a new tree, shared submodules still shared.
    Tensor values are not changed once registered, and plain attributes are immutable values
    or lists the model does not change, so the copies share them."""
    memo = {} if memo is None else memo
    if id(module) in memo:
        return memo[id(module)]
    copy = ModuleValue.__new__(ModuleValue)
    memo[id(module)] = copy
    copy.type_name, copy.kind, copy.base, copy.origin = (
        module.type_name, module.kind, module.base, module.origin)
    copy.unknown_all, copy.unknown_extra = module.unknown_all, module.unknown_extra
    copy.user_class, copy.repeat = module.user_class, module.repeat
    copy.params = dict(module.params)
    copy.buffers = dict(module.buffers)
    copy.non_persistent = set(module.non_persistent)
    copy.children = {k: None if v is None else deep_copy(v, memo) for k, v in module.children.items()}
    copy.attrs = dict(module.attrs)  # plain values: modules assigned to attributes are children
    copy.attr_sources = dict(module.attr_sources)
    copy.unknown = dict(module.unknown)
    copy.absent = dict(module.absent)
    copy.sites = dict(module.sites)
    return copy

"""What a name holds at each point of a function, as far as the source says: the data flow that
hovers, diagnostics and actions follow to find *which* checkpoint a piece of code is about.

Values (`Value`):

- a `str`: a path (or any string) known statically (`"runs/a.pth"`, `ROOT / "best.pth"`);
- `Loaded(load, keys)`: what the `load`-th `torch.load` call of the file returned, or the entry
  `keys` inside it (`ckpt["state_dict"]`); `optional` marks keys `.get(k, ckpt)` may skip,
  `fallbacks` the keys tried instead (`if "model" in ckpt: ... elif "state_dict" in ckpt: ...`);
- `Built(callee, scope, line, stores)`: the object a call made (`net = SmallResNet()`); a model's
  weights come from the `load_state_dict` calls on it; `stores` are the lines of the statements
  that replaced a submodule of it since (`net.fc = nn.Linear(32, 5)`): another model from there;
- `Renamed(source, changes)`: a dict comprehension that renames or leaves
  out the keys of a `Loaded` dict, for the `load_state_dict` it reaches;
- `Param(function, name)`: a parameter of a function of this file, resolved after the walk from
  what the calls in the file pass (`resolve_params`);
- `UNCLEAR`: anything else: a value that depends on a branch, a loop variable, a computed dict.

`Flow` keeps one frame of names per function (names not found there are looked up in the
enclosing frames, the module's last) and joins the frames of both sides of an `if`, a loop that
may not run, a `try`: a name whose sides disagree becomes `UNCLEAR`, so nothing downstream is
linked to a file that may not be the one. Two loads of the same file with the same keys agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .facts import KeyChanges


@dataclass(frozen=True, slots=True)
class Loaded:
    """The result of `torch.load` call number `load` (ModuleFacts.torch_loads), or its entry
    `keys` (`("state_dict", "fc.weight")`); `optional` holds the indices of keys that may be
    missing, in which case the value is the container itself (`ckpt.get("state_dict", ckpt)`)."""

    load: int
    keys: tuple[str, ...] = ()
    optional: frozenset[int] = frozenset()
    # position → the keys tried in turn where `keys[position]` is missing, before `optional`
    # skips it (`ckpt["state_dict"] if "state_dict" in ckpt else ckpt["model"]`).
    fallbacks: tuple[tuple[int, tuple[str, ...]], ...] = ()

    def at(self, key: str, optional: bool = False) -> Loaded:
        more = self.optional | {len(self.keys)} if optional else self.optional
        return Loaded(self.load, (*self.keys, key), more, self.fallbacks)

    def choices(self, position: int) -> tuple[str, ...]:
        """The keys that may stand at `position`, in the order they are tried."""
        return (self.keys[position], *dict(self.fallbacks).get(position, ()))

    @property
    def chosen(self) -> bool:
        """Whether the file decides which entry this is (a key that may be skipped or replaced)."""
        return bool(self.optional or self.fallbacks)


@dataclass(frozen=True, slots=True)
class Built:
    """The object the call of `callee` assigned on `line` (0-based) of `scope` made, after the
    submodule stores on the (0-based) lines `stores` (`model.fc = nn.Linear(32, 5)`), seen
    through `wrappers` (outermost first, `WRAPPED_AS`' paths: `nn.DataParallel(model)` holds the
    same parameters, its state_dict's keys under `module.`; None: a wrapper not recognised, so
    its keys are not known). `copied`: (line, column) of the `copy.deepcopy` that made this
    object from that one (a new model of the same structure; loads into it are its own)."""

    callee: str
    scope: str
    line: int
    wrappers: tuple[str, ...] | None = ()
    copied: tuple[int, int] | None = None
    stores: tuple[int, ...] = ()

    @property
    def model(self) -> Built:
        """The object whose parameters these are, without the wrappers around it."""
        return self if self.wrappers == () else replace(self, wrappers=())

    @property
    def prefix(self) -> str | None:
        """What the wrappers put before the model's keys in the state_dict (None: not known)."""
        if self.wrappers is None:
            return None
        return "".join(WRAPPED_AS[w] + "." for w in self.wrappers)


# The wrappers whose state_dict is the wrapped model's under one attribute: torch path → that
# attribute (`DataParallel(m).module is m`, `torch.compile(m)._orig_mod is m`).
WRAPPED_AS = {
    "torch.nn.DataParallel": "module",
    "torch.nn.parallel.DataParallel": "module",
    "torch.nn.parallel.data_parallel.DataParallel": "module",
    "torch.nn.parallel.DistributedDataParallel": "module",
    "torch.nn.parallel.distributed.DistributedDataParallel": "module",
    "torch.compile": "_orig_mod",
}


@dataclass(frozen=True, slots=True)
class Renamed:
    """A dict comprehension over a loaded dict's items that strips or adds a key prefix or leaves
    keys out (`{k.removeprefix("module."): v for k, v in sd.items()}`; flow_values.key_renaming
    says which forms): a new dict, so later edits of either do not reach the other. Only
    `load_state_dict` follows it; to everything else it is as unknown as UNCLEAR."""

    source: Loaded
    changes: KeyChanges


@dataclass(frozen=True, slots=True)
class Param:
    """Parameter `name` of the file's function `function` (what callers pass decides)."""

    function: str
    name: str


class _Unclear:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCLEAR"


UNCLEAR = _Unclear()
Value = str | Loaded | Built | Renamed | Param | _Unclear
# Whether two loads (by index) read the same file.
SameFile = Callable[[int, int], bool]


def same_value(a: Value, b: Value, same_file: SameFile) -> bool:
    if a == b:
        return True
    if isinstance(a, Loaded) and isinstance(b, Loaded):
        return (a.keys == b.keys and a.optional == b.optional and a.fallbacks == b.fallbacks
                and same_file(a.load, b.load))
    return False


def key_choice(base: Loaded, key: str, otherwise: Value, same_file: SameFile) -> Loaded | None:
    """`base[key]` where the file has `key`, else `otherwise`: what a name holds after
    `if key in base:` took `base[key]` and the other way kept `base` or took another entry of
    it (itself chosen so: an `elif`); None for anything else."""
    position = len(base.keys)
    if same_value(otherwise, base, same_file):
        return base.at(key, optional=True)
    if not (isinstance(otherwise, Loaded) and len(otherwise.keys) == position + 1):
        return None
    # `otherwise` without its last key, to compare with `base`
    parent = Loaded(otherwise.load, otherwise.keys[:position], otherwise.optional - {position},
                    tuple(f for f in otherwise.fallbacks if f[0] != position))
    if not same_value(parent, base, same_file):
        return None
    alternatives = tuple(k for k in otherwise.choices(position) if k != key)
    optional = base.optional | ({position} if position in otherwise.optional else set())
    fallbacks = (*base.fallbacks, (position, alternatives)) if alternatives else base.fallbacks
    return Loaded(base.load, (*base.keys, key), frozenset(optional), fallbacks)


def join(a: Value | None, b: Value | None, same_file: SameFile) -> Value | None:
    """The value after two paths meet; a name bound on one path only keeps that path's value
    (on the other, using it would raise NameError). The same model wrapped on one path only
    (`if multi_gpu: model = nn.DataParallel(model)`) is that model, its keys not known."""
    if a is None:
        return b
    if b is None or same_value(a, b, same_file):
        return a
    if isinstance(a, Built) and isinstance(b, Built) and a.model == b.model:
        return replace(a, wrappers=None)
    return UNCLEAR


@dataclass
class Flow:
    """The frames of names of the functions being walked (module first)."""

    same_file: SameFile
    frames: list[dict[str, Value]] = field(default_factory=lambda: [{}])

    def get(self, name: str) -> Value | None:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        return None

    def set(self, name: str, value: Value) -> None:
        self.frames[-1][name] = value

    def enter(self, names: dict[str, Value]) -> None:
        self.frames.append(dict(names))

    def leave(self) -> None:
        self.frames.pop()

    def fork(self) -> dict[str, Value]:
        """A copy of the current frame, to walk one side of a branch from."""
        return dict(self.frames[-1])

    def restore(self, snapshot: dict[str, Value]) -> None:
        self.frames[-1] = dict(snapshot)

    def join_with(self, other: dict[str, Value]) -> dict[str, Value]:
        """Meet the current frame with `other` (the other side of a branch); returns the names
        whose value is now different from what the current side alone gave them."""
        current = self.frames[-1]
        changed: dict[str, Value] = {}
        for name in set(current) | set(other):
            merged = join(current.get(name), other.get(name), self.same_file)
            assert merged is not None
            if name not in current or not same_value(current[name], merged, self.same_file):
                changed[name] = merged
            current[name] = merged
        return changed


def resolve_params(value: Value, params: dict[Param, Value]) -> Value:
    """`value` with a parameter replaced by what the calls of its function pass (UNCLEAR when
    they disagree; the parameter itself when nothing in the file calls the function)."""
    if isinstance(value, Param):
        return params.get(value, value)
    return value

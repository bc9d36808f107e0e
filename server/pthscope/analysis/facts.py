"""What the analysis finds in a Python file, as plain dataclasses.

Positions are 0-based lines and characters counted in Unicode code points (Python `str`
indices); the LSP layer converts to UTF-16 if the client asks for that. Nothing here knows
about checkpoints' contents: `actions` joins these facts with a `Checkpoint`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Literal

from .flow import Loaded, Value

PathElement = str | int
PathRole = Literal["load", "save", "other"]
SaveKind = Literal["model", "state_dict", "dict", "other"]
OpKind = Literal["assign", "method", "loop", "helper", "replace"]

MODULE_SCOPE = "<module>"


@dataclass(frozen=True)
class Span:
    """A range: start inclusive, end exclusive, 0-based lines and characters."""

    start_line: int
    start_char: int
    end_line: int
    end_char: int

    def contains(self, line: int, char: int) -> bool:
        if line < self.start_line or line > self.end_line:
            return False
        if line == self.start_line and char < self.start_char:
            return False
        return not (line == self.end_line and char > self.end_char)

    def overlaps_lines(self, first: int, last: int) -> bool:
        return self.start_line <= last and first <= self.end_line


@dataclass
class CheckpointPath:
    """A string that names a checkpoint, with where it may live on disk (best guess first)."""

    text: str
    span: Span
    candidates: tuple[str, ...]
    role: PathRole = "other"
    # The model variable whose weights go to or come from this file, when the code says so.
    var: str | None = None


@dataclass
class Assignment:
    """`var = ...` in a scope; `callee` is the dotted name when the value is a call."""

    var: str
    scope: str
    line: int
    callee: str | None
    # What the name holds from here on (flow.py); None when not recorded.
    value: Value | None = None


@dataclass
class FlagOp:
    """A statement that sets `requires_grad` on (part of) a model variable.

    `value` is False for freezing, True for unfreezing, None when it depends (a condition or
    an expression). `loop` keeps the `for` node of a parameter loop so the effect per
    parameter name can be worked out later (`analysis.name_rules`).
    """

    var: str
    scope: str
    kind: OpKind
    module_path: tuple[PathElement, ...]
    value: bool | None
    stmt: Span
    sites: list[Span] = field(default_factory=list)
    loop: ast.For | None = None
    # What `var` holds at the statement (flow.py): the model whose parameters it sets.
    target: Value | None = None
    # For a call of a freezing helper: the helper's own statements on that parameter.
    inner: list[FlagOp] = field(default_factory=list)

    @property
    def may_freeze(self) -> bool:
        return self.value is not True


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """What a comprehension over a loaded dict's items does to its keys on the way to
    `load_state_dict` (flow_values.key_renaming), in the order it does it."""

    # Left out: `if k not in ("fc.weight", …)` and `del sd["fc.weight"]` before (the file's keys).
    drops: tuple[str, ...] = ()
    kept_prefix: str | None = None  # `if k.startswith("model.")`: only the keys under it are kept
    replaced: tuple[str, str] | None = None  # `k.replace("module.", "")`: every occurrence
    cut: int = 0  # `k[7:]`, `k[len("module."):]`: that many characters off every key
    # `k.removeprefix("module.")` → ("module.", ""); `"model." + k` → ("", "model.").
    renames: tuple[str, str] | None = None

    @property
    def renames_keys(self) -> bool:
        return self.replaced is not None or self.renames is not None or self.cut > 0

    def renamed(self, key: str) -> str:
        """The name `load_state_dict` sees for the file's key `key`."""
        if self.replaced is not None:
            key = key.replace(*self.replaced)
        key = key[self.cut:]
        if self.renames is not None:
            strip, add = self.renames
            key = add + key.removeprefix(strip)
        return key

    def model_key(self, key: str) -> str | None:
        """`renamed(key)`, or None when the comprehension leaves the key out."""
        if key in self.drops or (self.kept_prefix is not None and not key.startswith(self.kept_prefix)):
            return None
        return self.renamed(key)


@dataclass
class StateDictLoad:
    """`var.load_state_dict(...)`: what was loaded, from where, and where the statement ends."""

    var: str
    scope: str
    call: Span
    stmt: Span
    indent: str
    single_line_stmt: bool
    path: CheckpointPath | None = None
    # `ckpt["model"]` → source_var "ckpt", source_key "model".
    source_var: str | None = None
    source_key: str | None = None
    # What `var` holds (the model receiving the weights) and what is loaded into it (flow.py).
    target: Value | None = None
    source: Value | None = None
    # `load_state_dict` itself, the first argument, and `strict=` (True when absent; None
    # when not a constant); the span of the strict argument's value when written.
    method: Span | None = None
    arg: Span | None = None
    strict: bool | None = True
    strict_span: Span | None = None
    # How the argument (a comprehension over the loaded dict, here or bound to a name) and the
    # literal-key edits before it change the keys.
    changes: KeyChanges = KeyChanges()


@dataclass
class TorchLoad:
    """A `torch.load(...)` call."""

    scope: str
    call: Span
    func: Span
    stmt: Span
    has_weights_only: bool
    has_star_kwargs: bool
    # Where `, weights_only=True` goes: right after the last argument (None: no arguments).
    insert_at: tuple[int, int] | None
    path: CheckpointPath | None = None
    assigned_to: str | None = None
    # `weights_only=<constant>` as written (None: absent or not a constant) and its value's span.
    weights_only: bool | None = None
    weights_only_span: Span | None = None
    has_map_location: bool = False


@dataclass
class TorchSave:
    """A `torch.save(obj, f)` call and what kind of object it saves."""

    scope: str
    call: Span
    stmt: Span
    indent: str
    kind: SaveKind
    var: str | None
    obj_text: str
    rest_text: str
    path: CheckpointPath | None = None
    # Keys of a saved dict literal whose value is a {name: p.requires_grad ...} map.
    grad_map_keys: tuple[str, ...] = ()
    # What `var` holds (flow.py), and for a dict the key its state_dict is saved under.
    target: Value | None = None
    key: str | None = None


@dataclass
class AttrRef:
    """One segment of an attribute path rooted at a name: `model.layer1[0]` → ("layer1", 0)."""

    var: str
    path: tuple[PathElement, ...]
    span: Span
    # What `var` holds there (flow.py).
    target: Value | None = None


@dataclass
class KeyRef:
    """A string key read from what `torch.load` returned: `sd["fc.weight"]`, `ckpt.get("model")`
    (`value.keys` ends with `key`)."""

    key: str
    span: Span
    value: Loaded
    # Read with `.get`, or where the code tested for the key (`if "k" in x:`): a missing key
    # is not an error.
    get: bool = False
    # The expression as written: the name it starts from (None: a call, `torch.load(p)[...]`)
    # and how many of `value.keys` it reads itself (`state["x"]` reads one of ("state_dict", "x")).
    root: str | None = None
    depth: int = 1


@dataclass
class KeyString:
    """A string literal that looks like a parameter key or module name (`"fc.weight"`)."""

    text: str
    span: Span


@dataclass
class Statement:
    """A simple statement's extent, used to place inserted code."""

    scope: str
    span: Span
    indent: str


@dataclass
class Scope:
    """A function (or the module) and its line extent."""

    name: str
    first_line: int
    last_line: int
    params: tuple[str, ...] = ()


@dataclass
class ModuleFacts:
    """Everything the actions need to know about one Python file."""

    file_path: str
    lines: list[str]
    trailing_newline: bool = True
    ok: bool = True
    syntax_error: str | None = None
    paths: list[CheckpointPath] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    flag_ops: list[FlagOp] = field(default_factory=list)
    loads: list[StateDictLoad] = field(default_factory=list)
    torch_loads: list[TorchLoad] = field(default_factory=list)
    saves: list[TorchSave] = field(default_factory=list)
    attr_refs: list[AttrRef] = field(default_factory=list)
    key_refs: list[KeyRef] = field(default_factory=list)
    key_strings: list[KeyString] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    model_vars: set[str] = field(default_factory=set)
    # `self.<name>` attributes that hold an nn.Module (module_attributes.py; only looked for
    # when something saves one).
    module_attributes: set[str] = field(default_factory=set)
    # The state_dict each load_state_dict call's model would have (by index into `loads`),
    # derived from its class's source (analysis/load_models.py); absent when not known.
    expected: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)
    # A stamp of each of those (its keys, shapes and the places they come from): equal stamps,
    # equal checks against the same file, so a check can be kept from one text to the next.
    expected_stamps: dict[int, int] = field(default_factory=dict, repr=False, compare=False)
    # The parsed workspace files the derivation read, for the next analysis of the file.
    model_sources: Any = field(default=None, repr=False, compare=False)
    # Names bound to an optimizer (`optimizer = optim.SGD(...)`) and to epoch loops.
    optimizer_vars: set[str] = field(default_factory=set)
    epoch_vars: set[str] = field(default_factory=set)
    # Classes defined in this file whose __init__ freezes its own parameters.
    self_freezing_classes: set[str] = field(default_factory=set)
    # Calls that pass a model variable to a function this file does not define.
    opaque_passes: list[Assignment] = field(default_factory=list)
    # What a model holds after a store into it (`model.fc = nn.Linear(...)`: a Built with that
    # store; UNCLEAR for one not modelled), by the store's line (flow_stores.py).
    stored: list[Assignment] = field(default_factory=list)
    torch_imported: bool = False
    noqa: dict[int, frozenset[str] | None] = field(default_factory=dict)
    _by_name: dict[tuple[str, str], list[Assignment]] | None = field(
        default=None, repr=False, compare=False
    )
    _names: set[str] | None = field(default=None, repr=False, compare=False)
    # Answers derived from these facts, by their users' own keys (computed once per text).
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The parsed top-level chunks (source.Chunks), for the next analysis of the file.
    chunks: dict[tuple[int, str], list[ast.stmt]] = field(default_factory=dict, repr=False, compare=False)
    # Names each chunk binds (source.names_bound), kept like the chunks.
    chunk_names: dict[tuple[int, str], frozenset[str]] = field(default_factory=dict, repr=False, compare=False)

    def bound_names(self) -> frozenset[str]:
        """Every name the file binds anywhere."""
        return frozenset().union(*self.chunk_names.values())

    def top_level(self) -> list[ast.stmt]:
        """The file's top-level statements, in order."""
        return [statement for statements in self.chunks.values() for statement in statements]

    def assignments_to(self, var: str, scope: str) -> list[Assignment]:
        """Assignments to `var` in `scope`, in file order (indexed on first use)."""
        if self._by_name is None:
            self._by_name = {}
            for assignment in self.assignments:
                self._by_name.setdefault((assignment.var, assignment.scope), []).append(assignment)
        return self._by_name.get((var, scope), [])

    def assigned_names(self) -> set[str]:
        if self._names is None:
            self._names = {a.var for a in self.assignments}
        return self._names

    def checkpoint_paths(self) -> list[CheckpointPath]:
        """Every literal naming a checkpoint, in file order, with its candidate locations."""
        return list(self.paths)

    def suppressed(self, line: int, code: str) -> bool:
        """True when `# noqa` or `# noqa: <code>` is on that line."""
        if line not in self.noqa:
            return False
        codes = self.noqa[line]
        return codes is None or code in codes

    def scope_at(self, line: int) -> Scope:
        """The innermost function containing the line, or the module scope."""
        best = self.scopes[0] if self.scopes else Scope(MODULE_SCOPE, 0, len(self.lines))
        for scope in self.scopes[1:]:
            if scope.first_line <= line <= scope.last_line and scope.first_line >= best.first_line:
                best = scope
        return best

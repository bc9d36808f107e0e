"""Per-checkpoint lookups built once: key → tensor, module prefix → counts, top-level modules.

Keys are looked up the way code names them: `fc.weight` finds `module.fc.weight` (saved from
DataParallel), `model.fc.weight` inside a training dict, or `state_dict.fc.weight` in a
Lightning file. `lookup_for` caches one `CheckpointLookup` per checkpoint object, so requests
never walk the tensor list. Accepts a `Checkpoint` or its `to_json()` dict.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..reader.model import Checkpoint

# Containers that hold a model's state inside a bigger dict, most likely first.
_MODEL_CONTAINERS = (
    "state_dict", "model_state_dict", "model", "model_state", "net", "network", "module",
    "ema", "weights", "params",
)  # fmt: skip
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked")
_CACHE_SIZE = 8

CheckpointLike = Checkpoint | dict[str, Any]


@dataclass
class TensorRecord:
    key: str
    rel_key: str | None
    shape: list[int]
    dtype: str
    requires_grad: bool
    kind: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_parameter(self) -> bool:
        if self.kind == "parameter":
            return True
        return self.kind == "tensor" and not self.key.endswith(_BUFFER_NAMES)

    @property
    def grad_state(self) -> str:
        if self.requires_grad:
            return "trainable"
        return "frozen" if self.kind == "parameter" else "not stored"


@dataclass
class Counts:
    """Parameter elements under a module prefix, by requires_grad state, and tensors."""

    total: int = 0
    trainable: int = 0
    frozen: int = 0
    unknown: int = 0
    tensors: int = 0

    def add(self, record: TensorRecord) -> None:
        self.tensors += 1
        if not record.is_parameter:
            return
        n = record.numel
        self.total += n
        state = record.grad_state
        if state == "trainable":
            self.trainable += n
        elif state == "frozen":
            self.frozen += n
        else:
            self.unknown += n


@dataclass
class CheckpointLookup:
    """What hovers, diagnostics and actions ask of one checkpoint, precomputed."""

    file: str
    format: str
    exact: dict[str, TensorRecord] = field(default_factory=dict)
    relative: dict[str, TensorRecord] = field(default_factory=dict)
    prefixes: dict[str, Counts] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    top_modules: list[str] = field(default_factory=list)
    parameters: list[TensorRecord] = field(default_factory=list)
    whole_model: bool = False
    stores_flags: bool = False
    risky_globals: list[tuple[str, Any]] = field(default_factory=list)
    # What a weights_only=False load would do with a global, when the reader says (`effect`).
    global_effects: dict[str, str] = field(default_factory=dict)
    # Why (part of) the file could not be read, as the reader said.
    errors: list[str] = field(default_factory=list)
    tensor_count: int = 0
    # Results of evaluating parameter loops, keyed by the loop's source text.
    loop_cache: OrderedDict[str, Any] = field(default_factory=OrderedDict)

    @property
    def model(self) -> Counts:
        return self.prefixes.get("", Counts())

    @property
    def root_class(self) -> str | None:
        return self.classes.get("")

    def tensor(self, key: str) -> TensorRecord | None:
        """The tensor code calls `key`, trying the wrapper-free spellings too."""
        for candidate in _spellings(key):
            found = self.relative.get(candidate) or self.exact.get(candidate)
            if found is not None:
                return found
        return None

    def module(self, key: str) -> tuple[str, Counts] | None:
        """(relative prefix, counts) for a module key, trying the wrapper-free spellings too."""
        for candidate in _spellings(key):
            if candidate in self.prefixes and candidate:
                return candidate, self.prefixes[candidate]
        return None

    def frozen_names(self) -> tuple[list[str], list[str]]:
        """(trainable, frozen) relative parameter names, when the file stores the flags."""
        trainable = [p.rel_key or p.key for p in self.parameters if p.requires_grad]
        frozen = [p.rel_key or p.key for p in self.parameters if not p.requires_grad]
        return trainable, frozen


def _spellings(key: str) -> list[str]:
    out = [key]
    while True:
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                out.append(key)
                break
        else:
            return out


_cache: OrderedDict[int, tuple[object, CheckpointLookup]] = OrderedDict()
# The server builds lookups of freshly read files in a thread; requests use them on its loop.
_cache_lock = threading.Lock()


def lookup_for(checkpoint: CheckpointLike) -> CheckpointLookup:
    """The cached lookup for this checkpoint object (built on first use)."""
    with _cache_lock:
        entry = _cache.get(id(checkpoint))
        if entry is not None and entry[0] is checkpoint:
            _cache.move_to_end(id(checkpoint))
            return entry[1]
    built = build_lookup(checkpoint)
    with _cache_lock:
        _cache[id(checkpoint)] = (checkpoint, built)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return built


def build_lookup(checkpoint: CheckpointLike) -> CheckpointLookup:
    """Walk the tensors and modules once and build every table."""
    if isinstance(checkpoint, Checkpoint):
        tensors = [(t.path, t.shape, t.dtype, t.requires_grad, t.kind) for t in checkpoint.tensors]
        modules = [(m.path, m.class_name) for m in checkpoint.modules]
        risky: list[tuple[str, Any]] = [
            (g.name, g.risk) for g in checkpoint.globals if g.risk != "safe"
        ]
        lookup = CheckpointLookup(checkpoint.file, checkpoint.format)
        lookup.errors = [e.message for e in checkpoint.errors]
        effects = [(g.name, getattr(g, "effect", None)) for g in checkpoint.globals]
    else:
        tensors = [
            (t["path"], t["shape"], t["dtype"], t["requires_grad"], t["kind"])
            for t in checkpoint.get("tensors", [])
        ]
        modules = [(m["path"], m["class"]) for m in checkpoint.get("modules", [])]
        risky = [
            (g["name"], g["risk"]) for g in checkpoint.get("globals", []) if g["risk"] != "safe"
        ]
        lookup = CheckpointLookup(checkpoint.get("file", ""), checkpoint.get("format", ""))
        lookup.errors = [str(e.get("message", "")) for e in checkpoint.get("errors", [])]
        effects = [(g["name"], g.get("effect")) for g in checkpoint.get("globals", [])]
    lookup.risky_globals = risky
    lookup.global_effects = {name: effect for name, effect in effects if isinstance(effect, str)}
    lookup.tensor_count = len(tensors)
    lookup.whole_model = any(not path for path, _ in modules)
    group = _model_group([path for path, *_ in tensors], lookup.whole_model)
    top: dict[str, None] = {}
    for path, shape, dtype, requires_grad, kind in tensors:
        key = ".".join(map(str, path))
        rel = _relative_key(path, group)
        record = TensorRecord(key, rel, list(shape), dtype, bool(requires_grad), kind)
        lookup.exact.setdefault(key, record)
        if rel is None:
            continue
        lookup.relative.setdefault(rel, record)
        if record.is_parameter:
            lookup.parameters.append(record)
            lookup.stores_flags |= kind == "parameter"
        _add_prefixes(lookup.prefixes, rel, record)
        if "." in rel:
            top.setdefault(rel.split(".", 1)[0], None)
    lookup.top_modules = list(top)
    for path, class_name in modules:
        rel = _relative_key(path, group) if path else ""
        if rel is not None:
            lookup.classes.setdefault(rel, class_name)
    return lookup


def _model_group(paths: list[list[Any]], whole_model: bool) -> str | None:
    """The top-level key holding the model's tensors in a dict checkpoint (None: the root)."""
    if whole_model or all(len(p) == 1 for p in paths):
        return None
    sizes: dict[str, int] = {}
    for path in paths:
        if len(path) > 1:
            sizes[str(path[0])] = sizes.get(str(path[0]), 0) + 1
    for name in _MODEL_CONTAINERS:
        if name in sizes:
            return name
    return max(sizes, key=lambda k: sizes[k]) if sizes else None


def _relative_key(path: list[Any], group: str | None) -> str | None:
    """The key as the model itself names it, or None for tensors outside the model."""
    if group is not None:
        if len(path) < 2 or str(path[0]) != group:
            return None
        path = path[1:]
    key = ".".join(map(str, path))
    for prefix in _WRAPPER_PREFIXES:
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _add_prefixes(prefixes: dict[str, Counts], rel: str, record: TensorRecord) -> None:
    counts = prefixes.get("")
    if counts is None:
        counts = prefixes[""] = Counts()
    counts.add(record)
    end = rel.find(".")
    while end != -1:
        prefix = rel[:end]
        counts = prefixes.get(prefix)
        if counts is None:
            counts = prefixes[prefix] = Counts()
        counts.add(record)
        end = rel.find(".", end + 1)

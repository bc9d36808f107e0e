"""What code intelligence needs of a checkpoint, compact and typed: `ModelView`.

The worker builds it from the reader's model (`model_view(checkpoint)`) and sends it to the
language server as JSON (`to_json` / `ModelView.from_json`), which keeps one per linked
checkpoint so that hovers and code actions answer from memory. Nothing here decides anything
anew: roles and model-relative names come from roles.py, counts are tallies (counts.py) — the
same numbers the CLI, the page and the tree show.

Code names a tensor the way its model does: `fc.weight` finds `module.fc.weight` (DataParallel)
or `model.fc.weight` in a training dict; `tensor(key)` and `module(key)` try the key as given
and without wrapper prefixes. When a file holds several models, a name that two of them use
finds the first. EMA copies are left out (code means the model, not its average).

Code also reads a checkpoint by its keys (`ckpt["state_dict"]["fc.weight"]`): `entry(key)` says
what the dotted key names — a tensor of the model (by its key in the file), or one of `entries`,
the rest of the saved object outside modules (containers, plain values, other tensors), a few
levels deep; an entry's `listed` says whether every child of a container is known, so that a key
it lacks is really not in the file.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .counts import Role, RoleTableJson, Tally
from .model import Checkpoint, GradState, Node, NodeKind, Risk, TensorKind
from .roles import model_name, model_of, strip_wrappers


@dataclass(slots=True)
class ModelTensor:
    """A tensor of the file's model, named as the model names it."""

    name: str
    key: str  # in the file
    shape: list[int]
    dtype: str
    requires_grad: bool
    kind: TensorKind
    role: Role
    grad_state: GradState

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# How much of the saved object outside modules `entries` lists.
_ENTRY_DEPTH = 4
_ENTRY_CHILDREN = 256  # of one container, besides the model's tensors
_ENTRY_LIMIT = 5_000


@dataclass(slots=True)
class Entry:
    """A node of the saved object that is not a tensor of the model."""

    kind: NodeKind
    type: str  # the saved type ("dict", "int"); a tensor's dtype and shape
    value: str  # a plain value's short repr, else ""
    listed: bool  # every child is in `entries` or is a tensor of the model


@dataclass
class ModelView:
    file: str
    format: str
    tensor_count: int  # every tensor of the file
    counts: Tally  # of every tensor of the file, by role (summary.roles)
    errors: list[str]
    risky_globals: list[tuple[str, Risk]]
    # What a weights_only=False load would do with a global, when the reader says (`effect`).
    global_effects: dict[str, str]
    whole_model: bool  # the file's root is a pickled nn.Module
    stores_flags: bool  # the model's parameters are nn.Parameters, with requires_grad
    classes: dict[str, str]  # model-relative module name → saved class ("": the root model)
    tensors: list[ModelTensor]  # the model's tensors, in file order
    tied: dict[int, int]  # among `tensors`, as Checkpoint.tied_views
    error_kinds: list[str] = field(default_factory=list)  # of `errors`, as the reader names them
    locations: dict[str, int] = field(default_factory=dict)  # tensors by saved device ("cuda:0")
    entries: dict[str, Entry] = field(default_factory=dict)  # by dotted key ("" the root)
    # The formats of the files a set (a folder, an index, a DCP .metadata) is made of; [] for one file.
    part_formats: list[str] = field(default_factory=list)
    weights_only_refusal: str = ""  # Checkpoint.weights_only_refusal
    torch_load_refuses: str = ""  # Checkpoint.torch_load_refuses
    # Dangerous globals only pickles torch.load does not read name (GlobalRef.unread; not in
    # `risky_globals`): the file is crafted, but a load does not run them.
    unread_dangerous: list[str] = field(default_factory=list)
    # Built from the fields above:
    by_name: dict[str, ModelTensor] = field(default_factory=dict, repr=False)
    by_key: dict[str, ModelTensor] = field(default_factory=dict, repr=False)
    prefixes: dict[str, Tally] = field(default_factory=dict, repr=False)
    top_modules: list[str] = field(default_factory=list, repr=False)
    # Answers callers derive from this view (code_intel's loop effects), by their own keys.
    memo: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        top: dict[str, None] = {}
        by_name, by_key, prefixes, tied = self.by_name, self.by_key, self.prefixes, self.tied
        for index, tensor in enumerate(self.tensors):
            name = tensor.name
            by_name.setdefault(name, tensor)
            by_name.setdefault(tensor.key, tensor)
            by_key.setdefault(tensor.key, tensor)
            end = -1
            while True:  # "" and every dotted prefix of the name
                prefix = name[:end] if end >= 0 else ""
                tally = prefixes.get(prefix)
                if tally is None:
                    tally = prefixes[prefix] = Tally()
                tally.add(tensor, index, tied)
                end = name.find(".", end + 1)
                if end == -1:
                    break
            if "." in name:
                top.setdefault(name.split(".", 1)[0], None)
        self.top_modules = list(top)

    @property
    def model(self) -> Tally:
        """Counts over the whole model (all its tensors)."""
        return self.prefixes.get("") or Tally()

    @property
    def root_class(self) -> str | None:
        return self.classes.get("")

    @property
    def parameters(self) -> list[ModelTensor]:
        return [t for t in self.tensors if t.role == "parameter"]

    def tensor(self, key: str) -> ModelTensor | None:
        """The tensor code calls `key`, also without wrapper prefixes."""
        for candidate in _spellings(key):
            found = self.by_name.get(candidate)
            if found is not None:
                return found
        return None

    def module(self, key: str) -> tuple[str, Tally] | None:
        """(model-relative name, counts) of the module code calls `key`."""
        for candidate in _spellings(key):
            if candidate and candidate in self.prefixes:
                return candidate, self.prefixes[candidate]
        return None

    def entry(self, key: str) -> ModelTensor | Entry | None:
        """What the dotted key (of the file, not model-relative) names, if it is known."""
        return self.by_key.get(key) or self.entries.get(key)

    def children_keys(self, key: str) -> list[str]:
        """Keys known under the container `key` (tensors of the model and entries)."""
        start = key + "." if key else ""
        found = [k for k in self.entries if k.startswith(start) and k != key]
        found += [k for k in self.by_key if k.startswith(start)]
        return found

    def frozen_names(self) -> tuple[list[str], list[str]]:
        """(trainable, frozen) parameter names, when the file stores the flags."""
        parameters = self.parameters
        return ([p.name for p in parameters if p.requires_grad],
                [p.name for p in parameters if not p.requires_grad])

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "format": self.format, "tensor_count": self.tensor_count,
            "counts": self.counts.to_json(), "errors": self.errors,
            "risky_globals": [list(g) for g in self.risky_globals], "global_effects": self.global_effects,
            "whole_model": self.whole_model, "stores_flags": self.stores_flags, "classes": self.classes,
            "tensors": [[t.name, t.key, t.shape, t.dtype, t.requires_grad, t.kind, t.role, t.grad_state]
                        for t in self.tensors],
            "tied": [[i, first] for i, first in self.tied.items()],
            "error_kinds": self.error_kinds, "locations": self.locations,
            "entries": {k: [e.kind, e.type, e.value, e.listed] for k, e in self.entries.items()},
            "part_formats": self.part_formats, "weights_only_refusal": self.weights_only_refusal,
            "torch_load_refuses": self.torch_load_refuses, "unread_dangerous": self.unread_dangerous,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelView:
        counts: RoleTableJson = data["counts"]
        return cls(
            file=data["file"], format=data["format"], tensor_count=data["tensor_count"],
            counts=Tally.from_json(counts), errors=list(data["errors"]),
            risky_globals=[(name, risk) for name, risk in data["risky_globals"]],
            global_effects=dict(data["global_effects"]),
            whole_model=data["whole_model"], stores_flags=data["stores_flags"], classes=dict(data["classes"]),
            tensors=[ModelTensor(*row) for row in data["tensors"]],
            tied={i: first for i, first in data["tied"]},
            error_kinds=list(data.get("error_kinds", [])), locations=dict(data.get("locations", {})),
            entries={k: Entry(*row) for k, row in data.get("entries", {}).items()},
            part_formats=list(data.get("part_formats", [])),
            weights_only_refusal=data.get("weights_only_refusal", ""),
            torch_load_refuses=data.get("torch_load_refuses", ""),
            unread_dangerous=list(data.get("unread_dangerous", [])),
        )


def model_view(checkpoint: Checkpoint) -> ModelView:
    """The view of a checkpoint the reader has given its roles."""
    models = checkpoint.models
    tensors: list[ModelTensor] = []
    positions: dict[int, int] = {}  # file's tensor index → index in the view
    for index, t in enumerate(checkpoint.tensors):
        model = model_of(models, t.path)
        if model is None or model.ema:
            continue
        positions[index] = len(tensors)
        tensors.append(ModelTensor(model_name(model, t.path), t.key, t.shape, t.dtype, t.requires_grad,
                                   t.kind, t.role, t.grad_state))
    tied = {positions[i]: positions[first] for i, first in checkpoint.tied_views.items()
            if i in positions and first in positions}
    locations: dict[str, int] = {}
    for t in checkpoint.tensors:
        locations[t.location] = locations.get(t.location, 0) + 1
    classes: dict[str, str] = {}
    for module in checkpoint.modules:
        model = model_of(models, module.path)
        if model is not None and not model.ema:
            classes.setdefault(model_name(model, module.path), module.class_name)
    return ModelView(
        file=checkpoint.file, format=checkpoint.format, tensor_count=len(checkpoint.tensors),
        counts=checkpoint.tally(), errors=[e.message for e in checkpoint.errors],
        risky_globals=[(g.name, g.risk) for g in checkpoint.globals if g.risk != "safe" and not g.unread],
        unread_dangerous=[g.name for g in checkpoint.globals if g.risk == "dangerous" and g.unread],
        global_effects={g.name: g.effect for g in checkpoint.globals if g.effect},
        whole_model=any(m.saved_as == "module" and not m.path for m in models),
        stores_flags=any(t.kind == "parameter" for t in tensors),
        classes=classes, tensors=tensors, tied=tied,
        error_kinds=[e.kind for e in checkpoint.errors], locations=locations,
        entries=_entries(checkpoint, set(positions)),
        part_formats=[part.format for part in checkpoint.parts],
        weights_only_refusal=checkpoint.weights_only_refusal,
        torch_load_refuses=checkpoint.torch_load_refuses,
    )


def _entries(checkpoint: Checkpoint, in_view: set[int]) -> dict[str, Entry]:
    """The saved object outside modules and the model's tensors, a few levels deep."""
    found: dict[str, Entry] = {}
    if checkpoint.root is None:
        return found
    stack: list[tuple[Node, int]] = [(checkpoint.root, 0)]
    while stack and len(found) < _ENTRY_LIMIT:
        node, depth = stack.pop()
        if node.kind == "tensor":
            t = checkpoint.tensors[node.tensor] if node.tensor is not None else None
            shape = f"{t.dtype}[{', '.join(map(str, t.shape))}]" if t else node.type
            found[node.key] = Entry("tensor", shape, "", True)
            continue
        others = [c for c in node.children if c.tensor is None or c.tensor not in in_view]
        listed = node.kind != "module" and depth < _ENTRY_DEPTH and len(others) <= _ENTRY_CHILDREN
        found[node.key] = Entry(node.kind, node.type, node.value or "", listed)
        if listed:
            stack.extend((child, depth + 1) for child in reversed(others))
    if stack:  # cut short: no container is known to be complete
        for entry in found.values():
            entry.listed = entry.kind == "tensor"
    return found


def _spellings(key: str) -> list[str]:
    stripped = strip_wrappers(key)
    return [key] if stripped == key else [key, stripped]

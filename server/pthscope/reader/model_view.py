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
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from .counts import Role, RoleTableJson, Tally
from .model import Checkpoint, GradState, Risk, TensorKind
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
    # Built from the fields above:
    by_name: dict[str, ModelTensor] = field(default_factory=dict, repr=False)
    prefixes: dict[str, Tally] = field(default_factory=dict, repr=False)
    top_modules: list[str] = field(default_factory=list, repr=False)
    # Answers callers derive from this view (code_intel's loop effects), by their own keys.
    memo: OrderedDict[str, Any] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        top: dict[str, None] = {}
        by_name, prefixes, tied = self.by_name, self.prefixes, self.tied
        for index, tensor in enumerate(self.tensors):
            name = tensor.name
            by_name.setdefault(name, tensor)
            by_name.setdefault(tensor.key, tensor)
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
    classes: dict[str, str] = {}
    for module in checkpoint.modules:
        model = model_of(models, module.path)
        if model is not None and not model.ema:
            classes.setdefault(model_name(model, module.path), module.class_name)
    return ModelView(
        file=checkpoint.file, format=checkpoint.format, tensor_count=len(checkpoint.tensors),
        counts=checkpoint.tally(), errors=[e.message for e in checkpoint.errors],
        risky_globals=[(g.name, g.risk) for g in checkpoint.globals if g.risk != "safe"],
        global_effects={g.name: g.effect for g in checkpoint.globals if g.effect},
        whole_model=any(m.saved_as == "module" and not m.path for m in models),
        stores_flags=any(t.kind == "parameter" for t in tensors),
        classes=classes, tensors=tensors, tied=tied,
    )


def _spellings(key: str) -> list[str]:
    stripped = strip_wrappers(key)
    return [key] if stripped == key else [key, stripped]

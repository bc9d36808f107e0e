"""What `torch.load` would do with a linked checkpoint: the one rule PTH002, its fixes and the
path hover follow.

It comes from the reader's classification of every global the file's pickles name (`risk`, and
the `effect` sentence when the reader gives one) and from whether the file could be read:

- `runs_code`: some global is dangerous; a `weights_only=False` load runs code the file chose.
  Nothing may suggest `weights_only=False` (nor re-saving through it).
- `unchecked`: the file could not be read, so nothing is known; treated like `runs_code` for
  fixes (only `weights_only=True`, which refuses what it does not know). `unloadable`: it was
  read, but torch.load fails on it (before unpickling anything, its globals then run nothing).
- `refused`: nothing is dangerous, but torch's weights_only unpickler cannot run the pickle's
  opcodes (`torch.save(..., pickle_protocol=4)`'s FRAME, say: reader/pickle_opcodes.py), so
  weights_only=True refuses the file whatever it names, safe_globals or not; weights_only=False
  loads it, importing its `classes` if it has any.
- `classes`: the only globals outside torch's `weights_only` allow-list are classes to import
  and rebuild; `torch.serialization.safe_globals([...])` with those classes loads it with
  `weights_only=True`.
- `safe`: `weights_only=True` loads it as it is (a safetensors file at a `.safetensors` path:
  torch.load reads it with safetensors, weights_only aside).
- `other_loader`: torch.load's weights_only does not govern the file (a TorchScript archive,
  which torch.load hands to torch.jit.load and weights_only=True refuses; a torch < 0.4 tar
  checkpoint, which weights_only=True refuses; a plain pickle or a DCP folder, which torch.load
  cannot read; a safetensors file whose name does not end in `.safetensors`, which torch.load
  unpickles and fails on; a set of files, a folder or an index of shards):
  the verdict says what it is and what loads it, and offers no weights_only or safe_globals fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from ..analysis.facts import TorchLoad
from ..reader.extensions import HOW_TO_LOAD
from ..reader.model_view import ModelView
from ..reader.torch_route import torch_hands_to_safetensors
from .linking import Checkpoints, checkpoint_for_path

Level = Literal["runs_code", "unchecked", "refused", "classes", "safe", "other_loader"]
# What such a file is; how to load it is the reader's advice (reader/extensions.py HOW_TO_LOAD).
_NOT_FOR_TORCH_LOAD = {
    "torchscript": "a TorchScript archive, which torch.load hands to torch.jit.load (weights_only=True refuses it)",
    "torch-tar": "a tar checkpoint of torch < 0.4, which weights_only=True refuses",
    "pickle": "a plain pickle, not a torch.save file",
    # A folder fails; its .metadata is a plain pickle (weights_only=True refuses it, False runs it, then
    # fails); a .distcp file is chunks side by side, of which torch.load reads the first at best.
    "torch-distributed": "a torch.distributed.checkpoint (DCP) folder or a file of one, which torch.load "
                         "cannot read as a checkpoint",
}
# torch.load (2.13) reads a path ending in `.safetensors` with safetensors.torch.load_file
# (torch/serialization.py); any other name it unpickles, which fails.
_SAFETENSORS_UNDER_ANOTHER_NAME = ("a safetensors file under another name, which torch.load cannot read (it hands a "
                                   "path to safetensors only when the name ends in .safetensors)")
# Of those, the ones torch.load(weights_only=False) does load.
LOADS_WITH_WEIGHTS_ONLY_FALSE = frozenset({"torchscript", "torch-tar"})
_NAMES_IN_HEADLINE = 3


@dataclass(frozen=True)
class Verdict:
    level: Level
    dangerous: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    # name → the reader's sentence on what a weights_only=False load would do with it.
    effects: dict[str, str] = field(default_factory=dict)
    # Why the file could not be checked (the reader's first error), for `unchecked`; why
    # weights_only=True refuses it, for `refused`.
    problem: str | None = None
    safetensors: bool = False
    # For `other_loader`: what the file is, and how to load it.
    what: str = ""
    how_to_load: str = ""
    of_files: bool = False  # `other_loader` of a set: its dangerous globals are in files it is made of
    unloadable: bool = False  # `unchecked` of a file pthscope read whole, which torch.load cannot load
    # Dangerous globals of pickles in the file that torch.load does not read (a crafted archive):
    # they change no verdict, the headline names them.
    crafted: tuple[str, ...] = ()

    @property
    def allows_weights_only_false(self) -> bool:
        """Whether a fix may ever write `weights_only=False` for this file (which only a file
        that needs its classes does)."""
        return self.level in ("classes", "refused")

    def headline(self, name: Callable[[str], str]) -> str:
        """One line saying what a load would do; `name` formats each global's name (hover.py
        passes a Markdown code span)."""
        verdict = self._headline(name)
        if not self.crafted:
            return verdict
        return (f"⚠ Crafted: a pickle in the file that torch.load does not read names {_names(self.crafted, name)} "
                f"(a Python unpickler would run them) · {verdict.removeprefix('⚠ ')}")

    def _headline(self, name: Callable[[str], str]) -> str:
        if self.level == "other_loader":
            return f"⚠ Not a torch.load checkpoint: {self.what}. Load it with {self.how_to_load}"
        if self.level == "runs_code":
            return f"⚠ Would run code if loaded with weights_only=False: {_names(self.dangerous, name)}"
        if self.level == "unchecked" and self.unloadable and self.dangerous:
            return (f"⚠ Crafted: torch.load refuses it before unpickling, but a Python unpickler would run "
                    f"{_names(self.dangerous, name)}")
        if self.level == "unchecked" and self.unloadable:
            return "⚠ torch.load fails on this file, whatever weights_only says (see below)"
        if self.level == "unchecked":
            return "⚠ Not checked: pthscope could not read this file, so what a load would run is unknown"
        if self.level == "refused":
            return ("Needs weights_only=False: torch's weights_only unpickler cannot read its pickle; "
                    + (f"it imports {_classes(self.classes)}" if self.classes else "nothing it names runs code"))
        if self.level == "classes":
            return f"Needs weights_only=False or safe_globals: imports {_classes(self.classes)}"
        if self.safetensors:
            return ("✓ Safe: a safetensors file holds tensors only; nothing in it runs (torch.load reads it with "
                    "the safetensors package, whatever weights_only says)")
        return "✓ Safe to load with weights_only=True"


def verdict_for(lookup: ModelView) -> Verdict:
    verdict = _verdict_for(lookup)
    return replace(verdict, crafted=tuple(lookup.unread_dangerous)) if lookup.unread_dangerous else verdict


def _verdict_for(lookup: ModelView) -> Verdict:
    dangerous = tuple(dict.fromkeys(n for n, risk in lookup.risky_globals if risk == "dangerous"))
    classes = tuple(dict.fromkeys(n for n, risk in lookup.risky_globals if risk == "unknown"))
    effects = dict(lookup.global_effects)
    if lookup.part_formats and lookup.format != "torch-distributed":  # torch.load(folder) runs nothing
        what_set, how = _set_loaders(lookup)
        return Verdict("other_loader", dangerous, classes, effects, what=what_set, how_to_load=how, of_files=True)
    if lookup.torch_load_refuses:  # refused before unpickling: what its pickles name never runs
        return Verdict("unchecked", dangerous, classes, effects, lookup.torch_load_refuses, unloadable=True)
    if lookup.format == "safetensors" and not torch_hands_to_safetensors(lookup.file) and not dangerous:
        # torch.load hands a path to safetensors only by its name; this one it unpickles, and fails
        # (unless the file was built to be a pickle too: then it runs what that names)
        return Verdict("other_loader", what=_SAFETENSORS_UNDER_ANOTHER_NAME, how_to_load=HOW_TO_LOAD["safetensors"])
    what = _NOT_FOR_TORCH_LOAD.get(lookup.format)
    # torch.jit.load refuses a dangerous global (only a crafted archive has one); the others run it.
    if what is not None and not (dangerous and lookup.format != "torchscript"):
        return Verdict("other_loader", dangerous, classes, effects, what=what, how_to_load=HOW_TO_LOAD[lookup.format])
    if dangerous:
        return Verdict("runs_code", dangerous, classes, effects)
    if lookup.errors:
        unloadable = all(kind == "unloadable" for kind in lookup.error_kinds)
        return Verdict("unchecked", (), classes, effects, lookup.errors[0], unloadable=unloadable)
    if lookup.weights_only_refusal:
        return Verdict("refused", (), classes, effects, lookup.weights_only_refusal)
    if classes:
        return Verdict("classes", (), classes, effects)
    return Verdict("safe", safetensors=lookup.format == "safetensors")


def _set_loaders(lookup: ModelView) -> tuple[str, str]:
    """What a set of files is to torch.load (a folder: IsADirectoryError; an index: JSON, "invalid
    load key"), and how its files load."""
    count = len(lookup.part_formats)
    loaders = " or ".join(dict.fromkeys(HOW_TO_LOAD.get(f, "its own reader") for f in lookup.part_formats))
    if count == 1:
        return "a folder, which torch.load cannot read", f"{loaders} of the file in it"
    files = f"{count} checkpoint files"
    what = (f"an index of {files} (JSON), which torch.load cannot read" if lookup.file.endswith(".json")
            else f"a folder of {files}, which torch.load cannot read as one")
    if lookup.format == "torch-ranks":
        return what, f"{loaders} of each rank's own file, in its rank"
    return what, (f"{loaders} of each file, merging the dicts (or the library that wrote the set, e.g. "
                  "transformers' `from_pretrained(folder)`)")


def linked_verdict(
    load: TorchLoad, checkpoints: Checkpoints
) -> tuple[ModelView, Verdict] | None:
    """The checkpoint a `torch.load` call reads, if it is linked, and its verdict."""
    checkpoint = checkpoint_for_path(load.path, checkpoints) if load.path else None
    if checkpoint is None:
        return None
    return checkpoint, verdict_for(checkpoint)


def _classes(classes: tuple[str, ...]) -> str:
    return f"{len(classes)} class{'' if len(classes) == 1 else 'es'}"


def _names(names: tuple[str, ...], name: Callable[[str], str]) -> str:
    shown = ", ".join(name(n) for n in names[:_NAMES_IN_HEADLINE])
    extra = len(names) - _NAMES_IN_HEADLINE
    return f"{shown} (+{extra} more)" if extra > 0 else shown

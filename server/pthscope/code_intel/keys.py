"""Keys code reads from a loaded checkpoint (`sd["fc.weight"]`, `ckpt["state_dict"]`): what the
file holds there, or that it holds nothing there and which of its keys come closest.

One rule for the hover and the missing-key diagnostic (PTH006): a key is *missing* only when the
container it is read from is a dict whose children the view lists completely
(`reader.model_view.Entry.listed`); a key under anything else (a module, a tensor, a container
cut short) is simply not known.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..analysis.facts import KeyRef, ModuleFacts
from ..reader.model_view import Entry, ModelTensor, ModelView
from .linking import Checkpoints, loaded_entry

_CLOSEST = 3
_CANDIDATES = 5_000
_DICT_KINDS = ("dict", "group")


@dataclass
class KeyLookup:
    view: ModelView
    keys: tuple[str, ...]  # as the file has them (absent `.get(k, x)` keys left out)
    found: ModelTensor | Entry | None
    # The key read is a `.get(k, x)` one the file does not have: `x` is used instead.
    skipped: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.keys)

    @property
    def parent(self) -> str:
        return ".".join(self.keys[:-1])

    @property
    def missing(self) -> bool:
        """The file really has no such key."""
        if self.found is not None or self.skipped or not self.keys:
            return False
        container = self.view.entries.get(self.parent)
        return container is not None and container.listed and container.kind in _DICT_KINDS

    def closest(self) -> list[str]:
        """Keys of the same container that look most like the missing one."""
        start = self.parent + "." if self.parent else ""
        names = [k[len(start):] for k in self.view.children_keys(self.parent)]
        wanted = self.keys[-1]
        head = wanted.split(".", 1)[0]
        similar = [n for n in names if n.split(".", 1)[0] == head] or names
        return difflib.get_close_matches(wanted, similar[:_CANDIDATES], _CLOSEST, 0.5)


def look_up(facts: ModuleFacts, ref: KeyRef, checkpoints: Checkpoints) -> KeyLookup | None:
    """What the key read names in the file it is read from; None when that file is not linked
    or the way there is not known."""
    entry = loaded_entry(facts, ref.value, checkpoints)
    if entry is None:
        return None
    view, keys = entry
    skipped = len(keys) < len(ref.value.keys) and (len(ref.value.keys) - 1) in ref.value.optional
    found = view.entry(".".join(keys)) if keys else view.entries.get("")
    return KeyLookup(view, keys, found, skipped)

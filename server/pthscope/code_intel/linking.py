"""Which checkpoint each piece of code is about, following the data flow (analysis/flow.py).

`checkpoints` maps absolute, normalised paths (`os.path.normpath`) to the checkpoints' views
(`reader.model_view.ModelView`). A `LinkedFiles` mapping also says which of them the side panel
shows (`active`) and which candidate locations exist on disk (`present`), so that a path naming
no file can say so; a plain dict is taken as linking exactly its keys.

- A path literal: the first of its candidate locations in the mapping.
- What `torch.load` call number i returned (`Loaded`): the file its path names, at the entry its
  keys pick (`ckpt["state_dict"]`; a `.get(k, ckpt)` key the file lacks is skipped).
- A model: a loaded whole model → its file; an object a call built (`net = Net()`) → the files
  `load_state_dict` fills it from, restricted to the entry loaded (`ckpt["model"]`), then the
  files `torch.save` writes its state to (`{"model": net.state_dict()}` → that entry); a
  parameter the calls do not decide, an unclear value → nothing (never another file's data).
- The side panel's checkpoint only for code in a document that names no checkpoint at all, and
  not for a model whose class differs from the class saved in that file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..analysis.facts import CheckpointPath, KeyString, ModuleFacts
from ..analysis.flow import Built, Loaded, Value
from ..reader.model_view import ModelView

Checkpoints = Mapping[str, ModelView]


class LinkedFiles(dict[str, ModelView]):
    """The views of the files a document links, the side panel's file, the files that exist."""

    def __init__(
        self,
        files: Mapping[str, ModelView] | None = None,
        active: str | None = None,
        present: Iterable[str] = (),
    ) -> None:
        super().__init__(files or {})
        self.active = active
        self.present = frozenset(present) | frozenset(self)


def present(checkpoints: Checkpoints, candidate: str) -> bool:
    """Whether the file exists (as far as the caller knows)."""
    if isinstance(checkpoints, LinkedFiles):
        return candidate in checkpoints.present
    return candidate in checkpoints


def checkpoint_for_path(path: CheckpointPath, checkpoints: Checkpoints) -> ModelView | None:
    for candidate in path.candidates:
        found = checkpoints.get(candidate)
        if found is not None:
            return found
    return None


def view_of_load(facts: ModuleFacts, index: int, checkpoints: Checkpoints) -> ModelView | None:
    """The file `torch.load` call number `index` reads, if it is linked."""
    if not 0 <= index < len(facts.torch_loads):
        return None
    path = facts.torch_loads[index].path
    return checkpoint_for_path(path, checkpoints) if path is not None else None


def loaded_entry(
    facts: ModuleFacts, value: Loaded, checkpoints: Checkpoints
) -> tuple[ModelView, tuple[str, ...]] | None:
    """The file a loaded value comes from and the keys of the entry it is (of a key's choices,
    the first the file has; optional keys it has none of left out); None when the file is not
    linked or that cannot be told."""
    view = view_of_load(facts, value.load, checkpoints)
    if view is None:
        return None
    keys: list[str] = []
    for position, key in enumerate(value.keys):
        choices = value.choices(position)
        if len(choices) > 1 or position in value.optional:
            present = next((k for k in choices if view.entry(".".join([*keys, k])) is not None), None)
            if present is None:
                parent = view.entries.get(".".join(keys))
                if parent is None or not parent.listed:
                    return None  # whether the file has it is not known
                if position in value.optional:
                    continue
            key = present or key
        keys.append(key)
    return view, tuple(keys)


def views_for(facts: ModuleFacts, value: Value | None, checkpoints: Checkpoints) -> list[ModelView]:
    """The checkpoints a model (what a variable holds) is loaded from, most specific first."""
    found: dict[int, ModelView] = {}
    sources: list[Loaded] = []
    if isinstance(value, Loaded):
        sources.append(value)
    elif isinstance(value, Built):
        # A wrapper holds its model's parameters: loads into either are loads into both.
        sources += [load.source for load in facts.loads if isinstance(load.target, Built)
                    and load.target.model == value.model and isinstance(load.source, Loaded)]  # fmt: skip
    files: list[tuple[ModelView, str]] = []  # loaded from first, then saved to
    for source in sources:
        entry = loaded_entry(facts, source, checkpoints)
        if entry is not None:
            files.append((entry[0], ".".join(entry[1])))
    if isinstance(value, Built):
        for save in facts.saves:
            view = checkpoint_for_path(save.path, checkpoints) if save.path is not None else None
            if isinstance(save.target, Built) and save.target.model == value.model and view is not None and save.kind in ("state_dict", "model", "dict"):
                files.append((view, save.key or ""))
    for file, key in files:
        view = sub_view(file, key)
        if view is not None:
            found.setdefault(id(view), view)
    if not found:
        fallback = side_panel_view(facts, checkpoints, value.callee if isinstance(value, Built) else None)
        if fallback is not None:
            return [fallback]
    return list(found.values())


def views_for_key_string(
    facts: ModuleFacts, key: KeyString, checkpoints: Checkpoints
) -> list[ModelView]:
    """A key written as a string (`if name.startswith("layer4")`): the model of the freezing
    statement it is part of; else the file, when the document links exactly one."""
    for op in facts.flag_ops:
        if op.stmt.contains(key.span.start_line, key.span.start_char) and op.target is not None:
            return views_for(facts, op.target, checkpoints)
    named = {id(v): v for p in facts.paths if (v := checkpoint_for_path(p, checkpoints)) is not None}
    if len(named) == 1:
        return list(named.values())
    fallback = side_panel_view(facts, checkpoints) if not named else None
    return [fallback] if fallback is not None else []


def side_panel_view(
    facts: ModuleFacts, checkpoints: Checkpoints, callee: str | None = None
) -> ModelView | None:
    """The side panel's checkpoint, for a document that names no checkpoint (and a model of
    the class saved in it, when both are known)."""
    if facts.paths:
        return None
    active = checkpoints.active if isinstance(checkpoints, LinkedFiles) else None
    if active is None and not isinstance(checkpoints, LinkedFiles) and len(checkpoints) == 1:
        active = next(iter(checkpoints))
    view = checkpoints.get(active) if active is not None else None
    if view is None:
        return None
    saved = view.root_class
    if callee and saved and saved.rsplit(".", 1)[-1] != callee.rsplit(".", 1)[-1]:
        return None
    return view


def sub_view(view: ModelView, key: str) -> ModelView | None:
    """The view of the tensors under the entry `key` of the file (`ckpt["model"]` of a file
    with several models); the view itself when that is all of them, None when none is."""
    if not key:
        return view
    memo = f"under|{key}"
    if memo in view.memo:
        cached: ModelView | None = view.memo[memo]
        return cached
    start = key + "."
    chosen = [i for i, t in enumerate(view.tensors) if t.key.startswith(start)]
    result: ModelView | None
    if len(chosen) == len(view.tensors):
        result = view
    elif not chosen:
        result = None
    else:
        position = {old: new for new, old in enumerate(chosen)}
        result = ModelView(
            file=view.file, format=view.format, tensor_count=view.tensor_count,
            counts=view.counts, errors=view.errors, risky_globals=view.risky_globals,
            global_effects=view.global_effects, whole_model=view.whole_model,
            stores_flags=view.stores_flags, classes=view.classes,
            tensors=[view.tensors[i] for i in chosen],
            tied={position[i]: position[f] for i, f in view.tied.items() if i in position and f in position},
            error_kinds=view.error_kinds, locations=view.locations, entries=view.entries,
            part_formats=view.part_formats, weights_only_refusal=view.weights_only_refusal,
            torch_load_refuses=view.torch_load_refuses,
        )
    view.memo[memo] = result
    return result


def named_views(facts: ModuleFacts, checkpoints: Checkpoints) -> list[ModelView]:
    """Every checkpoint the document's paths link, in file order (the side panel's when the
    document names none)."""
    found = {id(v): v for p in facts.paths if (v := checkpoint_for_path(p, checkpoints)) is not None}
    if found:
        return list(found.values())
    fallback = side_panel_view(facts, checkpoints)
    return [fallback] if fallback is not None else []

"""Which of the loaded checkpoints belong to which code.

`checkpoints` maps absolute, normalised paths (`os.path.normpath`) to the checkpoints' views
(`reader.model_view.ModelView`). A path literal links to the first of its candidate locations
present in the mapping. A model variable links to the checkpoints its own load/save calls name,
then to every checkpoint the file names, then (when the mapping holds just one, e.g. the one
open in the side panel) to that one.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..analysis.facts import CheckpointPath, ModuleFacts
from ..reader.model_view import ModelView

Checkpoints = Mapping[str, ModelView]


def checkpoint_for_path(path: CheckpointPath, checkpoints: Checkpoints) -> ModelView | None:
    for candidate in path.candidates:
        found = checkpoints.get(candidate)
        if found is not None:
            return found
    return None


def linked_views(facts: ModuleFacts, checkpoints: Checkpoints, var: str | None = None) -> list[ModelView]:
    """The checkpoints linked to `var` (or to the file), most specific first."""
    found: dict[int, ModelView] = {}
    own = [p for p in facts.paths if var is not None and p.var == var]
    for path in own + facts.paths:
        checkpoint = checkpoint_for_path(path, checkpoints)
        if checkpoint is not None:
            found.setdefault(id(checkpoint), checkpoint)
    if not found and len(checkpoints) == 1:
        return list(checkpoints.values())
    return list(found.values())

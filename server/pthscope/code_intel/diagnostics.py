"""Diagnostics with stable codes; each one's `data` says which fact it is about.

PTH001 flags lost on load (warning), PTH002 torch.load without weights_only (warning; TorchFix
TOR102 parity), PTH003 whole-model save (information). A `# noqa` or `# noqa: PTH00x` comment
on the first line of the finding silences it.
"""

from __future__ import annotations

from ..analysis.facts import ModuleFacts, TorchLoad
from ..reader.model_view import ModelView
from .linking import Checkpoints, checkpoint_for_path
from .lost_flags import find_lost_flags
from .types import Diagnostic, Range

FLAGS_LOST = "PTH001"
UNSAFE_LOAD = "PTH002"
WHOLE_MODEL_SAVE = "PTH003"


def diagnostics(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    """All findings for the file, minus those silenced by `# noqa`."""
    found = _flags_lost(facts, checkpoints) + _unsafe_loads(facts, checkpoints)
    found += _whole_model_saves(facts)
    return [d for d in found if not facts.suppressed(d.range.start.line, d.code)]


def _flags_lost(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    out = []
    for lost in find_lost_flags(facts, checkpoints):
        var = lost.load.var
        if lost.instance is not None:
            why = (
                f"`{lost.instance.var}` (line {lost.instance.ops[0].stmt.start_line + 1}) is frozen"
            )
        else:
            assert lost.checkpoint is not None
            why = f"`{_basename(lost.checkpoint.file)}` shows this model partly frozen"
        message = (
            f"`{var}` is a fresh `{lost.callee}(...)`: load_state_dict copies tensor values, but a "
            f"state_dict does not store requires_grad, so every parameter of `{var}` is trainable "
            f"again while {why}. Re-apply the freezing after loading."
        )
        out.append(
            Diagnostic(
                Range.of(lost.load.call),
                "warning",
                FLAGS_LOST,
                message,
                {"load": lost.index, "line": lost.load.call.start_line},
            )
        )
    return out


def _unsafe_loads(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    out = []
    for index, load in enumerate(facts.torch_loads):
        if load.has_weights_only or load.has_star_kwargs or load.insert_at is None:
            continue
        pickled = _whole_model_file(load, checkpoints)
        if pickled is None:
            message = (
                "torch.load without weights_only=: a pickle can run arbitrary code when loaded "
                "with weights_only=False. Pass weights_only=True (TorchFix TOR102)."
            )
        else:
            root = pickled.root_class or "an object"
            message = (
                f"torch.load without weights_only=: `{_basename(pickled.file)}` is a pickled whole "
                f"model ({root}), which weights_only=True refuses. Save and load a state_dict "
                "instead, or pass weights_only=False only for a file you trust."
            )
        out.append(
            Diagnostic(
                Range.of(load.func),
                "warning",
                UNSAFE_LOAD,
                message,
                {
                    "torch_load": index,
                    "line": load.call.start_line,
                    "whole_model": pickled is not None,
                },
            )
        )
    return out


def _whole_model_file(load: TorchLoad, checkpoints: Checkpoints) -> ModelView | None:
    if load.path is None:
        return None
    checkpoint = checkpoint_for_path(load.path, checkpoints)
    if checkpoint is None:
        return None
    unknown = any(risk == "unknown" for _, risk in checkpoint.risky_globals)
    return checkpoint if checkpoint.whole_model or unknown else None


def _whole_model_saves(facts: ModuleFacts) -> list[Diagnostic]:
    out = []
    for index, save in enumerate(facts.saves):
        if save.kind != "model" or save.var not in facts.model_vars:
            continue
        message = (
            f"torch.save(`{save.var}`) pickles the whole module: loading it needs the class code "
            "and weights_only=False (which runs code from the file). Saving the state_dict plus a "
            "requires_grad map keeps the weights and which layers are frozen."
        )
        out.append(
            Diagnostic(
                Range.of(save.call),
                "information",
                WHOLE_MODEL_SAVE,
                message,
                {"save": index, "line": save.call.start_line},
            )
        )
    return out


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path

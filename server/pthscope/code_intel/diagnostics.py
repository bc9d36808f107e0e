"""Diagnostics with stable codes; each one's `data` says which fact it is about.

PTH001 flags lost on load (warning), PTH002 torch.load without weights_only (warning, TorchFix
TOR102 parity; an error when the linked file would run code, see verdict.py), PTH003 whole-model
save (information); PTH004-PTH007 and PTH009, what the loaded file says about the call and the
keys read from it, are in load_checks.py; PTH008, a checkpoint that does not load into its model
(missing, unexpected or mismatched keys), in compat_checks.py. A `# noqa` or `# noqa: PTH00x` comment on the first line of the
finding silences it. Messages are plain text; names from a file go through `plain_text.visible`.
"""

from __future__ import annotations

from ..analysis.facts import ModuleFacts
from ..plain_text import visible
from ..reader.model_view import ModelView
from .compat_checks import INCOMPATIBLE_LOAD, compat_diagnostics
from .linking import Checkpoints
from .load_checks import (
    CUDA_WITHOUT_MAP_LOCATION,
    MISSING_KEY,
    REFUSED_LOAD,
    RUNS_CODE_LOAD,
    UNREADABLE_FILE,
    load_checks,
    refused_advice,
)
from .lost_flags import find_lost_flags
from .types import Diagnostic, Range, Severity
from .verdict import linked_verdict

FLAGS_LOST = "PTH001"
UNSAFE_LOAD = "PTH002"
WHOLE_MODEL_SAVE = "PTH003"
_NAMES_LISTED = 3
__all__ = [
    "CUDA_WITHOUT_MAP_LOCATION", "FLAGS_LOST", "INCOMPATIBLE_LOAD", "MISSING_KEY", "REFUSED_LOAD", "RUNS_CODE_LOAD",
    "UNREADABLE_FILE",
    "UNSAFE_LOAD", "WHOLE_MODEL_SAVE", "diagnostics",
]  # fmt: skip


def diagnostics(facts: ModuleFacts, checkpoints: Checkpoints) -> list[Diagnostic]:
    """All findings for the file, minus those silenced by `# noqa`."""
    found = _flags_lost(facts, checkpoints) + _unsafe_loads(facts, checkpoints)
    found += load_checks(facts, checkpoints)
    found += compat_diagnostics(facts, checkpoints)
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
            why = f"`{visible(_basename(lost.checkpoint.file))}` shows this model partly frozen"
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
        linked = linked_verdict(load, checkpoints)
        severity: Severity = "warning"
        if linked is not None and (linked[1].level == "other_loader" or linked[1].safetensors):
            continue  # weights_only= cannot make it load (PTH005 says what does), or has nothing to restrict
        if linked is not None and linked[1].level == "runs_code":
            severity = "error"
            message = (
                f"torch.load without weights_only=: `{_file_name(linked[0])}` would run code if "
                f"loaded with weights_only=False ({_listed(linked[1].dangerous)}). Pass "
                "weights_only=True, and never weights_only=False for this file."
            )
        elif linked is not None and linked[1].level == "refused":
            message = (
                f"torch.load without weights_only=: `{_file_name(linked[0])}` needs weights_only=False: "
                f"{visible(linked[1].problem or '')}. {refused_advice(linked[1])}"
            )
        elif linked is not None and linked[1].level == "classes":
            lookup, classes = linked[0], linked[1].classes
            what = (
                f"a pickled whole model ({visible(lookup.root_class or 'an object')})"
                if lookup.whole_model
                else f"a pickle of {len(classes)} class{'' if len(classes) == 1 else 'es'}"
            )
            message = (
                f"torch.load without weights_only=: `{_file_name(lookup)}` is {what}, which "
                "weights_only=True refuses unless its classes are allowed with "
                "torch.serialization.safe_globals. Save and load a state_dict instead, or pass "
                "weights_only=False only for a file you trust."
            )
        else:
            message = (
                "torch.load without weights_only=: a pickle can run arbitrary code when loaded "
                "with weights_only=False. Pass weights_only=True (TorchFix TOR102)."
            )
        data = {
            "torch_load": index,
            "line": load.call.start_line,
            "whole_model": bool(linked and linked[0].whole_model),
            "verdict": linked[1].level if linked else None,
        }
        out.append(Diagnostic(Range.of(load.func), severity, UNSAFE_LOAD, message, data))
    return out


def _file_name(lookup: ModelView) -> str:
    return visible(_basename(lookup.file))


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(visible(n) for n in names[:_NAMES_LISTED])
    return shown + (f" and {len(names) - _NAMES_LISTED} more" if len(names) > _NAMES_LISTED else "")


def _whole_model_saves(facts: ModuleFacts) -> list[Diagnostic]:
    out = []
    for index, save in enumerate(facts.saves):
        if save.kind != "model" or (save.var not in facts.model_vars and save.var not in facts.module_attributes):
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

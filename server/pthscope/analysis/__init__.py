"""Python source → facts about the models it trains, freezes, saves and loads.

    facts = analyze(source, file_path, workspace_folders=(...), previous=last_good_facts)

`analyze` never raises and never runs the user's code (it reads the `ast`). On a syntax error
it blanks the broken line(s) and parses again; if that fails too it returns `previous` (with
`ok=False`), or empty facts. The top-level statements `previous` parsed that the text still has
at the same place are not parsed again. `ModuleFacts.checkpoint_paths()` lists the literals that name
checkpoints with their candidate locations; `actions` joins the facts with `Checkpoint`s.
`ModuleFacts.expected` holds the state_dict each `load_state_dict` call's model would have
(load_models.py), derived from the model's source here so that no request has to.
"""

from __future__ import annotations

import dataclasses

from .collect import Collector
from .facts import MODULE_SCOPE, CheckpointPath, ModuleFacts, Scope, Span
from .load_models import expected_for_loads
from .module_attributes import module_attributes
from .name_rules import loop_rule
from .self_attributes import stored_attributes
from .source import Chunks, Positions, names_bound, noqa_comments, parse_tolerant, source_lines

__all__ = ["CheckpointPath", "ModuleFacts", "Span", "analyze", "loop_rule"]


def analyze(
    source: str,
    file_path: str,
    workspace_folders: tuple[str, ...] = (),
    previous: ModuleFacts | None = None,
) -> ModuleFacts:
    """Facts about one Python file; tolerant of syntax errors, never raises."""
    lines = source_lines(source)
    chunks: Chunks = dict(previous.chunks) if previous is not None else {}
    tree, error = parse_tolerant(source, chunks)
    if tree is None:
        if previous is not None:
            return dataclasses.replace(previous, ok=False, syntax_error=error)
        return ModuleFacts(file_path, lines, ok=False, syntax_error=error)
    facts = ModuleFacts(file_path, lines, source.endswith(("\n", "\r")), error is None, error)
    facts.chunks = chunks
    known = previous.chunk_names if previous is not None else {}
    facts.chunk_names = {key: known.get(key) or names_bound(body) for key, body in chunks.items()}
    facts.scopes.append(Scope(MODULE_SCOPE, 0, max(len(lines) - 1, 0)))
    facts.noqa = noqa_comments(lines)
    try:
        collector = Collector(facts, Positions(lines), tuple(workspace_folders), stored_attributes(tree))
        collector.visit_body(tree.body)
        collector.finish()
    except RecursionError:
        return previous or ModuleFacts(file_path, lines, ok=False, syntax_error="too deeply nested")
    if any(save.var and save.var.startswith("self.") for save in facts.saves):
        facts.module_attributes = module_attributes(tree, source, file_path, collector.module_classes,
                                                    tuple(workspace_folders))  # fmt: skip
    kept = previous.model_sources if previous is not None else None
    facts.model_sources = expected_for_loads(facts, tree, source, tuple(workspace_folders), kept) or kept
    return facts

"""The analyses of open documents (lsp/document_analysis.py): made in a thread, one job at a
time for the newest text, and usable right after an edit for the lines it did not change.

No server here: the documents are pygls' own `TextDocument`s, changed as the server changes
them, and what the analyses give is checked against `analysis.analyze` of the same text.
"""

from __future__ import annotations

import asyncio

from pygls.workspace import TextDocument

from pthscope.analysis import analyze
from pthscope.lsp.document_analysis import Analyses, LineMap, line_map

SOURCE = (
    "import torch\n"
    "model = Net()\n"
    "sd = torch.load('runs/sd.pth', weights_only=True)\n"
    "model.load_state_dict(sd)\n"
    "x = sd['fc.weight']\n"
)


def test_line_map_keeps_what_did_not_change() -> None:
    old = ["a", "b", "c", "d"]
    inserted = line_map(old, ["a", "new", "b", "c", "d"])
    assert (inserted.to_old(0), inserted.to_old(1), inserted.to_old(2), inserted.to_old(4)) == (0, None, 1, 3)
    assert (inserted.to_new(0), inserted.to_new(1), inserted.to_new(3)) == (0, 2, 4)
    changed = line_map(old, ["a", "B", "c", "d"])
    assert changed.to_old(1) is None and changed.to_old(2) == 2 and changed.to_new(1) is None
    assert line_map(old, old) == LineMap(4, 0, 4, 4)


async def test_requests_right_after_an_edit_use_the_last_analysis_where_it_holds() -> None:
    analyses = Analyses(lambda: ())
    document = TextDocument("file:///w/train.py", SOURCE, version=1, language_id="python")
    first = await analyses.current(document)
    assert first.generation == 1 and first.facts.key_refs[0].span.start_line == 4
    document = TextDocument("file:///w/train.py", "# a new first line\n" + SOURCE, version=2)
    analyses.submit(document)
    usable = analyses.usable(document, 5)  # the key, one line down now
    assert usable is not None
    state, mapped = usable
    assert state is first and mapped.to_old(5) == 4 and mapped.to_new(4) == 5
    assert analyses.usable(document, 0) is None  # the new line: only the new analysis knows it
    second = await analyses.current(document)
    assert second.generation == 2 and second.facts.key_refs[0].span.start_line == 5
    assert analyses.usable(document, 0) == (second, LineMap(6, 0, 6, 6))
    assert analyses.generation(document.uri, 1) is first
    analyses.shutdown()


async def test_only_the_newest_text_is_analysed() -> None:
    """Texts that are outdated before their turn are skipped; what `current` gives is always
    the analysis of the text as it is, equal to analysing it at once."""
    analyses = Analyses(lambda: ())
    texts = [SOURCE + f"y{n} = {n}\n" for n in range(6)]
    tasks = []
    for version, text in enumerate(texts, 1):
        tasks.append(analyses.submit(TextDocument("file:///w/t.py", text, version=version)))
    results = await asyncio.gather(*tasks)
    assert results[-1] is not None and results[-1].source == texts[-1]
    assert sum(r is not None for r in results) < len(texts)
    latest = await analyses.current(TextDocument("file:///w/t.py", texts[-1], version=6))
    expected = analyze(texts[-1], "/w/t.py")
    assert [a.var for a in latest.facts.assignments] == [a.var for a in expected.assignments]
    analyses.shutdown()

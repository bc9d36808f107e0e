"""Scans, module statistics, diffs and conversions over stdio: progress, marks, cancellation.

The real server, its real workers (the test ones fail if the values worker parses), and files
torch wrote in the test run; the answers are checked against torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pytest_lsp import LanguageClient
from safetensors.torch import load_file

from pthscope.lsp import protocol

from .conftest import ask
from .test_protocol_agrees import PROTOCOL_TS, TsProtocol, conforms, py_fields, result_conforms

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("values")
    torch.manual_seed(0)
    bad = torch.randn(16, 8)
    bad[3, 4] = math.nan
    spiky = torch.randn(40_000) * 0.01
    spiky[123] = 5e3
    state = {"enc.w": bad, "enc.b": torch.zeros(16), "dec.w": torch.randn(8, 16), "dec.b": torch.randn(8),
             "spiky": spiky, "steps": torch.arange(10)}
    made = {"bad": folder / "bad.pt", "clean": folder / "clean.pt", "tuned": folder / "tuned.pt"}
    torch.save(state, made["bad"])
    clean = {k: v.nan_to_num(0.0) + (1 if k == "enc.b" else 0) for k, v in state.items()}
    clean["spiky"][123] = 0.0
    torch.save(clean, made["clean"])
    tuned = {f"module.{k}": v.clone() for k, v in clean.items()}
    tuned["module.dec.w"] += 0.25
    tuned["module.head.w"] = torch.ones(2, 2)
    torch.save({"model": tuned, "epoch": 3}, made["tuned"])
    return made


async def test_scan_finds_bad_tensors_with_progress_and_marks_the_views(
    shared_client: LanguageClient, files: dict[str, Path]
) -> None:
    file = str(files["bad"])
    token = "scan-bad"
    shared_client.progress_reports[token] = []
    result = await ask(shared_client, "pthscope/scan", {"file": file, "workDoneToken": token})
    assert result.complete and result.total == 6 and result.scanned == 6
    found = {t["key"]: {f["kind"] for f in t["findings"]} for t in result.bad}
    assert found == {"enc.w": {"nan"}, "enc.b": {"all_zero"}, "spiky": {"extreme"}}
    assert result.counts["nan"] == 1 and result.bad[0]["stats"]["nan"] == 1
    result_conforms(result)
    kinds = [type(v).__name__ for v in shared_client.progress_reports[token]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd" and "WorkDoneProgressReport" in kinds
    # The tree, the table and the page's summary now carry what the scan found.
    opened = await ask(shared_client, "pthscope/open", {"file": file})
    result_conforms(opened)
    assert opened.scan["bad"] == 3 and opened.scan["errors"] == 1 and opened.scan["complete"]
    marks = {c["key"]: c.get("scan") for c in opened.children}
    assert marks["enc"]["severity"] == "error" and marks["enc"]["tensors"] == 2
    assert marks["dec"] is None and marks["spiky"]["label"] == "extreme values"
    inner = await ask(shared_client, "pthscope/children", {"file": file, "path": ["enc"]})
    assert {c["name"]: c["scan"]["label"] for c in inner.children} == {"w": "NaN", "b": "all zero"}
    table = await ask(shared_client, "pthscope/tensors", {"file": file, "limit": 10})
    result_conforms(table)
    assert set(table.marks) == {"enc.w", "enc.b", "spiky"}
    with_rows = await ask(shared_client, "pthscope/open", {"file": file, "firstTensors": 10})
    result_conforms(with_rows)
    assert with_rows.first_tensors["marks"] == table.marks  # the rows that come with the open too
    clean = await ask(shared_client, "pthscope/tensors", {"file": str(files["clean"]), "limit": 10})
    assert clean.marks is None


async def test_scan_of_an_unreadable_file_fails_clearly(shared_client: LanguageClient, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint\n" * 5)
    with pytest.raises(JsonRpcException, match="could not be read"):
        await ask(shared_client, "pthscope/scan", {"file": str(junk)})
    assert (await ask(shared_client, "pthscope/open", {"file": str(junk)})).root is None  # still serving


async def test_module_statistics_aggregate_a_subtree(shared_client: LanguageClient, files: dict[str, Path]) -> None:
    file = str(files["clean"])
    result = await ask(shared_client, "pthscope/moduleStats", {"file": file, "path": ["dec"]})
    assert result.error is None
    loaded = torch.load(file, weights_only=True)
    together = torch.cat([loaded["dec.w"].reshape(-1), loaded["dec.b"]]).double()
    result_conforms(result)
    stats = result.stats
    assert stats["key"] == "dec" and stats["tensors"] == 2 and stats["numel"] == together.numel()
    assert stats["mean"] == pytest.approx(float(together.mean()), rel=1e-6)
    assert stats["std"] == pytest.approx(float(together.std()), rel=1e-6)
    assert stats["l2"] == pytest.approx(float(together.norm()), rel=1e-6)
    assert sum(stats["histogram"]["counts"]) == together.numel()
    root = (await ask(shared_client, "pthscope/moduleStats", {"file": file, "path": []})).stats
    assert root["tensors"] == 5 and root["left_out"] == 1 and root["dtypes"] == {"float32": 5}  # `steps` is int64
    with pytest.raises(JsonRpcInvalidParams, match="names no node"):
        await ask(shared_client, "pthscope/moduleStats", {"file": file, "path": ["nope"]})


async def test_diff_structure_then_values_streamed(shared_client: LanguageClient, files: dict[str, Path]) -> None:
    partials: list[Any] = []
    original = shared_client.protocol.fm.features[types.PROGRESS]

    def on_progress(params: types.ProgressParams) -> None:
        if params.token == "diff-rows":
            partials.append(params.value)
        else:
            original(params)

    shared_client.protocol.fm.features[types.PROGRESS] = on_progress
    try:
        a, b = str(files["clean"]), str(files["tuned"])
        structure = await ask(shared_client, "pthscope/diff", {"a": a, "b": b})
        assert not structure.values and structure.summary["matched"] == 6 and structure.summary["only_b"] == 1
        assert structure.stripped == ["", ""]  # model-relative names already drop DataParallel's module.
        assert all(t["values"] is None for t in structure.tensors)
        full = await ask(shared_client, "pthscope/diff", {"a": a, "b": b, "values": True,
                                                          "partialResultToken": "diff-rows"})
    finally:
        shared_client.protocol.fm.features[types.PROGRESS] = original
    result_conforms(structure)
    result_conforms(full)
    for value in partials:
        conforms(value, protocol.DiffProgressValue, "DiffProgressValue")
    rows = {t["name"]: t for t in full.tensors}
    assert rows["dec.w"]["status"] == "changed" and rows["dec.w"]["values"]["max_abs_diff"] == pytest.approx(0.25)
    assert {n for n, t in rows.items() if t["status"] == "identical"} == {"enc.w", "enc.b", "dec.b", "spiky", "steps"}
    assert rows["head.w"]["status"] == "only_b"
    modules = {m["module"]: m["status"] for m in full.modules}
    assert modules == {"enc": "identical", "dec": "changed", "": "identical", "head": "only_b"}
    streamed = [row["name"] for value in partials for row in value["tensors"]]
    assert sorted(streamed) == sorted(n for n, t in rows.items() if t["values"] is not None)


async def test_diff_of_an_unreadable_file(shared_client: LanguageClient, files: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(JsonRpcException, match="could not be read"):
        await ask(shared_client, "pthscope/diff", {"a": str(files["clean"]), "b": str(junk)})
    with pytest.raises(JsonRpcInvalidParams, match="absolute"):
        await ask(shared_client, "pthscope/diff", {"a": "relative.pt", "b": str(junk)})


async def test_convert_writes_a_safetensors_file(shared_client: LanguageClient, files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "tuned.safetensors"
    result = await ask(shared_client, "pthscope/convert", {"file": str(files["tuned"]), "out": str(out)})
    assert result.error is None, result.error
    result_conforms(result)
    assert result.written["tensors"] == 7 and {d["key"] for d in result.written["dropped"]} == {"epoch"}
    written = load_file(out)
    source = torch.load(files["tuned"], weights_only=True)["model"]
    assert set(written) == {k.removeprefix("module.") for k in source}
    for key, tensor in source.items():
        assert torch.equal(written[key.removeprefix("module.")], tensor)
    assert not list(tmp_path.glob(".*.tmp"))
    refused = await ask(shared_client, "pthscope/convert", {"file": str(files["tuned"]), "out": str(files["tuned"])})
    assert refused.written is None and "is the file being converted" in refused.error



async def test_the_diff_progress_value_agrees_with_the_client() -> None:
    """Not a request's result, so test_protocol_agrees does not reach it: checked here."""
    ts = TsProtocol(PROTOCOL_TS.read_text())
    assert ts.fields("DiffProgressValue") == py_fields(protocol.DiffProgressValue, params=False)

"""`pthscope/open`: the summary and first level of state dicts, whole models, training files."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from .conftest import ask

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_state_dict(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    result = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert result.errors == []
    assert result.file == str(checkpoints["state_dict"])
    assert result.format
    assert result.size == checkpoints["state_dict"].stat().st_size
    root = result.root
    assert root["path"] == [] and root["key"] == "" and root["name"] == ""
    assert root["child_count"] == len(result.children) > 0
    # Flat dotted keys are shown as the module tree they spell.
    first = result.children[0]
    assert first["kind"] == "group" and first["name"] == "stem" and first["path"] == ["stem"]
    stem = await ask(shared_client, "pthscope/children", {"file": result.file, "path": ["stem"]})
    weight = stem.children[0]
    assert weight["name"] == "weight" and weight["key"] == "stem.weight" and weight["path"] == ["stem.weight"]
    assert weight["tensor"]["shape"] == [8, 3, 3, 3]
    # A state_dict keeps no requires_grad: no parameter element has a stored flag.
    parameters = root["counts"]["parameter"]
    assert parameters["elements"] == parameters["not_stored"] > 0
    # BatchNorm's running statistics are buffers, not parameters; the root counts the file.
    assert root["counts"]["buffer"]["tensors"] == 6
    assert root["counts"] == result.summary["roles"]
    assert [c["name"] for c in result.children] == ["stem", "layers", "heads", "fc"]


async def test_whole_model(shared_client: LanguageClient, checkpoints: dict[str, Path]) -> None:
    result = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["whole_model"])})
    assert result.errors == []
    root = result.root
    assert root["kind"] == "module"
    assert root["module"]["class"].endswith("SmallNet")
    names = [c["name"] for c in result.children]
    assert {"stem", "layers", "heads", "fc"} <= set(names)
    # The whole model keeps requires_grad: only `fc` is trainable.
    fc = next(c for c in result.children if c["name"] == "fc")
    fc_parameters = fc["counts"]["parameter"]
    assert fc_parameters["trainable"] == fc_parameters["elements"] == 8 * 10 + 10
    assert fc["module"]["parameters"]["trainable"] == 8 * 10 + 10
    assert root["counts"]["parameter"]["frozen"] > 0
    # The plain tensor attribute `mask` (10 elements) is no parameter: an "other" tensor.
    assert root["counts"]["parameter"]["not_stored"] == 0
    assert root["counts"]["other"] == {"tensors": 1, "elements": 10, "bytes": 40}
    assert any(g["risk"] != "safe" for g in result.globals)


async def test_training_checkpoint(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    result = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["training"])})
    assert result.errors == []
    by_name = {c["name"]: c for c in result.children}
    assert set(by_name) == {"epoch", "model", "optimizer", "config"}
    assert by_name["epoch"]["kind"] == "value" and by_name["epoch"]["value"] == "7"
    assert by_name["model"]["kind"] == "dict" and by_name["model"]["child_count"] > 0
    assert by_name["model"]["counts"]["parameter"]["elements"] > 0
    # SGD's momentum buffers are optimizer state, as many elements as the parameters.
    assert by_name["optimizer"]["counts"]["optimizer_state"]["elements"] == (
        by_name["model"]["counts"]["parameter"]["elements"])
    assert result.summary["roles"]["parameter"] == by_name["model"]["counts"]["parameter"]


async def test_truncated_file_is_a_result_with_errors(
    shared_client: LanguageClient, checkpoints: dict[str, Path]
) -> None:
    result = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["truncated"])})
    assert result.errors, result
    assert all(e["message"] for e in result.errors)
    # The server carries on.
    again = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert again.errors == []


async def test_unreadable_files_are_results_with_errors(
    shared_client: LanguageClient, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    for file in (checkpoints["garbage"], tmp_path / "missing.pt", tmp_path):
        result = await ask(shared_client, "pthscope/open", {"file": str(file)})
        assert result.errors, file
        assert result.root is None or result.root["child_count"] == 0
        assert result.children == []


async def test_the_banner_verdict_is_the_servers(
    shared_client: LanguageClient, checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    """`safety` is the one-line verdict the page shows (reader/safety.py), with the server's
    Python's view of which classes it could import; a file torch.load fails on is not called safe."""
    import torch

    state = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["state_dict"])})
    assert state.safety["level"] == "safe" and state.safety["headline"].startswith("Loads with weights_only=True")
    whole = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["whole_model"])})
    assert whole.safety["level"] == "unknown" and whole.safety["headline"].startswith("Needs weights_only=False: ")
    assert "not importable here" not in whole.safety["headline"]  # the server's Python imports `tests`
    legacy = tmp_path / "legacy_uint16.pt"
    torch.save({"a": torch.zeros(3, dtype=torch.uint16)}, legacy, _use_new_zipfile_serialization=False)
    failing = await ask(shared_client, "pthscope/open", {"file": str(legacy)})
    assert failing.safety == {"level": "unknown", "headline": "torch.load fails on this file, whatever weights_only says"}
    truncated = await ask(shared_client, "pthscope/open", {"file": str(checkpoints["truncated"])})
    assert truncated.safety is None or truncated.safety["level"] != "safe", truncated.safety

"""Hovers on paths to files the doctor names: the message says what the file is and what to run;
a format torch.load cannot read but pthscope lists (GGUF) gets the usual table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pytest_lsp import LanguageClient

from ..code_intel.hostile_text import assert_markdown_is_inert, rendered_text
from .code_intel import code_workspace, hover_text, open_document, python_client, utf16_position

__all__ = ["code_workspace", "python_client"]

pytestmark = pytest.mark.asyncio(loop_scope="module")

POINTER = ("version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1234567890\n")


async def test_hover_on_an_lfs_pointer_and_a_gguf(python_client: LanguageClient, code_workspace: Path) -> None:
    gguf = pytest.importorskip("gguf")
    (code_workspace / "pointer.pth").write_text(POINTER)
    writer = gguf.GGUFWriter(str(code_workspace / "tiny.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    text = 'import torch\nsd = torch.load("pointer.pth")\nother = torch.load("tiny.gguf")\n'
    uri = open_document(python_client, code_workspace / "hover_doctor.py", text)
    pointer = await hover_text(python_client, uri, utf16_position(text, '"pointer.pth"', 2))
    assert pointer is not None and "not readable" in pointer
    assert_markdown_is_inert(pointer)
    shown = " ".join(rendered_text(pointer))
    assert "Git LFS pointer" in shown and "git lfs pull" in shown and "1.2 GB" in shown
    listed = await hover_text(python_client, uri, utf16_position(text, '"tiny.gguf"', 2))
    assert listed is not None and "gguf" in " ".join(rendered_text(listed))

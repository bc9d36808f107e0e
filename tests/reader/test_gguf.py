"""GGUF files written by the gguf package, read back and compared with its own GGUFReader;
hostile variants (cut, lying counts and lengths) end in clear errors, fast."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pthscope.reader.gguf_file import GGML_TYPES

from .test_hostile import read, write

gguf = pytest.importorskip("gguf")


def _write(path: Path, endian: object = None) -> Path:
    from gguf.quants import quantize

    kwargs = {"endianess": endian} if endian is not None else {}
    writer = gguf.GGUFWriter(str(path), "llama", **kwargs)
    writer.add_name("tiny-llama")
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_float32("llama.rope.freq_base", 10000.0)
    writer.add_bool("custom.flag", True)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(2000)])
    writer.add_token_scores([0.5] * 2003)
    rng = np.random.default_rng(0)
    writer.add_tensor("token_embd.weight", rng.random((2003, 64), dtype=np.float32).astype(np.float16))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.add_tensor("blk.0.ids", np.arange(12, dtype=np.int32).reshape(3, 4))
    for name, qtype in (("blk.0.ffn_up.weight", gguf.GGMLQuantizationType.Q8_0),
                        ("blk.0.ffn_down.weight", gguf.GGMLQuantizationType.Q4_0),
                        ("blk.1.attn_q.weight", gguf.GGMLQuantizationType.BF16)):
        q = quantize(rng.random((32, 256), dtype=np.float32), qtype)
        writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.mark.parametrize("endian", ["little", "big"])
def test_tensors_match_gguf_reader(tmp_path: Path, gguf_file: Path, endian: str) -> None:
    path = gguf_file if endian == "little" else _write(tmp_path / "big.gguf", gguf.GGUFEndian.BIG)
    checkpoint = read(path)
    assert checkpoint.format == "gguf" and checkpoint.errors == []
    reference = gguf.GGUFReader(str(path))
    ours = {t.key: t for t in checkpoint.tensors}
    assert list(ours) == [t.name for t in reference.tensors]
    for tensor in reference.tensors:
        mine = ours[tensor.name]
        assert mine.shape == [int(d) for d in reversed(tensor.shape)]  # torch order, outermost first
        assert mine.storage_nbytes == tensor.n_bytes
        assert checkpoint.storage_offsets[tensor.name] == tensor.data_offset
        qtype = gguf.GGMLQuantizationType(tensor.tensor_type)
        plain = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I32": "int32"}
        assert mine.dtype == plain.get(qtype.name, f"gguf:{qtype.name}")
    assert checkpoint.metadata["general.architecture"] == "llama"
    assert checkpoint.metadata["general.name"] == "tiny-llama"
    assert checkpoint.metadata["llama.context_length"] == "256"
    assert checkpoint.metadata["custom.flag"] == "True"
    assert checkpoint.metadata["tokenizer.ggml.tokens"].startswith("[2,003 × string: '<unk>', '<s>', '</s>', …]")
    assert checkpoint.metadata["byteorder" if endian == "big" else "gguf version"] == ("big" if endian == "big" else "3")
    assert checkpoint.warnings[0].kind == "other-format" and "GGUFReader" in checkpoint.warnings[0].message


def test_type_table_matches_the_gguf_package() -> None:
    from gguf.constants import GGML_QUANT_SIZES

    theirs = {t.value: (t.name, *GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType if t in GGML_QUANT_SIZES}
    assert {k: v for k, v in GGML_TYPES.items() if k in theirs} == theirs


def _header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


HOSTILE = {
    "ten-million-tensors": _header(tensors=10_000_000) + bytes(64),
    "tensor-count-past-the-file": _header(tensors=1000) + bytes(100),
    "kv-array-of-2**40-items": _header(kvs=1) + _string("a.b") + struct.pack("<IIQ", 9, 0, 1 << 40),
    "kv-string-array-of-2**40": _header(kvs=1) + _string("a.b") + struct.pack("<IIQ", 9, 8, 1 << 40) + bytes(64),
    "huge-key-length": _header(kvs=1) + struct.pack("<Q", 1 << 60) + b"abc",
    "huge-string-value": _header(kvs=1) + _string("k") + struct.pack("<IQ", 8, 1 << 50) + b"xx",
    "unknown-value-type": _header(kvs=1) + _string("k") + struct.pack("<I", 77) + bytes(8),
    "nested-array": _header(kvs=1) + _string("k") + struct.pack("<IIQ", 9, 9, 1) + bytes(16),
    "version-99": _header(version=99),
    "alignment-3": _header(kvs=1) + _string("general.alignment") + struct.pack("<II", 4, 3),
    "1000-dims": _header(tensors=1) + _string("t") + struct.pack("<I", 1000) + bytes(8000),
    "shape-overflow": _header(tensors=1) + _string("t") + struct.pack("<I4Q", 4, *[1 << 40] * 4) + struct.pack("<IQ", 0, 0),
    "q8-row-not-a-block": _header(tensors=1) + _string("t") + struct.pack("<IQIQ", 1, 33, 8, 0),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_gguf(tmp_path: Path, name: str) -> None:
    checkpoint = read(write(tmp_path, "x.gguf", HOSTILE[name]))
    assert checkpoint.format == "gguf" and checkpoint.errors, name
    assert all(len(e.message) < 400 for e in checkpoint.errors)


@pytest.mark.parametrize("fraction", [0.001, 0.01, 0.05, 0.2, 0.5, 0.9, 0.999])
def test_truncated_gguf(tmp_path: Path, gguf_file: Path, fraction: float) -> None:
    data = gguf_file.read_bytes()
    checkpoint = read(write(tmp_path, "cut.gguf", data[: int(len(data) * fraction)]))
    assert [e.kind for e in checkpoint.errors] == ["truncated"]
    if fraction >= 0.5:  # the header is whole: one error names the first cut tensor and counts the rest
        names = [t.name for t in gguf.GGUFReader(str(gguf_file)).tensors]
        assert checkpoint.errors[0].where in names
        assert [t.key for t in checkpoint.tensors] == names[: names.index(checkpoint.errors[0].where)]


def test_legacy_ggml_is_named(tmp_path: Path) -> None:
    checkpoint = read(write(tmp_path, "ggml-model-q4_0.bin", b"tjgg" + struct.pack("<I", 3) + bytes(100)))
    assert checkpoint.format == "ggml" and checkpoint.metadata["magic"] == "ggjt v3"

"""ONNX models from torch.onnx.export (both exporters) and the onnx helper API, compared with
onnx.load; damaged protobuf ends in clear errors."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from .test_hostile import read, write

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.fixture(scope="module", params=["torchscript-exporter", "dynamo-exporter"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "convnet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ConvNet().eval(), (torch.randn(1, 3, 8, 8),), str(path), input_names=["image"],
                          output_names=["logits"], dynamo=request.param == "dynamo-exporter")
    return path


def _dtype(data_type: int) -> str:
    return str(torch.from_numpy(np.zeros(1, dtype=helper.tensor_dtype_to_np_dtype(data_type))).dtype).removeprefix("torch.")


def test_initializers_match_onnx_load(exported: Path) -> None:
    checkpoint = read(exported)
    assert checkpoint.format == "onnx" and checkpoint.errors == []
    model = onnx.load(str(exported))
    ours = {t.key: t for t in checkpoint.tensors}
    assert list(ours) == [i.name for i in model.graph.initializer]
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        assert ours[init.name].shape == list(init.dims)
        assert ours[init.name].dtype == _dtype(init.data_type)
        assert ours[init.name].storage_nbytes == array.nbytes
    assert checkpoint.metadata["ir version"] == str(model.ir_version)
    assert checkpoint.metadata["producer"] == model.producer_name
    assert checkpoint.metadata["nodes"] == str(len(model.graph.node))
    ops = Counter(n.op_type for n in model.graph.node)
    assert checkpoint.metadata["operators"].startswith(f"{ops.most_common(1)[0][0]} ×")
    assert checkpoint.metadata["graph inputs"] == "image: float32[1, 3, 8, 8]"
    assert checkpoint.metadata["graph outputs"].startswith("logits: float32[1, 2]")
    assert "onnxruntime" in checkpoint.warnings[0].message


def _helper_model(folder: Path, external: bool) -> Path:
    tensors = [
        numpy_helper.from_array(np.ones((4, 3), dtype=np.float16), "w16"),
        numpy_helper.from_array(np.arange(6, dtype=np.int8).reshape(2, 3), "q"),
        helper.make_tensor("bf", TensorProto.BFLOAT16, [2, 2], [1.0, 2.0, 3.0, 4.0]),
        helper.make_tensor("typed", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),  # float_data, not raw_data
        numpy_helper.from_array(np.zeros((64, 64), dtype=np.float32), "big"),
    ]
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([5.0], dtype=np.float32), "sp"),
                                       numpy_helper.from_array(np.array([3], dtype=np.int64), "sp_idx"), [10])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], initializer=tensors,
                              sparse_initializer=[sparse])
    model = helper.make_model(graph, producer_name="hand", opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "hand.onnx"
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location="hand.weights", size_threshold=1024)
    return path


def test_helper_model_dtypes_sparse_and_typed_fields(tmp_path: Path) -> None:
    checkpoint = read(_helper_model(tmp_path, external=False))
    assert checkpoint.errors == []
    ours = {t.key: t for t in checkpoint.tensors}
    assert {k: (t.shape, t.dtype) for k, t in ours.items()} == {
        "w16": ([4, 3], "float16"), "q": ([2, 3], "int8"), "bf": ([2, 2], "bfloat16"), "typed": ([3], "float32"),
        "big": ([64, 64], "float32"), "sp": ([10], "float32")}
    assert ours["typed"].storage_nbytes == 12 and ours["big"].storage_nbytes == 64 * 64 * 4
    assert ours["sp"].layout == "sparse"
    assert checkpoint.metadata["graph inputs"] == "x: float32[batch, 3]"
    assert checkpoint.metadata["opsets"] == "ai.onnx 17"


def test_external_data_is_sized_and_its_file_checked(tmp_path: Path) -> None:
    path = _helper_model(tmp_path, external=True)
    checkpoint = read(path)
    big = next(t for t in checkpoint.tensors if t.key == "big")
    assert big.storage_nbytes == 64 * 64 * 4 and checkpoint.warnings[1:] == []
    (tmp_path / "hand.weights").unlink()
    missing = read(path).warnings[1:]
    assert [w.kind for w in missing] == ["missing"] and "hand.weights" in missing[0].message


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95])
def test_truncated_onnx(tmp_path: Path, exported: Path, fraction: float) -> None:
    data = exported.read_bytes()
    checkpoint = read(write(tmp_path, "cut.onnx", data[: int(len(data) * fraction)]))
    assert checkpoint.errors and "truncated or corrupt" in checkpoint.errors[0].message


def test_bogus_lengths_and_wire_types(tmp_path: Path) -> None:
    prefix = b"\x08\x09\x12\x07pytorch"
    cases = {
        "graph-length-past-the-end": prefix + b":" + b"\xff\xff\xff\xff\x0f" + bytes(10),
        "initializer-length-past-its-graph": prefix + b":\x05" + b"*\x7f" + bytes(3),
        "varint-never-ends": prefix + b":\x04" + b"\x08\xff\xff\xff",
        "group-wire-type": prefix + b":\x02" + b"\x0b\x00",
        "no-graph": prefix,
        "field-zero": prefix + b":\x02\x00\x00",
        "dims-overflow": prefix + b":\x0e*\x0c" + b"\x08" + b"\xff" * 9 + b"\x01" + b"\x10\x01",
    }
    for name, data in cases.items():
        checkpoint = read(write(tmp_path, f"{name}.onnx", data))
        assert checkpoint.format == "onnx" and [e.kind for e in checkpoint.errors] == ["corrupt"], name


def test_many_fields_hit_the_limit_fast(tmp_path: Path) -> None:
    """3 million one-byte nodes: a limit error, not minutes of work."""
    nodes = b"\x0a\x00" * 3_000_000
    data = b"\x08\x09\x12\x01p:" + _varint(len(nodes)) + nodes
    checkpoint = read(write(tmp_path, "many.onnx", data))
    assert "more fields than pthscope reads" in checkpoint.errors[0].message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_random_protobuf_lookalikes_are_errors(tmp_path: Path) -> None:
    import random

    for seed in range(20):
        rng = random.Random(seed)
        data = b"\x08\x07\x12" + bytes(rng.randrange(256) for _ in range(2000))
        assert read(write(tmp_path, f"r{seed}.onnx", data)).errors

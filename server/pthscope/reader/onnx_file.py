"""ONNX models: found by their protobuf content, weights listed from the graph's initializers.

An ONNX file is one protobuf `ModelProto` with no magic number. A small wire-format reader walks
its fields straight from the file: the model's versions and producer, the graph's nodes (op types
only), inputs and outputs, and each initializer's name, dims, data type and data size. Tensor
bytes (`raw_data`, typed arrays, external data files) are skipped by seeking, never read. Every
length is checked against the message that holds it, so a bogus length is a clear error.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from .limits import Limits
from .model import Checkpoint, Node, Problem, TensorInfo, contiguous_stride
from .protobuf_wire import ProtobufError, Wire

# onnx.TensorProto.DataType → torch's dtype name (others keep ONNX's name)
_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "onnx:STRING",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128",
    16: "bfloat16", 17: "float8_e4m3fn", 18: "float8_e4m3fnuz", 19: "float8_e5m2", 20: "float8_e5m2fnuz",
    21: "onnx:UINT4", 22: "onnx:INT4", 23: "onnx:FLOAT4E2M1", 24: "float8_e8m0fnu", 25: "onnx:UINT2", 26: "onnx:INT2",
}
# Bytes per element of the typed repeated fields (TensorProto field number → size in the file
# when packed): float_data, int32_data, int64_data, double_data, uint64_data.
_TYPED_FIELDS = {4: 4, 5: 4, 7: 8, 10: 8, 11: 8}
# Fields of ModelProto (first byte 0x08 = field 1, varint) that may follow ir_version.
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2}
_OPS_SHOWN = 8
_NODES_READ = 50_000  # nodes whose op type is read; later ones are only counted
_TEXT = 200


def probe_onnx(head: bytes) -> bool:
    """`ir_version` (field 1) first, a small version, then another ModelProto field."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 15 and head[2] in _MODEL_TAGS


def read_onnx(path: str, limits: Limits) -> Checkpoint:
    checkpoint = Checkpoint(file=path, format="onnx")
    with open(path, "rb") as f:
        wire = Wire(f, os.fstat(f.fileno()).st_size, budget=limits.max_nodes)
        try:
            _read_model(wire, checkpoint, limits, os.path.dirname(path))
        except ProtobufError as exc:
            checkpoint.errors.append(Problem("corrupt", f"the ONNX protobuf is damaged: {exc}", where=exc.where))
    made_by = " ".join(v for v in (checkpoint.metadata.get("producer"), checkpoint.metadata.get("producer version")) if v)
    checkpoint.warnings.insert(0, Problem(
        "other-format", f"an ONNX model{f' (made by {made_by})' if made_by else ''}, not a PyTorch checkpoint: torch.load "
        "cannot read it — run it with onnxruntime (`onnxruntime.InferenceSession(path)`) or read it with "
        "`onnx.load(path)`; its weights are the graph's initializers (`onnx.numpy_helper.to_array`)"))
    return checkpoint


def _read_model(wire: Wire, checkpoint: Checkpoint, limits: Limits, folder: str) -> None:
    opsets, graph = [], None
    names = {2: "producer", 3: "producer version", 4: "domain"}
    for number, kind, value, length in wire.fields(0, wire.size, "model"):
        if number == 1 and kind == 0:
            checkpoint.metadata["ir version"] = str(value)
        elif number in names and kind == 2:
            checkpoint.metadata[names[number]] = wire.text(value, length)
        elif number == 5 and kind == 0:
            checkpoint.metadata["model version"] = str(value)
        elif number == 7 and kind == 2:
            graph = (value, length)
        elif number == 8 and kind == 2:
            opsets.append(_opset(wire, value, length))
        elif number == 14 and kind == 2:
            key, text = _string_pair(wire, value, length)
            checkpoint.metadata[f"metadata {key}"[: limits.max_key_chars]] = text
    if graph is None:
        raise ProtobufError("the model has no graph", "model")
    if opsets:
        checkpoint.metadata["opsets"] = ", ".join(opsets)[:_TEXT]
    _read_graph(wire, graph[0], graph[0] + graph[1], checkpoint, folder)


def _read_graph(wire: Wire, start: int, end: int, checkpoint: Checkpoint, folder: str) -> None:
    ops: Counter[str] = Counter()
    nodes = 0
    inputs: list[str] = []
    outputs: list[str] = []
    root = Node("", [], "dict", "onnx.GraphProto")
    missing_files: set[str] = set()
    for number, kind, value, length in wire.fields(start, end, "graph"):
        if kind != 2:
            continue
        if number == 1:
            nodes += 1
            if nodes <= _NODES_READ:
                ops[_op_type(wire, value, length)] += 1
        elif number == 2:
            checkpoint.metadata["graph name"] = wire.text(value, length)
        elif number in (5, 15):  # initializer, sparse_initializer
            info, external = (_tensor(wire, value, length) if number == 5 else _sparse_tensor(wire, value, length))
            if external and not os.path.exists(os.path.join(folder, external)):
                missing_files.add(external)
            checkpoint.tensors.append(info)
            root.children.append(Node(info.key, list(info.path), "tensor", "onnx.TensorProto",
                                      tensor=len(checkpoint.tensors) - 1))
        elif number in (11, 12):
            (inputs if number == 11 else outputs).append(_value_info(wire, value, length))
    checkpoint.root = root
    if ops:
        shown = ", ".join(f"{op} ×{n:,}" for op, n in ops.most_common(_OPS_SHOWN))
        checkpoint.metadata["operators"] = shown + (f", … ({len(ops)} kinds)" if len(ops) > _OPS_SHOWN else "") + (
            f" (in the first {_NODES_READ:,} nodes)" if nodes > _NODES_READ else "")
        checkpoint.metadata["nodes"] = f"{nodes:,}"
    for label, values in (("graph inputs", inputs), ("graph outputs", outputs)):
        if values:
            checkpoint.metadata[label] = ", ".join(values)[:_TEXT]
    for name in sorted(missing_files)[:8]:
        checkpoint.warnings.append(Problem(
            "missing", f"initializers keep their data in the external file {name!r}, which is not next to the model "
            "(onnx.load and onnxruntime need it there)", where=name))


def _tensor(wire: Wire, start: int, length: int) -> tuple[TensorInfo, str | None]:
    """One initializer: name, dims, dtype and how many bytes of data it has (and where)."""
    dims: list[int] = []
    name, data_type, nbytes, external, where = "", 0, 0, None, f"initializer at byte {start:,}"
    external_length = None
    for number, kind, value, size in wire.fields(start, start + length, where):
        if number == 1:
            dims.extend([value] if kind == 0 else _packed_varints(wire, value, size, where))
        elif number == 2 and kind == 0:
            data_type = value
        elif number == 8 and kind == 2:
            name = wire.text(value, size)
        elif number == 9 and kind == 2:
            nbytes = size
        elif number in _TYPED_FIELDS:  # packed (kind 2) or one element per field
            nbytes += size if kind == 2 else _TYPED_FIELDS[number]
        elif number == 13 and kind == 2:
            key, text = _string_pair(wire, value, size)
            if key == "location":
                external = text
            elif key == "length" and text.isdigit() and len(text) < 20:
                external_length = int(text)
    if any(d >= 1 << 63 for d in dims) or math.prod(dims) >= 1 << 63:
        raise ProtobufError(f"initializer {name!r} claims dims {dims[:8]}, more elements than a tensor can hold", where)
    info = TensorInfo(path=[name], shape=dims, dtype=_DTYPES.get(data_type, f"onnx:type{data_type}"),
                      requires_grad=False, kind="tensor", stride=contiguous_stride(dims), storage=name,
                      storage_nbytes=external_length if external is not None else nbytes)
    return info, external


def _sparse_tensor(wire: Wire, start: int, length: int) -> tuple[TensorInfo, str | None]:
    """A SparseTensorProto: its values' name and dtype, and its dense dims."""
    values: tuple[TensorInfo, str | None] | None = None
    dims: list[int] = []
    where = f"sparse initializer at byte {start:,}"
    for number, kind, value, size in wire.fields(start, start + length, where):
        if number == 1 and kind == 2:
            values = _tensor(wire, value, size)
        elif number == 3:
            dims.extend([value] if kind == 0 else _packed_varints(wire, value, size, where))
    if values is None:
        raise ProtobufError("a sparse initializer has no values", where)
    info, external = values
    info.shape, info.stride, info.layout = dims, contiguous_stride(dims), "sparse"
    return info, external


def _packed_varints(wire: Wire, start: int, length: int, where: str) -> list[int]:
    out, pos, end = [], start, start + length
    while pos < end:
        value, pos = wire.varint(pos, end, where)
        out.append(value)
        if len(out) > 64:
            raise ProtobufError("a tensor has more than 64 dims", where)
    return out


def _op_type(wire: Wire, start: int, length: int) -> str:
    domain, op = "", "?"
    for number, kind, value, size in wire.fields(start, start + length, f"node at byte {start:,}"):
        if kind == 2 and number == 4:
            op = wire.text(value, min(size, 80))
        elif kind == 2 and number == 7:
            domain = wire.text(value, min(size, 80))
    return f"{domain}.{op}" if domain and domain != "ai.onnx" else op


def _value_info(wire: Wire, start: int, length: int) -> str:
    """`name: dtype[dims]` of a graph input or output."""
    name, described = "", ""
    for number, kind, value, size in wire.fields(start, start + length, f"graph input/output at byte {start:,}"):
        if number == 1 and kind == 2:
            name = wire.text(value, min(size, 80))
        elif number == 2 and kind == 2:
            described = _type_text(wire, value, size)
    return f"{name}: {described}" if described else name


def _type_text(wire: Wire, start: int, length: int) -> str:
    where = f"type at byte {start:,}"
    for number, kind, value, size in wire.fields(start, start + length, where):
        if number == 1 and kind == 2:  # tensor_type
            elem, dims = 0, []
            for n, k, v, s in wire.fields(value, value + size, where):
                if n == 1 and k == 0:
                    elem = v
                elif n == 2 and k == 2:
                    dims = [_dim_text(wire, dv, ds) for dn, dk, dv, ds in wire.fields(v, v + s, where) if dn == 1 and dk == 2]
            return f"{_DTYPES.get(elem, f'type{elem}')}[{', '.join(dims)}]"
    return ""


def _dim_text(wire: Wire, start: int, length: int) -> str:
    for number, kind, value, size in wire.fields(start, start + length, "dimension"):
        if number == 1 and kind == 0:
            return str(value)
        if number == 2 and kind == 2:
            return wire.text(value, min(size, 40))
    return "?"


def _opset(wire: Wire, start: int, length: int) -> str:
    domain, version = "", 0
    for number, kind, value, size in wire.fields(start, start + length, "opset_import"):
        if number == 1 and kind == 2:
            domain = wire.text(value, min(size, 80))
        elif number == 2 and kind == 0:
            version = value
    return f"{domain or 'ai.onnx'} {version}"


def _string_pair(wire: Wire, start: int, length: int) -> tuple[str, str]:
    key = text = ""
    for number, kind, value, size in wire.fields(start, start + length, "key/value entry"):
        if number == 1 and kind == 2:
            key = wire.text(value, min(size, 80))
        elif number == 2 and kind == 2:
            text = wire.text(value, size)
    return key, text

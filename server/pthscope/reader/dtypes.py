"""Dtype tables: torch storage classes, dtype objects and numpy type codes → one dtype name.

Names are torch's without the `torch.` prefix (`float32`, `bfloat16`, `float8_e4m3fn`, ...).
"""

from __future__ import annotations

# Legacy typed storage classes (torch.FloatStorage, torch.cuda.HalfStorage, ...) → dtype.
STORAGE_DTYPES: dict[str, str] = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
    "QInt8Storage": "qint8",
    "QUInt8Storage": "quint8",
    "QInt32Storage": "qint32",
    "QUInt4x2Storage": "quint4x2",
    "QUInt2x4Storage": "quint2x4",
}

# Bytes per element. Sub-byte and packed types occupy one byte per stored element in torch.
UNTYPED = "uint8 (untyped)"  # the dtype of a torch.UntypedStorage: its bytes
ITEMSIZE: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1,
    "float8_e8m0fnu": 1, "float4_e2m1fn_x2": 1,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1,
    "int1": 1, "int2": 1, "int3": 1, "int4": 1, "int5": 1, "int6": 1, "int7": 1,
    "uint1": 1, "uint2": 1, "uint3": 1, "uint4": 1, "uint5": 1, "uint6": 1, "uint7": 1,
    "bool": 1,
    "complex128": 16, "complex64": 8, "complex32": 4,
    "qint8": 1, "quint8": 1, "qint32": 4, "quint4x2": 1, "quint2x4": 1,
    "bits8": 1, "bits16": 2, "bits1x8": 1, "bits2x4": 1, "bits4x2": 1,
    # bytes of an untyped storage
    UNTYPED: 1,
}

# numpy dtype codes ('f4', '<f8', 'int64', ...) → dtype name.
_NUMPY_KINDS: dict[str, dict[int, str]] = {
    "f": {2: "float16", 4: "float32", 8: "float64"},
    "i": {1: "int8", 2: "int16", 4: "int32", 8: "int64"},
    "u": {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"},
    "c": {8: "complex64", 16: "complex128"},
    "b": {1: "bool"},
}
_NUMPY_NAMES = {
    "float16": "float16", "float32": "float32", "float64": "float64", "half": "float16",
    "single": "float32", "double": "float64", "bool": "bool", "bool_": "bool",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "complex64": "complex64", "complex128": "complex128",
}


def itemsize(dtype: str) -> int:
    return ITEMSIZE.get(dtype, 1)


def dtype_from_numpy_code(code: str) -> str:
    """'<f4' → float32; unknown codes are returned as `numpy:<code>`."""
    code = code.lstrip("<>=|")
    if code in _NUMPY_NAMES:
        return _NUMPY_NAMES[code]
    if code[:1] == "?":
        return "bool"
    if len(code) >= 2 and code[0] in _NUMPY_KINDS and code[1:].isdigit():
        found = _NUMPY_KINDS[code[0]].get(int(code[1:]))
        if found:
            return found
    return f"numpy:{code}"


def itemsize_of_numpy_code(code: str) -> int:
    code = code.lstrip("<>=|")
    if len(code) >= 2 and code[1:].isdigit():
        return int(code[1:])
    return itemsize(dtype_from_numpy_code(code))


def can_require_grad(dtype: str) -> bool:
    """Only floating-point and complex tensors can be parameters (have requires_grad=True)."""
    return dtype.startswith(("float", "bfloat", "complex"))

"""Tensor values on demand: the bytes of one tensor, memory-mapped, never unpickled.

`tensor_bytes(checkpoint, tensor, size, mtime_ns)` says where a parsed file's tensor is;
`tensor_stats(tensor_bytes)` answers "what is in this tensor?" (min, max, mean, std, L2 norm,
zeros, NaN/inf counts, a histogram) from that byte range only. scan.py finds bad tensors, diff.py
compares two checkpoints, convert.py writes a safetensors file; locate.py is what the structure
worker answers for them.
"""

from .reading import ValuesError
from .stats import StatsError, TensorBytes, find_tensor, tensor_bytes, tensor_stats

__all__ = ["StatsError", "TensorBytes", "ValuesError", "find_tensor", "tensor_bytes", "tensor_stats"]

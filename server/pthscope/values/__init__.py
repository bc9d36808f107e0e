"""Tensor values on demand: the bytes of one tensor, memory-mapped, never unpickled.

`tensor_bytes(checkpoint, tensor, size, mtime_ns)` says where a parsed file's tensor is;
`tensor_stats(tensor_bytes)` answers "what is in this tensor?" (min, max, mean, std, zeros,
NaN/inf counts, a histogram) from that byte range only.
"""

from .stats import (
    DEFAULT_MAX_ELEMENTS,
    StatsError,
    TensorBytes,
    find_tensor,
    tensor_bytes,
    tensor_stats,
)

__all__ = ["DEFAULT_MAX_ELEMENTS", "StatsError", "TensorBytes", "find_tensor", "tensor_bytes", "tensor_stats"]

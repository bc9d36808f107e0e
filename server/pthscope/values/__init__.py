"""Tensor values on demand: the bytes of one tensor, memory-mapped, never unpickled.

`tensor_stats(file, path)` answers "what is in this tensor?" (min, max, mean, std, zeros,
NaN/inf counts, a histogram) from the tensor's own byte range only.
"""

from .stats import DEFAULT_MAX_ELEMENTS, StatsError, tensor_stats

__all__ = ["DEFAULT_MAX_ELEMENTS", "StatsError", "tensor_stats"]

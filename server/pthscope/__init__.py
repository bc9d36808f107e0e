"""pthscope: see inside PyTorch checkpoints without executing them.

`pthscope.inspect(path)` reads a checkpoint (reader/); the names below are imported when first
used, so that starting the language server does not load the reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reader import inspect
    from .reader.model import Checkpoint, ModuleInfo, Node, TensorInfo

__all__ = ["Checkpoint", "ModuleInfo", "Node", "TensorInfo", "inspect"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "inspect":
        from .reader import inspect

        return inspect
    if name in __all__:
        from .reader import model

        return getattr(model, name)
    raise AttributeError(f"module 'pthscope' has no attribute {name!r}")

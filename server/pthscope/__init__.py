"""pthscope: see inside PyTorch checkpoints without executing them."""

from .reader import inspect
from .reader.model import Checkpoint, ModuleInfo, Node, TensorInfo

__all__ = ["Checkpoint", "ModuleInfo", "Node", "TensorInfo", "inspect"]
__version__ = "0.1.0"

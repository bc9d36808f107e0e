"""The small model the action tests save with torch (importable, so whole-model pickles work)."""

from __future__ import annotations

import torch.nn as nn


class Net(nn.Module):
    """Same layout as the `Net` in scripts/training_loop.py."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 2)


class Holder(nn.Module):
    """A model whose other submodules the hostile-text tests register under hostile names."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)

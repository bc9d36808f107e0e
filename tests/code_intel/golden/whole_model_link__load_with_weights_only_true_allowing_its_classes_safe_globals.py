# ruff: noqa
# fmt: off
"""Loads a pickled whole model next to a state_dict of the same network."""

import torch

from tests.code_intel.models import Net

from torch.nn.modules.activation import ReLU
from torch.nn.modules.container import Sequential
from torch.nn.modules.linear import Linear
with torch.serialization.safe_globals([Net, ReLU, Sequential, Linear]):
    full = torch.load("runs/full_model.pth", weights_only=True)
print(full.head.weight.requires_grad)

model = Net()
model.load_state_dict(torch.load("runs/net_sd.pth", weights_only=True), strict=True)

# ruff: noqa
# fmt: off
"""Loads a pickled whole model next to a state_dict of the same network."""

import torch

from tests.code_intel.models import Net

full = torch.load("runs/full_model.pth")
print(full.head.weight.requires_grad)

model = Net()
model.load_state_dict(torch.load("runs/net_sd.pth", weights_only=True), strict=True)

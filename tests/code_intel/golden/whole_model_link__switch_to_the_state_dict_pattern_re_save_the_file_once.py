# ruff: noqa
# fmt: off
"""Loads a pickled whole model next to a state_dict of the same network."""

import torch

from tests.code_intel.models import Net

# A whole-model pickle: re-save it once as a state_dict, from a session you trust:
#   torch.save(torch.load("runs/full_model.pth", weights_only=False).state_dict(), "runs/full_model.pth")
full = Net()
full.load_state_dict(torch.load("runs/full_model.pth", weights_only=True))
print(full.head.weight.requires_grad)

model = Net()
model.load_state_dict(torch.load("runs/net_sd.pth", weights_only=True), strict=True)
